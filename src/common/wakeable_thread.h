// common/wakeable_thread.h: one background thread that does a piece of work,
// then sleeps until it is woken or its wait runs out, then works again; the
// shape of EnvironmentWatch's probe thread, IdleUnloader's keep_alive thread
// and FinishLedger's retry thread.
//
// Contract:
//   - `work` runs on the thread, with no lock of this object held, never
//     twice at once. With `work_first` it runs at once when the thread
//     starts; otherwise the thread waits first.
//   - Between two runs the thread waits for `next_wait()` (asked on the
//     thread right before each wait, no lock held), or until Wake() or
//     Stop(). A Wake() while `work` runs is not lost: the next wait ends at
//     once. Several Wake()s before the thread looks count as one.
//   - Start() starts the thread once; a second Start(), or one after Stop(),
//     does nothing (returns false).
//   - Stop() asks the thread to end and joins it: a `work` that is running
//     finishes first (it may look at Stopping() to end early); no `work`
//     starts after Stop() returns. Called from the thread itself (from
//     `work`) it only asks. The destructor calls Stop(): an owner whose
//     `work` uses other members calls Stop() in its own destructor (or
//     declares this member last), so the thread ends before they die.
// Thread-safe: Start, Wake, Stop and Stopping from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace mw {

class WakeableThread {
 public:
  using WorkFn = std::function<void()>;
  using WaitFn = std::function<std::chrono::milliseconds()>;

  WakeableThread(WorkFn work, WaitFn next_wait, bool work_first)
      : work_(std::move(work)), next_wait_(std::move(next_wait)), work_first_(work_first) {}
  ~WakeableThread() { Stop(); }
  WakeableThread(const WakeableThread&) = delete;
  WakeableThread& operator=(const WakeableThread&) = delete;

  bool Start();
  void Wake();
  void Stop();
  bool Stopping() const;

 private:
  void Loop();

  const WorkFn work_;
  const WaitFn next_wait_;
  const bool work_first_;
  mutable std::mutex mu_;  // guards the four below
  std::condition_variable cv_;
  bool stop_ = false;
  bool woken_ = false;
  std::thread thread_;
};

}  // namespace mw
