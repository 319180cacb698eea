#include "app/engine_deaths.h"

#include <chrono>

namespace mw::app {

void EngineDeaths::NoteDeath(int pid, const std::string& summary, bool hung) {
  {
    std::lock_guard lock(mu_);
    if (deaths_.size() >= kKept) deaths_.erase(deaths_.begin());
    deaths_[pid] = api::EngineEnd{hung, summary};
  }
  changed_.notify_all();
}

void EngineDeaths::NoteStopped(int pid) {
  {
    std::lock_guard lock(mu_);
    if (stops_.size() >= kKept) stops_.erase(stops_.begin());
    stops_.insert(pid);
  }
  changed_.notify_all();
}

void EngineDeaths::Close() {
  {
    std::lock_guard lock(mu_);  // so that no waiter misses the wake-up
    closed_ = true;
  }
  changed_.notify_all();
}

std::optional<api::EngineEnd> EngineDeaths::Await(int pid, int64_t timeout_ms, const std::function<void()>& on_timeout) {
  std::unique_lock lock(mu_);
  const bool ended = changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                       [&] { return deaths_.count(pid) > 0 || stops_.count(pid) > 0 || closed_; });
  // Stopped on purpose (an unload, the shutdown): not a death to report.
  if (deaths_.count(pid) == 0 && (stops_.count(pid) > 0 || closed_)) return std::nullopt;
  if (!ended) {
    lock.unlock();
    if (on_timeout) on_timeout();
    return std::nullopt;
  }
  return deaths_[pid];
}

}  // namespace mw::app
