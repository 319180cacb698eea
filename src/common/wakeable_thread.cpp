#include "common/wakeable_thread.h"

#include <algorithm>

namespace mw {
namespace {

// wait_for adds the wait to now(): a day at most keeps that from overflowing.
constexpr std::chrono::milliseconds kLongestWait = std::chrono::hours(24);

}  // namespace

bool WakeableThread::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stop_) return false;
  thread_ = std::thread([this] { Loop(); });
  return true;
}

void WakeableThread::Wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void WakeableThread::Stop() {
  std::thread thread;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    // From `work` itself: only ask (the owner's later Stop, or the destructor, joins).
    if (thread_.get_id() != std::this_thread::get_id()) thread = std::move(thread_);
  }
  cv_.notify_all();
  if (thread.joinable()) thread.join();
}

bool WakeableThread::Stopping() const {
  std::lock_guard lock(mu_);
  return stop_;
}

void WakeableThread::Loop() {
  bool work = work_first_;
  for (;;) {
    if (work) {
      if (Stopping()) return;
      work_();
    }
    work = true;
    const std::chrono::milliseconds wait = std::min(next_wait_(), kLongestWait);
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, wait, [this] { return stop_ || woken_; });
    if (stop_) return;
    woken_ = false;
  }
}

}  // namespace mw
