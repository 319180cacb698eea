// compat/load_queue: load attempts run one at a time (SPEC §1.6), so at most
// one model is ever in `testing` and a crash of the whole machine points at
// exactly one model.
//
//   Submit(name, job) ──► queued ──► running (the worker thread calls job())
//                            │            └──► done: every waiter gets job()'s result
//                            └── CancelQueued / Shutdown ──► done with cancelled(name)
//
// A Submit for a model whose job is queued or running JOINS it: no second job
// is queued, and the caller gets the same shared result (Ticket::joined is
// true). Once a job is done and its result delivered, the next Submit for
// that model queues a new job. Only loads go through the queue; inference on
// models already loaded never waits for it.
//
// Its per-model map is the FIFO's own bookkeeping (which job to join, whose
// shared result); the server's owner of each model's live state is
// app/ModelRuntimeTable, into which on_change mirrors queued/running (the
// state users see is the runtime's).
//
// Generic over the result: LoadQueue<R> with jobs std::function<R()>; the
// server plugs in a job that runs StateMachine::BeginAttempt, starts the
// worker and finishes the attempt (R is typically Result<Something>).
// Jobs must not throw; if one does, every waiter's future.get() rethrows it.
//
// Public API in brief (namespace mw):
//   enum class LoadQueueState {kQueued, kRunning, kDone}; ToString(state)
//   LoadQueue<R>(cancelled, on_change = {})
//   Submit(name, job) -> Ticket{std::shared_future<R> result, bool joined}
//   Snapshot() -> std::vector<LoadQueueEntry{model_name, state}> (running first)
//   StateOf(name) -> std::optional<LoadQueueState> (kQueued/kRunning; nullopt if idle)
//   RunningResult(name) -> the running job's shared result, if it is running
//   CancelQueued(name) -> bool; Shutdown()
//
// Thread-safety: every method is thread-safe. on_change is called on the
// thread that caused the change (Submit's caller or the worker thread),
// one call at a time and in order per model (queued, running, done). It may
// call Snapshot() and StateOf(), but not Submit/CancelQueued/Shutdown.
// Ownership: the queue owns its one worker thread; the destructor calls
// Shutdown(), which waits for the running job to end.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace mw {

enum class LoadQueueState { kQueued, kRunning, kDone };
// "queued", "running", "done".
std::string_view ToString(LoadQueueState state);

struct LoadQueueEntry {
  std::string model_name{};
  LoadQueueState state = LoadQueueState::kQueued;
};

template <typename R>
class LoadQueue {
 public:
  using Job = std::function<R()>;
  // Result given to waiters of a job that never ran (cancelled or shut down).
  using CancelledFn = std::function<R(const std::string& model_name)>;
  using ChangeFn = std::function<void(const std::string& model_name, LoadQueueState state)>;

  struct Ticket {
    std::shared_future<R> result;
    bool joined = false;  // true: an existing job was joined, `job` was not used
  };

  explicit LoadQueue(CancelledFn cancelled, ChangeFn on_change = {})
      : cancelled_(std::move(cancelled)), on_change_(std::move(on_change)), worker_([this] { Run(); }) {}
  ~LoadQueue() { Shutdown(); }
  LoadQueue(const LoadQueue&) = delete;
  LoadQueue& operator=(const LoadQueue&) = delete;

  // Queues `job` for `model_name`, or joins the job already queued or running
  // for it. After Shutdown() the ticket is ready at once with cancelled(name).
  Ticket Submit(const std::string& model_name, Job job) {
    // Held until kQueued is announced, so that the worker's kRunning for this
    // job can never be announced before it (listeners see queued -> running).
    std::unique_lock<std::mutex> notify_lock(notify_mu_);
    std::unique_lock<std::mutex> lock(mu_);
    if (auto it = by_name_.find(model_name); it != by_name_.end()) {
      return Ticket{it->second->result, true};
    }
    auto item = std::make_shared<Item>();
    item->model_name = model_name;
    item->job = std::move(job);
    item->result = item->promise.get_future().share();
    Ticket ticket{item->result, false};
    if (stopping_) {
      lock.unlock();
      item->promise.set_value(cancelled_(model_name));
      return ticket;
    }
    by_name_[model_name] = item;
    queue_.push_back(item);
    lock.unlock();
    cv_.notify_all();
    if (on_change_) on_change_(model_name, LoadQueueState::kQueued);
    return ticket;
  }

