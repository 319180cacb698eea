// The command-line client against the real server: tables, --json, exit codes.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "harness.h"

namespace mw::itest {
namespace {

TEST(CliTest, CommandsAndExitCodes) {
  TempDir dir;
  ASSERT_TRUE(MakeTestModel(dir.path() / "data" / "models" / "tiny.gguf"));
  Server server(dir.path() / "data");
  ASSERT_TRUE(server.started());

  ProcessResult empty = server.Cli({"models", "list"});
  EXPECT_EQ(empty.exit_code, 0);
  EXPECT_NE(empty.out.find("No models registered"), std::string::npos);

  ProcessResult add = server.Cli({"models", "add", "tiny", "--file", "tiny.gguf", "--load-config", R"({"n_ctx":256})"});
  EXPECT_EQ(add.exit_code, 0) << add.err;
  ProcessResult dup = server.Cli({"models", "add", "tiny", "--file", "tiny.gguf"});
  EXPECT_EQ(dup.exit_code, 1);
  EXPECT_NE(dup.err.find("model_exists"), std::string::npos);

  ProcessResult list = server.Cli({"models", "list"});
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_NE(list.out.find("NAME"), std::string::npos);
  EXPECT_NE(list.out.find("tiny"), std::string::npos);
  ProcessResult json_list = server.Cli({"models", "list", "--json"});
  EXPECT_EQ(json_list.exit_code, 0);
  EXPECT_EQ(json::parse(json_list.out)["models"][0]["model_name"], "tiny");

  ProcessResult load = server.Cli({"load", "tiny"});
  EXPECT_EQ(load.exit_code, 0) << load.err;
  ProcessResult show = server.Cli({"models", "show", "tiny"});
  EXPECT_EQ(show.exit_code, 0);
  EXPECT_NE(show.out.find("compatible"), std::string::npos);
  EXPECT_NE(show.out.find("recent attempts"), std::string::npos);
  ProcessResult status = server.Cli({"status"});
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_NE(status.out.find("loaded: tiny"), std::string::npos) << status.out;
  EXPECT_EQ(server.Cli({"unload", "tiny"}).exit_code, 0);

  ProcessResult set = server.Cli({"models", "set", "tiny", "--status", "incompatible", "--notes", "manual"});
  EXPECT_EQ(set.exit_code, 0) << set.err;
  ProcessResult refused = server.Cli({"load", "tiny"});
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_NE(refused.err.find("--force"), std::string::npos);
  EXPECT_EQ(server.Cli({"load", "tiny", "--force"}).exit_code, 0);

  EXPECT_EQ(server.Cli({"models", "show", "ghost"}).exit_code, 1);
  EXPECT_EQ(server.Cli({"models", "set", "tiny", "--status", "testing"}).exit_code, 1);
  EXPECT_EQ(server.Cli({"models", "set", "tiny"}).exit_code, 2);
  EXPECT_EQ(server.Cli({"models", "add", "x", "--load-config", "[1]"}).exit_code, 2);
  EXPECT_EQ(server.Cli({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(server.Cli({"load"}).exit_code, 2);
  EXPECT_EQ(server.Cli({"models", "rm", "tiny"}).exit_code, 0);
  EXPECT_EQ(server.Cli({"models", "rm", "tiny"}).exit_code, 1);

  // No server there: exit 1 and a message that says what to do.
  ProcessResult down = RunProcess({(BinDir() / "modelwarden").string(), "--url", "http://127.0.0.1:1", "status"});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_NE(down.err.find("modelwarden serve"), std::string::npos) << down.err;
  ProcessResult env_url = RunProcess({(BinDir() / "modelwarden").string(), "models", "list"}, {{"MODELWARDEN_URL", server.url()}});
  EXPECT_EQ(env_url.exit_code, 0) << env_url.err;
}

// Answers every request on a loopback port with `response` (raw HTTP): a
// server that is not modelwarden, or a broken one.
class CannedHttpServer {
 public:
  explicit CannedHttpServer(std::string response) : response_(std::move(response)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 8) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~CannedHttpServer() {
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  void Serve() {
    for (;;) {
      int conn = ::accept(fd_, nullptr, nullptr);
      if (conn < 0) return;
      std::string request;
      char buf[4096];
      size_t body_start = std::string::npos;
      while (body_start == std::string::npos) {
        ssize_t n = ::read(conn, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
        if (size_t end = request.find("\r\n\r\n"); end != std::string::npos) body_start = end + 4;
      }
      size_t length = 0;
      if (size_t cl = request.find("Content-Length: "); cl != std::string::npos) {
        length = std::stoul(request.substr(cl + 16));
      }
      while (body_start != std::string::npos && request.size() < body_start + length) {
        ssize_t n = ::read(conn, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      (void)!::write(conn, response_.data(), response_.size());
      ::close(conn);
    }
  }

  std::string response_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

std::string Http200(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

// JSON of an unexpected shape (another server on that port, or a broken
// proxy) is an error, exit 1, not an abort from an uncaught exception.
TEST(CliTest, UnexpectedJsonFromServerIsAnErrorNotACrash) {
  const std::string cli = (BinDir() / "modelwarden").string();
  CannedHttpServer array_server(Http200("[]"));
  ProcessResult list = RunProcess({cli, "--url", array_server.url(), "models", "list"});
  EXPECT_EQ(list.exit_code, 1) << list.err;
  EXPECT_NE(list.err.find("unexpected"), std::string::npos) << list.err;

  CannedHttpServer wrong_types(Http200(R"({"already_loaded":"yes","model":[]})"));
  ProcessResult load = RunProcess({cli, "--url", wrong_types.url(), "load", "tiny"});
  EXPECT_EQ(load.exit_code, 1) << load.err;

  CannedHttpServer number_devices(Http200(R"({"version":"x","counts":{},"devices":5})"));
  ProcessResult status = RunProcess({cli, "--url", number_devices.url(), "status"});
  EXPECT_EQ(status.exit_code, 1) << status.err;
}

}  // namespace
}  // namespace mw::itest
