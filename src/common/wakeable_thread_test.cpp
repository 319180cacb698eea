#include "common/wakeable_thread.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace mw {
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kNever = std::chrono::hours(24);  // only a Wake or a Stop ends such a wait
constexpr auto kDeadline = std::chrono::seconds(30);     // for an event that must come (never reached when it works)

// Counts the runs of a work; a run can be held until Release().
struct Work {
  std::mutex mu;
  std::condition_variable cv;
  int runs = 0;       // runs begun
  int finished = 0;   // runs ended
  bool hold = false;  // a run waits here until Release()

  void Run() {
    std::unique_lock lock(mu);
    ++runs;
    cv.notify_all();
    cv.wait(lock, [this] { return !hold; });
    ++finished;
    cv.notify_all();
  }
  bool AwaitRuns(int n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, kDeadline, [&] { return runs >= n; });
  }
  void Release() {
    std::lock_guard lock(mu);
    hold = false;
    cv.notify_all();
  }
  int Runs() {
    std::lock_guard lock(mu);
    return runs;
  }
  int Finished() {
    std::lock_guard lock(mu);
    return finished;
  }
};

TEST(WakeableThreadTest, WorkFirstRunsAtOnceAndEachWakeRunsItAgain) {
  Work work;
  WakeableThread thread([&] { work.Run(); }, [] { return kNever; }, /*work_first=*/true);
  ASSERT_TRUE(thread.Start());
  ASSERT_TRUE(work.AwaitRuns(1));
  thread.Wake();
  ASSERT_TRUE(work.AwaitRuns(2));
  thread.Wake();
  ASSERT_TRUE(work.AwaitRuns(3));
  thread.Stop();
  EXPECT_EQ(work.Runs(), 3);
}

TEST(WakeableThreadTest, WithoutWorkFirstItWaitsFirst) {
  Work work;
  WakeableThread thread([&] { work.Run(); }, [] { return kNever; }, /*work_first=*/false);
  ASSERT_TRUE(thread.Start());
  thread.Wake();
  ASSERT_TRUE(work.AwaitRuns(1));
  thread.Stop();
  EXPECT_EQ(work.Runs(), 1);
}

TEST(WakeableThreadTest, TheWaitItAsksForEndsOnItsOwn) {
  Work work;
  std::atomic<int> asked{0};
  WakeableThread thread([&] { work.Run(); },
                        [&] {
                          ++asked;
                          return milliseconds(1);
                        },
                        /*work_first=*/false);
  ASSERT_TRUE(thread.Start());
  ASSERT_TRUE(work.AwaitRuns(3));  // no Wake: the short waits ran out
  thread.Stop();
  EXPECT_GE(asked.load(), 3);
}

TEST(WakeableThreadTest, AWakeWhileWorkingIsNotLost) {
  Work work;
  work.hold = true;
  WakeableThread thread([&] { work.Run(); }, [] { return kNever; }, /*work_first=*/true);
  ASSERT_TRUE(thread.Start());
  ASSERT_TRUE(work.AwaitRuns(1));
  thread.Wake();  // while the first run is held
  work.Release();
  ASSERT_TRUE(work.AwaitRuns(2));
  thread.Stop();
}

TEST(WakeableThreadTest, StopWhileWaitingEndsTheWaitAndNoWorkRunsAfter) {
  Work work;
  WakeableThread thread([&] { work.Run(); }, [] { return kNever; }, /*work_first=*/true);
  ASSERT_TRUE(thread.Start());
  ASSERT_TRUE(work.AwaitRuns(1));
  thread.Stop();  // the thread waits a day: only the stop ends it
  EXPECT_TRUE(thread.Stopping());
  thread.Wake();
  EXPECT_EQ(work.Runs(), 1);
  EXPECT_EQ(work.Finished(), 1);
}

TEST(WakeableThreadTest, StopWhileWorkingWaitsForTheWorkToEnd) {
  Work work;
  work.hold = true;
  WakeableThread thread([&] { work.Run(); }, [] { return kNever; }, /*work_first=*/true);
  ASSERT_TRUE(thread.Start());
  ASSERT_TRUE(work.AwaitRuns(1));
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    thread.Stop();
    stopped = true;
  });
  while (!thread.Stopping()) std::this_thread::yield();  // Stop() has asked; it cannot return: the run is held
  EXPECT_FALSE(stopped.load());
  EXPECT_EQ(work.Finished(), 0);
  work.Release();
  stopper.join();
  EXPECT_TRUE(stopped.load());
  EXPECT_EQ(work.Runs(), 1);  // the wake-less stop ran no further work
  EXPECT_EQ(work.Finished(), 1);
}

TEST(WakeableThreadTest, TheDestructorStopsAndJoins) {
  std::atomic<bool> entered{false};
  std::atomic<bool> finished{false};
  WakeableThread* self = nullptr;  // unique_ptr::reset clears the pointer before the destructor runs
  auto thread = std::make_unique<WakeableThread>(
      [&] {
        entered = true;
        while (!self->Stopping()) std::this_thread::yield();  // long work that ends when asked
        finished = true;
      },
      [] { return kNever; }, /*work_first=*/true);
  self = thread.get();
  ASSERT_TRUE(thread->Start());
  while (!entered) std::this_thread::yield();
  thread.reset();  // joins: the work has ended when it returns
  EXPECT_TRUE(finished.load());
}

TEST(WakeableThreadTest, StartsOnceAndNeverAfterStop) {
  Work work;
  WakeableThread thread([&] { work.Run(); }, [] { return kNever; }, /*work_first=*/true);
  ASSERT_TRUE(thread.Start());
  EXPECT_FALSE(thread.Start());
  thread.Stop();
  EXPECT_FALSE(thread.Start());

  WakeableThread never([&] { work.Run(); }, [] { return kNever; }, /*work_first=*/true);
  never.Stop();
  EXPECT_FALSE(never.Start());
}

TEST(WakeableThreadTest, StopFromTheWorkItselfOnlyAsks) {
  std::atomic<int> runs{0};
  WakeableThread* self = nullptr;
  WakeableThread thread(
      [&] {
        ++runs;
        self->Stop();  // must not join itself
      },
      [] { return kNever; }, /*work_first=*/true);
  self = &thread;
  ASSERT_TRUE(thread.Start());
  while (!thread.Stopping()) std::this_thread::yield();
  thread.Stop();  // joins the thread, which ends after its run
  EXPECT_EQ(runs.load(), 1);
}

}  // namespace
}  // namespace mw
