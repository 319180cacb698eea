// api/connection_pool.h: the HTTP server's connection threads (issue 25).
//
// Contract:
//   - `resident` threads live from construction to Shutdown();
//   - Enqueue(job) runs `job` on an idle thread; when the jobs waiting
//     outnumber the idle threads, a thread is started for it, up to `max`
//     threads in all; a started thread ends after `idle_timeout` without a
//     job. So the count follows the jobs running at once (connections open),
//     never the jobs so far, and never exceeds `max`;
//   - at most `max_queued` jobs wait for a thread (0: no limit); Enqueue
//     returns false beyond that, and after Shutdown();
//   - Shutdown() runs the jobs already queued, then joins every thread.
// Why not httplib's ThreadPool(n, max): it starts a thread only when no
// thread is idle, counting threads already woken for earlier jobs as idle, so
// a burst queued faster than its threads wake starts none: 100 held
// connections got the 8 resident threads and the other 92 waited (their 30 s
// read timeout). Why threads end: each one that lives on keeps glibc's
// per-thread cache of freed memory (128 resident threads grew the server's
// RSS by ~16 % in 30 minutes, docs/reliability.md).
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

namespace mw::api {

class ConnectionPool {
 public:
  struct Limits {
    size_t resident = 8;
    size_t max = 64;         // >= resident
    size_t max_queued = 0;   // 0: no limit
    std::chrono::milliseconds idle_timeout{3000};
  };
  explicit ConnectionPool(Limits limits);
  ~ConnectionPool();  // Shutdown()
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  [[nodiscard]] bool Enqueue(std::function<void()> job);
  void Shutdown();
  size_t threads() const;  // alive now (for tests)

 private:
  void Work(bool resident);
  void JoinFinished();  // mu_ held

  const Limits limits_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  size_t idle_ = 0;  // threads waiting for a job (not yet woken for one)
  bool stop_ = false;
  std::vector<std::thread> resident_;
  std::list<std::thread> extra_;      // started for bursts
  std::vector<std::thread> finished_; // extra threads that ended, to join
};

}  // namespace mw::api
