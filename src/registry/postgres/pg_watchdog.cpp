// SocketWatchdog: see pg_watchdog.h.
#include "registry/postgres/pg_watchdog.h"

#include <sys/socket.h>

namespace mw::registry_internal {

SocketWatchdog::SocketWatchdog() = default;

SocketWatchdog::~SocketWatchdog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int64_t SocketWatchdog::Arm(int fd, std::chrono::milliseconds timeout) {
  std::lock_guard lock(mu_);
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
  const int64_t id = next_id_++;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  watches_[id] = Watch{fd, deadline};
  // The thread sleeps until the earliest deadline it knows: woken only for
  // an earlier one (a call that ends in time costs no thread switch).
  if (deadline < wake_at_) cv_.notify_all();
  return id;
}

bool SocketWatchdog::Disarm(int64_t id) {
  std::lock_guard lock(mu_);
  auto it = watches_.find(id);
  if (it == watches_.end()) return false;
  const bool fired = it->second.fired;
  watches_.erase(it);
  return fired;
}

void SocketWatchdog::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    auto next = std::chrono::steady_clock::time_point::max();
    const auto now = std::chrono::steady_clock::now();
    for (auto& [id, w] : watches_) {
      if (w.fired) continue;
      if (w.deadline <= now) {
        // Under mu_: Disarm (and so the close of the fd) waits for this.
        ::shutdown(w.fd, SHUT_RDWR);
        w.fired = true;
      } else {
        next = std::min(next, w.deadline);
      }
    }
    wake_at_ = next;
    if (next == std::chrono::steady_clock::time_point::max()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, next);
    }
  }
}

}  // namespace mw::registry_internal
