// Internal to registry/postgres: the client's own deadline on a PostgreSQL
// connection (issue 26). statement_timeout is enforced by the server process
// itself, so a server that is stalled (SIGSTOP, a stuck disk, a host that
// froze) or a network that drops packets without a reset never answers, and
// TCP keepalives do not help while the kernel at the other end still ACKs.
// SocketWatchdog shuts a connection's socket down (shutdown(2), both ways)
// when a call on it runs past its deadline: libpq's blocked read then fails
// at once, the call reports the connection broken, and the next call
// reconnects. One thread for all the connections of one backend.
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>

namespace mw::registry_internal {

class SocketWatchdog {
 public:
  SocketWatchdog();
  ~SocketWatchdog();
  SocketWatchdog(const SocketWatchdog&) = delete;
  SocketWatchdog& operator=(const SocketWatchdog&) = delete;

  // Watches `fd` until Disarm(returned id): shut down after `timeout`.
  int64_t Arm(int fd, std::chrono::milliseconds timeout);
  // Stops watching; true when the deadline had passed and the socket was
  // shut down. After it returns the watchdog never touches the fd again, so
  // call it before the connection is closed.
  bool Disarm(int64_t id);

 private:
  struct Watch {
    int fd;
    std::chrono::steady_clock::time_point deadline;
    bool fired = false;
  };
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, Watch> watches_;
  int64_t next_id_ = 1;
  // When the thread wakes next by itself (max: not before it is notified).
  std::chrono::steady_clock::time_point wake_at_ = std::chrono::steady_clock::time_point::min();
  bool stop_ = false;
  std::thread thread_;  // started by the first Arm
};

}  // namespace mw::registry_internal
