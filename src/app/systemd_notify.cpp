#include "app/systemd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/log.h"

namespace mw::app {

NotifyTarget NotifyTarget::TakeFromEnvironment() {
  NotifyTarget t;
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (socket != nullptr && (socket[0] == '/' || socket[0] == '@') && socket[1] != '\0') t.socket_path = socket;
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  // WATCHDOG_PID, when set, names the process the watchdog is for (sd_watchdog_enabled(3)).
  const bool for_us = pid == nullptr || std::strtoll(pid, nullptr, 10) == static_cast<long long>(::getpid());
  if (usec != nullptr && for_us && !t.socket_path.empty()) {
    char* end = nullptr;
    long long value = std::strtoll(usec, &end, 10);
    if (end != usec && *end == '\0' && value > 0) t.watchdog = std::chrono::microseconds(value);
  }
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  return t;
}

SystemdNotifier::~SystemdNotifier() { StopWatchdog(); }

Status SystemdNotifier::Notify(const std::string& state) const {
  if (!enabled()) return Status::Ok();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (target_.socket_path.size() >= sizeof(addr.sun_path)) return InvalidArgumentError("NOTIFY_SOCKET path is too long");
  std::memcpy(addr.sun_path, target_.socket_path.data(), target_.socket_path.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + target_.socket_path.size());
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return UnavailableError(std::string("socket: ") + std::strerror(errno));
  ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), len);
  int err = errno;
  ::close(fd);
  if (n < 0) return UnavailableError("cannot notify systemd at " + target_.socket_path + ": " + std::strerror(err));
  return Status::Ok();
}

void SystemdNotifier::StartWatchdog(std::function<bool()> healthy) {
  if (!target_.watchdog || watchdog_thread_.joinable()) return;
  const auto interval = *target_.watchdog / 2;
  MW_LOG(kInfo, "systemd") << "watchdog: WATCHDOG=1 every " << interval.count() / 1000 << " ms";
  watchdog_thread_ = std::thread([this, interval, healthy = std::move(healthy)] {
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      if (!healthy()) {
        MW_LOG(kWarn, "systemd") << "watchdog: the server did not answer its health check; no WATCHDOG=1 sent";
      } else if (Status st = Notify("WATCHDOG=1"); !st.ok()) {
        MW_LOG(kWarn, "systemd") << st.message();
      }
      lock.lock();
      cv_.wait_for(lock, interval, [this] { return stop_; });
    }
  });
}

void SystemdNotifier::StopWatchdog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (watchdog_thread_.joinable()) watchdog_thread_.join();
}

}  // namespace mw::app
