#include "app/idle_unloader.h"

#include <algorithm>
#include <chrono>

#include "common/time_util.h"

namespace mw::app {

void IdleUnloader::Start() {
  std::lock_guard lock(mu_);
  if (!thread_.joinable() && !stop_) thread_ = std::thread([this] { Loop(); });
}

void IdleUnloader::Wake() {
  {
    std::lock_guard lock(mu_);
    wake_ = true;
  }
  cv_.notify_all();
}

void IdleUnloader::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();  // stop_ is set: Start() no longer touches thread_
}

void IdleUnloader::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    const int64_t now = MonotonicMillis();
    std::optional<int64_t> next = gate_.NextDeadline();
    // At least once a minute: a deadline is only ever moved later by a new request.
    int64_t wait_ms = next ? std::max<int64_t>(0, *next - now) : 60000;
    cv_.wait_for(lock, std::chrono::milliseconds(std::min<int64_t>(wait_ms, 60000)), [this] { return stop_ || wake_; });
    wake_ = false;
    if (stop_) break;
    std::vector<std::string> due = gate_.DueForUnload(MonotonicMillis());
    if (due.empty()) continue;
    lock.unlock();
    for (const auto& name : due) {
      unload_(name);
      gate_.EndUnload(name);
    }
    lock.lock();
  }
}

}  // namespace mw::app
