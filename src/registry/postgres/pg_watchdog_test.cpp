// SocketWatchdog: a read that blocks past its deadline is woken (the socket
// shut down); a call that finished in time leaves the socket alone.
#include "registry/postgres/pg_watchdog.h"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace mw::registry_internal {
namespace {

TEST(SocketWatchdogTest, ABlockedReadPastItsDeadlineIsWokenAndOneInTimeIsLeftAlone) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  SocketWatchdog watchdog;
  // In time: disarmed before the deadline, the socket still works.
  const int64_t quick = watchdog.Arm(fds[0], std::chrono::seconds(60));
  EXPECT_FALSE(watchdog.Disarm(quick));
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  char c = 0;
  EXPECT_EQ(::read(fds[0], &c, 1), 1);
  // Past it: the blocked read returns (end of file) instead of waiting for ever.
  const int64_t slow = watchdog.Arm(fds[0], std::chrono::milliseconds(50));
  EXPECT_EQ(::read(fds[0], &c, 1), 0);
  EXPECT_TRUE(watchdog.Disarm(slow));
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace
}  // namespace mw::registry_internal
