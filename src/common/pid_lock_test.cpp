#include "common/pid_lock.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>

namespace mw {
namespace {

namespace fs = std::filesystem;

class PidLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mw_pidlock_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(std::random_device()()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(PidLockTest, SecondHolderIsRefusedWithTheFirstOnesPid) {
  const fs::path path = dir_ / "modelwarden.lock";
  auto first = PidLock::Acquire(path);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(PidLock::ReadHolder(path), ::getpid());
  // A second open file description conflicts even in the same process (flock semantics).
  auto second = PidLock::Acquire(path);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("pid " + std::to_string(::getpid())), std::string::npos)
      << second.status().message();
  EXPECT_NE(second.status().message().find(path.string()), std::string::npos);
}

TEST_F(PidLockTest, ReleasedOnDestructionAndEmptied) {
  const fs::path path = dir_ / "modelwarden.lock";
  { auto lock = PidLock::Acquire(path); ASSERT_TRUE(lock.ok()); }
  EXPECT_EQ(PidLock::ReadHolder(path), 0);
  auto again = PidLock::Acquire(path);
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

// The kernel drops the lock of a process that dies without cleaning up.
TEST_F(PidLockTest, KilledHolderLeavesNoStaleLock) {
  const fs::path path = dir_ / "modelwarden.lock";
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  if (child == 0) {
    auto lock = PidLock::Acquire(path);
    char c = lock.ok() ? 'R' : 'E';
    (void)!::write(ready[1], &c, 1);
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'R');
  auto blocked = PidLock::Acquire(path);
  ASSERT_FALSE(blocked.ok());
  EXPECT_NE(blocked.status().message().find("pid " + std::to_string(child)), std::string::npos);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_EQ(PidLock::ReadHolder(path), child);  // the pid is still written...
  auto taken = PidLock::Acquire(path);          // ...but the lock is gone
  ASSERT_TRUE(taken.ok()) << taken.status().ToString();
  EXPECT_EQ(PidLock::ReadHolder(path), ::getpid());
}

TEST_F(PidLockTest, MissingDirectoryIsAnError) {
  auto lock = PidLock::Acquire(dir_ / "missing-dir" / "modelwarden.lock");
  ASSERT_FALSE(lock.ok());
  EXPECT_EQ(lock.status().code(), StatusCode::kInternal);  // ENOENT: not a permission problem
}

}  // namespace
}  // namespace mw