  // The running job (if any) then the queued ones, in order.
  std::vector<LoadQueueEntry> Snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<LoadQueueEntry> out;
    if (running_) out.push_back({running_->model_name, LoadQueueState::kRunning});
    for (const auto& item : queue_) out.push_back({item->model_name, LoadQueueState::kQueued});
    return out;
  }

  // kQueued or kRunning while the model has a job; nullopt otherwise.
  std::optional<LoadQueueState> StateOf(const std::string& model_name) const {
    std::lock_guard<std::mutex> lock(mu_);
    if (running_ && running_->model_name == model_name) return LoadQueueState::kRunning;
    if (by_name_.count(model_name) != 0) return LoadQueueState::kQueued;
    return std::nullopt;
  }

  // The result of the model's job if that job is running (not queued): what
  // an unload that stops the load waits for, so that a Submit after the
  // unload answered queues a new job instead of joining the cancelled one.
  // From inside a job: nullopt (a job must not wait for itself).
  std::optional<std::shared_future<R>> RunningResult(const std::string& model_name) const {
    if (std::this_thread::get_id() == worker_.get_id()) return std::nullopt;
    std::lock_guard<std::mutex> lock(mu_);
    if (running_ && running_->model_name == model_name) return running_->result;
    return std::nullopt;
  }

  // Removes the model's job if it is still queued (not running); its waiters
  // get cancelled(name). Returns whether a job was removed.
  bool CancelQueued(const std::string& model_name) {
    std::shared_ptr<Item> item;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = by_name_.find(model_name);
      if (it == by_name_.end() || it->second == running_) return false;
      item = it->second;
      by_name_.erase(it);
      std::erase(queue_, item);
    }
    item->promise.set_value(cancelled_(model_name));
    Notify(model_name, LoadQueueState::kDone);
    return true;
  }

  // Refuses new jobs, cancels the queued ones, and waits for the running job
  // to finish (stop it first, e.g. by stopping its worker). Idempotent. From
  // inside a job it does not wait (the worker thread ends after that job).
  void Shutdown() {
    std::deque<std::shared_ptr<Item>> dropped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      dropped.swap(queue_);
      for (const auto& item : dropped) by_name_.erase(item->model_name);
    }
    cv_.notify_all();
    for (const auto& item : dropped) {
      item->promise.set_value(cancelled_(item->model_name));
      Notify(item->model_name, LoadQueueState::kDone);
    }
    if (std::this_thread::get_id() == worker_.get_id()) return;  // called from a job
    std::lock_guard<std::mutex> join_lock(join_mu_);
    if (worker_.joinable()) worker_.join();
  }

 private:
  struct Item {
    std::string model_name;
    Job job;
    std::promise<R> promise;
    std::shared_future<R> result;
  };

  // Announcements are serialised by notify_mu_ (never held with mu_ by the
  // worker), so each model's states reach on_change in the order they happen.
  void Notify(const std::string& name, LoadQueueState state) {
    std::lock_guard<std::mutex> lock(notify_mu_);
    if (on_change_) on_change_(name, state);
  }

  void Run() {
    while (true) {
      std::shared_ptr<Item> item;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping
        item = queue_.front();
        queue_.pop_front();
        running_ = item;
      }
      Notify(item->model_name, LoadQueueState::kRunning);
      std::optional<R> value;
      std::exception_ptr error;
      try {
        value.emplace(item->job());
      } catch (...) {
        error = std::current_exception();
      }
      {
        // Leave the map before delivering, so a Submit that sees the result
        // delivered never joins this finished job.
        std::lock_guard<std::mutex> lock(mu_);
        by_name_.erase(item->model_name);
        running_.reset();
      }
      if (error) {
        item->promise.set_exception(error);
      } else {
        item->promise.set_value(std::move(*value));
      }
      Notify(item->model_name, LoadQueueState::kDone);
    }
  }

  const CancelledFn cancelled_;
  const ChangeFn on_change_;
  std::mutex notify_mu_;  // taken before mu_ when both are held
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Item>> queue_;
  std::map<std::string, std::shared_ptr<Item>, std::less<>> by_name_;  // queued or running
  std::shared_ptr<Item> running_;
  bool stopping_ = false;
  std::mutex join_mu_;  // Shutdown may be called from several threads
  std::thread worker_;  // last: starts after every other member exists
};

}  // namespace mw
