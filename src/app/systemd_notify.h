// app/systemd_notify.h: readiness, stopping and watchdog notifications to
// systemd for `Type=notify` units (SPEC §13), written against the documented
// datagram protocol of sd_notify(3): one AF_UNIX datagram of "KEY=VALUE\n"
// lines to $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
// No libsystemd: the protocol is stable and this keeps the package's
// dependencies to what it links already.
//
// NotifyTarget::TakeFromEnvironment() reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID and
// removes them from the environment, so that workers and command engines
// started by the server do not inherit them (NotifyAccess=main would drop
// their messages anyway; an engine that speaks sd_notify must not make the
// server look ready or alive). Call it before any thread starts (setenv and
// unsetenv are not thread-safe).
//
// Messages the server sends: READY=1 once it listens, STATUS=... with it,
// RELOADING=1 / READY=1 around a SIGHUP reload, STOPPING=1 when a stop signal
// arrives, and WATCHDOG=1 every WATCHDOG_USEC/2 while it runs (when
// WatchdogSec= is set). Without NOTIFY_SOCKET every call does nothing.
// Thread-safe after construction.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "common/status.h"

namespace mw::app {

// Where to notify, from the environment systemd gives the service.
struct NotifyTarget {
  std::string socket_path;  // empty: not started by systemd with Type=notify
  std::optional<std::chrono::microseconds> watchdog;  // WATCHDOG_USEC, when meant for this process
  // Reads NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID and unsets them.
  static NotifyTarget TakeFromEnvironment();
};

class SystemdNotifier {
 public:
  explicit SystemdNotifier(NotifyTarget target) : target_(std::move(target)) {}
  ~SystemdNotifier();  // stops the watchdog thread
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  bool enabled() const { return !target_.socket_path.empty(); }

  // Sends `state` ("READY=1\nSTATUS=...") as one datagram. OK (doing
  // nothing) when disabled; kUnavailable if the socket cannot be reached.
  [[nodiscard]] Status Notify(const std::string& state) const;
  // Starts the thread that sends WATCHDOG=1 every interval/2 while
  // `healthy()` answers true (a server that cannot answer it is hung, and
  // systemd's restart is the remedy); no-op without a watchdog.
  void StartWatchdog(std::function<bool()> healthy);
  // Stops that thread. Idempotent.
  void StopWatchdog();

 private:
  const NotifyTarget target_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread watchdog_thread_;
};

}  // namespace mw::app
