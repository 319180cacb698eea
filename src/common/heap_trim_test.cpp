#include "common/heap_trim.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace mw {
namespace {

using namespace std::chrono_literals;

// This process's anonymous resident memory (heap and arenas), in KiB.
long RssAnonKiB() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long value = -1;
  while (status >> key) {
    if (key == "RssAnon:") {
      status >> value;
      return value;
    }
    status.ignore(1 << 12, '\n');
  }
  return value;
}

// What the soak found: memory a thread freed stays in its malloc arena while
// anything above it is live; TrimHeapNow gives its pages back.
TEST(HeapTrimTest, FreedArenaMemoryGoesBackToTheSystem) {
#if !defined(__GLIBC__)
  GTEST_SKIP() << "malloc_trim is glibc's";
#endif
  void* pinned = nullptr;
  std::thread burst([&pinned] {  // a thread of its own: not the main arena
    std::vector<void*> blocks;
    for (int i = 0; i < 40000; ++i) {
      blocks.push_back(std::malloc(512));
      static_cast<char*>(blocks.back())[0] = 1;  // resident
    }
    pinned = std::malloc(512);  // above the burst: the arena's top is not free
    for (void* b : blocks) std::free(b);
  });
  burst.join();
  const long before = RssAnonKiB();
  EXPECT_TRUE(TrimHeapNow());
  const long after = RssAnonKiB();
  std::free(pinned);
  EXPECT_GT(before - after, 10 * 1024) << "RssAnon " << before << " -> " << after << " KiB";
}

TEST(HeapTrimTest, TrimsEveryIntervalUntilStopped) {
  std::atomic<int> trims{0};
  HeapTrimmer trimmer(5ms, [&trims] { ++trims; });
  trimmer.Start();
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (trims.load() < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  EXPECT_GE(trims.load(), 3);
  trimmer.Stop();
  const int stopped_at = trims.load();
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(trims.load(), stopped_at);
}

TEST(HeapTrimTest, NothingBeforeTheFirstInterval) {
  std::atomic<int> trims{0};
  HeapTrimmer trimmer(std::chrono::hours(1), [&trims] { ++trims; });
  trimmer.Start();
  std::this_thread::sleep_for(20ms);
  trimmer.Stop();
  EXPECT_EQ(trims.load(), 0);
}

}  // namespace
}  // namespace mw
