// The server's connection threads follow the connections open at once, never
// the traffic so far (api/http_server.h "Threading"): counted in
// /proc/PID/status of the real server, with connections that each hold a
// connection thread (a request's first line sent, the rest never).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace mw::itest {
namespace {

int ThreadsOf(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

// Polls until `pred(threads)` holds; the last count seen (after ~30 s, whatever it is).
template <class Pred>
int WaitForThreads(pid_t pid, Pred pred) {
  int n = ThreadsOf(pid);
  for (int i = 0; i < 600 && !pred(n); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    n = ThreadsOf(pid);
  }
  return n;
}

// A connection that holds a server thread: the request's first line, no more
// (the server waits up to its 30 s read timeout for the rest).
int HoldingConnection(int port) {
  int fd = ConnectLoopback(port);
  const std::string first = "GET /api/status HTTP/1.1\r\n";
  if (fd >= 0 && ::send(fd, first.data(), first.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(first.size())) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// max_queue = 0: at most 64 connection threads (64 + max_queue), 8 kept while
// idle. A burst of 100 held connections takes the pool to its 64, not one
// more; once they close, the threads started for them end (3 s idle) and the
// count is back where it was. Before: 64 + max_queue threads from the start.
TEST(ServerThreadsTest, ConnectionThreadsFollowTheOpenConnectionsAndStayBounded) {
  TempDir dir;
  Server server(dir.path() / "data", ConfigArgs(dir.path(), "max_queue = 0\n"));
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(server.Call("GET", "/api/status").status, 200);
  constexpr int kPool = 64, kResident = 8;
  // Idle: the 8 resident connection threads and the server's own (~10).
  const int idle = WaitForThreads(server.pid(), [&](int n) { return n >= 0 && n < kPool; });
  ASSERT_GT(idle, 0);
  ASSERT_LT(idle, kPool) << "an idle server keeps only its resident connection threads";
  // `idle` may hold a thread still ending after the first call: 2 of slack.
  const int pool_full = idle - kResident + kPool;

  std::vector<int> fds;
  for (int i = 0; i < 100; ++i) {
    int fd = HoldingConnection(server.port());
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  const int busy = WaitForThreads(server.pid(), [&](int n) { return n >= pool_full - 2; });
  EXPECT_GE(busy, pool_full - 2) << "100 held connections use the whole pool";
  // Never more than the pool (a thread per connection would be 36 more).
  EXPECT_LE(ThreadsOf(server.pid()), pool_full + 2);

  for (int fd : fds) ::close(fd);
  const int after = WaitForThreads(server.pid(), [&](int n) { return n <= idle; });
  EXPECT_LE(after, idle) << "the threads started for the burst end once idle";
  EXPECT_EQ(server.Call("GET", "/api/status").status, 200);
}

}  // namespace
}  // namespace mw::itest
