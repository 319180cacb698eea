// The engine client (loopback_http.h) against a scripted server on a Unix
// socket: the request it sends (key included) and the answers it decodes
// (chunked in awkward pieces, Content-Length, until close, cut short).
#include "http_client/loopback_http.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace mw {
namespace {

using std::chrono::milliseconds;

// Serves one connection on a fresh Unix socket: reads the request head,
// then writes `pieces` one by one (a short pause between them; before piece
// `hold_before`, it waits for Release()) and closes.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<std::string> pieces, size_t hold_before = 0) {
    char dir[] = "/tmp/mw-lh-XXXXXX";
    dir_ = ::mkdtemp(dir);
    path_ = dir_ + "/e.sock";
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.copy(addr.sun_path, path_.size());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    thread_ = std::thread([this, hold_before, pieces = std::move(pieces)] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      while (request_.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::read(c, buf, sizeof(buf));
        if (n <= 0) break;
        request_.append(buf, static_cast<size_t>(n));
      }
      for (size_t i = 0; i < pieces.size(); ++i) {
        if (hold_before != 0 && i == hold_before) {
          std::unique_lock lock(mu_);
          cv_.wait(lock, [this] { return released_; });
        }
        if (::write(c, pieces[i].data(), pieces[i].size()) < 0) break;
        std::this_thread::sleep_for(milliseconds(5));
      }
      ::close(c);
    });
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  ~ScriptedServer() {
    Release();
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  EngineEndpoint endpoint(std::string key = "") const { return {path_, 0, std::move(key)}; }
  const std::string& request() const { return request_; }  // after the answer was read

 private:
  std::string dir_, path_;
  int fd_ = -1;
  std::string request_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  std::thread thread_;
};

TEST(LoopbackHttpTest, SendsTheKeyAndJoinsAChunkedAnswerSplitAnywhere) {
  ScriptedServer server({"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: Text/Event-Stream\r\n\r\n5\r",
                         "\nhello\r\n", "6\r\n wor", "ld\r\n0\r\n\r\n"});
  auto answer = HttpRequest(server.endpoint("k123"), "POST", "/v1/completions", R"({"a":1})", milliseconds(5000));
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  EXPECT_EQ(answer->status, 200);
  EXPECT_EQ(answer->body, "hello world");
  EXPECT_NE(server.request().find("POST /v1/completions HTTP/1.1\r\n"), std::string::npos) << server.request();
  EXPECT_NE(server.request().find("\r\nAuthorization: Bearer k123\r\n"), std::string::npos) << server.request();
}

TEST(LoopbackHttpTest, AStreamHandsPiecesOverAsTheyArrive) {
  // The second event is sent only once the first was read.
  ScriptedServer server({"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
                         "7\r\ndata: 1\r\n", "7\r\ndata: 2\r\n", "0\r\n\r\n"},
                        2);
  auto stream = HttpStream::Connect(server.endpoint(), milliseconds(5000));
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  ASSERT_TRUE((*stream)->Send("POST", "/x", "{}", milliseconds(5000)).ok());
  ASSERT_TRUE((*stream)->ReadHead(milliseconds(5000)).ok());
  EXPECT_EQ((*stream)->content_type(), "text/event-stream");
  std::vector<std::string> pieces;
  for (bool end = false; !end;) {
    std::string piece;
    ASSERT_TRUE((*stream)->Read(&piece, &end, milliseconds(5000)).ok());
    if (!piece.empty()) pieces.push_back(piece);
    if (pieces.size() == 1) server.Release();
  }
  EXPECT_EQ(pieces, (std::vector<std::string>{"data: 1", "data: 2"}));
}

// SPEC §21: a call to a fleet peer adds header lines, and the proxy keeps
// the answer's headers (names lower case, values as sent).
TEST(LoopbackHttpTest, ExtraRequestHeadersAndTheAnswersHeaders) {
  ScriptedServer server({"HTTP/1.1 200 OK\r\nX-Modelwarden-Node: Gpu-B-1f3a\r\nContent-Length: 2\r\n\r\nok"});
  auto stream = HttpStream::Connect(server.endpoint(), milliseconds(5000));
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  ASSERT_TRUE((*stream)->Send("POST", "/v1/x", "{}", milliseconds(5000), "X-Modelwarden-Hop: 1\r\n").ok());
  ASSERT_TRUE((*stream)->ReadHead(milliseconds(5000)).ok());
  using Header = std::pair<std::string, std::string>;
  EXPECT_EQ((*stream)->headers(),
            (std::vector<Header>{{"x-modelwarden-node", "Gpu-B-1f3a"}, {"content-length", "2"}}));
  std::string body;
  for (bool end = false; !end;) ASSERT_TRUE((*stream)->Read(&body, &end, milliseconds(5000)).ok());
  EXPECT_EQ(body, "ok");
  EXPECT_NE(server.request().find("\r\nX-Modelwarden-Hop: 1\r\n"), std::string::npos) << server.request();
}

TEST(LoopbackHttpTest, LengthUntilCloseAndCutShortAnswers) {
  {
    ScriptedServer server({"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnopeEXTRA"});
    auto answer = HttpRequest(server.endpoint(), "GET", "/", "", milliseconds(5000));
    ASSERT_TRUE(answer.ok()) << answer.status().ToString();
    EXPECT_EQ(answer->status, 404);
    EXPECT_EQ(answer->body, "nope");
  }
  {
    ScriptedServer server({"HTTP/1.0 200 OK\r\n\r\nall", " of it"});
    auto answer = HttpRequest(server.endpoint(), "GET", "/", "", milliseconds(5000));
    ASSERT_TRUE(answer.ok()) << answer.status().ToString();
    EXPECT_EQ(answer->body, "all of it");
  }
  {
    ScriptedServer server({"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"});
    EXPECT_EQ(HttpRequest(server.endpoint(), "GET", "/", "", milliseconds(5000)).status().code(), StatusCode::kUnavailable);
  }
  {
    ScriptedServer server({"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"});
    EXPECT_EQ(HttpRequest(server.endpoint(), "GET", "/", "", milliseconds(5000)).status().code(), StatusCode::kUnavailable);
  }
  {
    ScriptedServer server({"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'x')});
    EXPECT_EQ(HttpRequest(server.endpoint(), "GET", "/", "", milliseconds(5000), 10).status().code(),
              StatusCode::kResourceExhausted);
  }
}

TEST(LoopbackHttpTest, NothingListeningIsUnavailable) {
  EXPECT_EQ(HttpGetStatus({"/tmp/mw-no-such-dir/x.sock", 0, ""}, "/health", milliseconds(1000)).status().code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(HttpGetStatus({}, "/health", milliseconds(1000)).status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace mw
