// systemd readiness: the real server started with NOTIFY_SOCKET pointing at a
// datagram socket this test owns sends READY=1 once it listens, WATCHDOG=1
// when WATCHDOG_USEC is set, and STOPPING=1 when it is told to stop.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "harness.h"

namespace mw::itest {
namespace {

namespace fs = std::filesystem;

// A bound AF_UNIX datagram socket: a path, or an abstract name when `path` starts with '@'.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.data(), path_.size());
    if (path_[0] == '@') addr.sun_path[0] = '\0';
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size());
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0;
    timeval tv{0, 200 * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~NotifySocket() { ::close(fd_); }
  bool bound() const { return bound_; }
  const std::string& path() const { return path_; }

  // Reads datagrams until one contains `line` (a whole line) or ~20 s pass;
  // every datagram read is appended to messages_.
  bool WaitFor(const std::string& line) {
    for (const auto& m : messages_) {
      if (HasLine(m, line)) return true;
    }
    for (int i = 0; i < 100; ++i) {
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) continue;
      messages_.emplace_back(buf, static_cast<size_t>(n));
      if (HasLine(messages_.back(), line)) return true;
    }
    return false;
  }
  // Index of the first message with `line`, or -1.
  int IndexOf(const std::string& line) const {
    for (size_t i = 0; i < messages_.size(); ++i) {
      if (HasLine(messages_[i], line)) return static_cast<int>(i);
    }
    return -1;
  }
  std::string All() const {
    std::string all;
    for (const auto& m : messages_) all += "[" + m + "] ";
    return all;
  }

 private:
  static bool HasLine(const std::string& message, const std::string& line) {
    return ("\n" + message + "\n").find("\n" + line + "\n") != std::string::npos;
  }
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
  std::vector<std::string> messages_;
};

TEST(SystemdNotifyTest, ReadyThenWatchdogThenStopping) {
  TempDir dir;
  NotifySocket sock((dir.path() / "notify.sock").string());
  ASSERT_TRUE(sock.bound()) << std::strerror(errno);
  Server server(dir.path() / "data", AllowApiCommands(dir.path()),
                {{"NOTIFY_SOCKET", sock.path()}, {"WATCHDOG_USEC", "400000"}});
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_TRUE(sock.WaitFor("READY=1")) << sock.All();
  EXPECT_TRUE(sock.WaitFor("WATCHDOG=1")) << sock.All();
  // Engines the server starts do not inherit the socket (they could make the
  // server look ready or alive).
  ASSERT_EQ(server.Call("POST", "/api/models",
                        CommandModel("env", {"--env", "NOTIFY_SOCKET", "--env", "WATCHDOG_USEC", "--then", "exit1"}))
                .status,
            201);
  HttpReply env = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"env"})");
  const std::string log = env.body["error"]["classification"].value("log_excerpt", "");
  EXPECT_NE(log.find("NOTIFY_SOCKET=<unset>"), std::string::npos) << env.raw;
  EXPECT_NE(log.find("WATCHDOG_USEC=<unset>"), std::string::npos) << env.raw;
  EXPECT_EQ(server.Stop(), 0);
  ASSERT_TRUE(sock.WaitFor("STOPPING=1")) << sock.All();
  EXPECT_LT(sock.IndexOf("READY=1"), sock.IndexOf("STOPPING=1")) << sock.All();
  EXPECT_LT(sock.IndexOf("READY=1"), sock.IndexOf("WATCHDOG=1")) << sock.All();
}

TEST(SystemdNotifyTest, AbstractSocketAndNoWatchdogWithoutWatchdogUsec) {
  TempDir dir;
  std::random_device rd;
  NotifySocket sock("@mw-notify-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
  ASSERT_TRUE(sock.bound()) << std::strerror(errno);
  Server server(dir.path() / "data", {}, {{"NOTIFY_SOCKET", sock.path()}});
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_TRUE(sock.WaitFor("READY=1")) << sock.All();
  EXPECT_EQ(server.Stop(), 0);
  ASSERT_TRUE(sock.WaitFor("STOPPING=1")) << sock.All();
  EXPECT_EQ(sock.IndexOf("WATCHDOG=1"), -1) << sock.All();
}

// A watchdog meant for another process (WATCHDOG_PID) is not ours to feed.
TEST(SystemdNotifyTest, WatchdogForAnotherPidIsIgnored) {
  TempDir dir;
  NotifySocket sock((dir.path() / "notify.sock").string());
  ASSERT_TRUE(sock.bound());
  Server server(dir.path() / "data", {},
                {{"NOTIFY_SOCKET", sock.path()}, {"WATCHDOG_USEC", "200000"}, {"WATCHDOG_PID", "1"}});
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_TRUE(sock.WaitFor("READY=1")) << sock.All();
  EXPECT_EQ(server.Stop(), 0);
  ASSERT_TRUE(sock.WaitFor("STOPPING=1")) << sock.All();
  EXPECT_EQ(sock.IndexOf("WATCHDOG=1"), -1) << sock.All();
}

}  // namespace
}  // namespace mw::itest
