#include "api/connection_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace mw::api {
namespace {

// Jobs that hold their thread until Release(): what held connections do.
class HeldJobs {
 public:
  std::function<void()> Job() {
    return [this] {
      std::unique_lock lock(mu_);
      ++running_;
      peak_ = std::max(peak_, running_);
      changed_.notify_all();
      changed_.wait(lock, [this] { return released_; });
      --running_;
      ++done_;
      changed_.notify_all();
    };
  }
  // Waits (up to 30 s) until `pred()` holds; whether it did.
  template <class Pred>
  bool WaitFor(Pred pred) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, std::chrono::seconds(30), [&] { return pred(running_, done_); });
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    changed_.notify_all();
  }
  int peak() {
    std::lock_guard lock(mu_);
    return peak_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  int running_ = 0, peak_ = 0, done_ = 0;
  bool released_ = false;
};

// A burst enqueued faster than threads wake gets a thread per job up to max
// (httplib's ThreadPool(1, 4) could leave them all to its one thread), never more; the
// threads started for it end once idle; the resident one stays.
TEST(ConnectionPoolTest, ABurstGetsAThreadPerJobUpToMaxAndTheExtraThreadsEndWhenIdle) {
  ConnectionPool pool({.resident = 1, .max = 4, .max_queued = 0, .idle_timeout = std::chrono::milliseconds(50)});
  EXPECT_EQ(pool.threads(), 1u);
  HeldJobs held;
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(pool.Enqueue(held.Job()));
  ASSERT_TRUE(held.WaitFor([](int running, int) { return running == 4; }));
  EXPECT_EQ(pool.threads(), 4u);
  held.Release();
  ASSERT_TRUE(held.WaitFor([](int, int done) { return done == 6; }));
  EXPECT_EQ(held.peak(), 4);
  for (int i = 0; i < 600 && pool.threads() > 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(pool.threads(), 1u);
  // Still serving after its extra threads ended.
  std::atomic<bool> ran{false};
  ASSERT_TRUE(pool.Enqueue([&] { ran = true; }));
  pool.Shutdown();
  EXPECT_TRUE(ran);
}

// max_queued jobs wait at most; Shutdown runs the queued ones, then refuses.
TEST(ConnectionPoolTest, QueueLimitAndShutdown) {
  ConnectionPool pool({.resident = 1, .max = 1, .max_queued = 1});
  HeldJobs held;
  ASSERT_TRUE(pool.Enqueue(held.Job()));
  ASSERT_TRUE(held.WaitFor([](int running, int) { return running == 1; }));
  ASSERT_TRUE(pool.Enqueue(held.Job()));   // waits
  EXPECT_FALSE(pool.Enqueue(held.Job()));  // beyond max_queued
  held.Release();
  pool.Shutdown();
  EXPECT_TRUE(held.WaitFor([](int, int done) { return done == 2; }));
  EXPECT_FALSE(pool.Enqueue([] {}));
}

}  // namespace
}  // namespace mw::api
