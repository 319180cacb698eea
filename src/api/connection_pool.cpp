#include "api/connection_pool.h"

#include <algorithm>
#include <system_error>
#include <utility>

namespace mw::api {

ConnectionPool::ConnectionPool(Limits limits) : limits_(limits) {
  std::lock_guard lock(mu_);
  const size_t resident = std::min(limits_.resident, std::max<size_t>(limits_.max, 1));
  for (size_t i = 0; i < resident; ++i) resident_.emplace_back([this] { Work(true); });
}

ConnectionPool::~ConnectionPool() { Shutdown(); }

bool ConnectionPool::Enqueue(std::function<void()> job) {
  std::lock_guard lock(mu_);
  if (stop_) return false;
  if (limits_.max_queued > 0 && jobs_.size() >= limits_.max_queued) return false;
  jobs_.push_back(std::move(job));
  JoinFinished();
  // Each waiting job has an idle thread woken for it, or gets a new one.
  if (jobs_.size() > idle_ && resident_.size() + extra_.size() < limits_.max) {
    try {
      extra_.emplace_back([this] { Work(false); });
    } catch (const std::system_error&) {
      // No thread now (EAGAIN): the job waits for a running one.
    }
  }
  wake_.notify_one();
  return true;
}

void ConnectionPool::Work(bool resident) {
  std::unique_lock lock(mu_);
  for (;;) {
    ++idle_;
    auto ready = [this] { return stop_ || !jobs_.empty(); };
    if (resident) {
      wake_.wait(lock, ready);
    } else {
      wake_.wait_for(lock, limits_.idle_timeout, ready);
    }
    --idle_;
    if (jobs_.empty()) break;  // stopping, or idle for idle_timeout
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    job();
    job = nullptr;  // what it holds is released off the lock
    lock.lock();
  }
  if (resident || stop_) return;  // Shutdown joins it
  const auto self = std::this_thread::get_id();
  for (auto it = extra_.begin(); it != extra_.end(); ++it) {
    if (it->get_id() == self) {
      finished_.push_back(std::move(*it));
      extra_.erase(it);
      break;
    }
  }
}

void ConnectionPool::JoinFinished() {
  for (std::thread& t : finished_) t.join();  // each has left Work (it needs no lock to end)
  finished_.clear();
}

void ConnectionPool::Shutdown() {
  std::unique_lock lock(mu_);
  stop_ = true;
  std::vector<std::thread> residents;
  residents.swap(resident_);
  // Extra threads end without touching extra_ once stop_ is set.
  std::list<std::thread> extras;
  extras.swap(extra_);
  lock.unlock();
  wake_.notify_all();
  // Joined off the lock: they run the queued jobs first, which may take a while.
  for (std::thread& t : residents) t.join();
  for (std::thread& t : extras) t.join();
  lock.lock();
  JoinFinished();
}

size_t ConnectionPool::threads() const {
  std::lock_guard lock(mu_);
  return resident_.size() + extra_.size();
}

}  // namespace mw::api
