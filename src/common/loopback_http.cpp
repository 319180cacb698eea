#include "common/loopback_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <optional>
#include <utility>

#include "common/time_util.h"

namespace mw {
namespace {

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_;
};

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// Waits for `events` on fd until the deadline; false on timeout.
bool WaitFd(int fd, short events, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - MonotonicMillis();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

Status Connect(const Socket& s, int port, int64_t deadline) {
  if (!s.valid()) return UnavailableError(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr = Loopback(port);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return Status::Ok();
  if (errno != EINPROGRESS) return UnavailableError(std::string("connect: ") + std::strerror(errno));
  if (!WaitFd(s.get(), POLLOUT, deadline)) return DeadlineExceededError("connect timed out");
  int err = 0;
  socklen_t len = sizeof(err);
  ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) return UnavailableError(std::string("connect: ") + std::strerror(err));
  return Status::Ok();
}

Status SendAll(const Socket& s, std::string_view out, int64_t deadline) {
  while (!out.empty()) {
    ssize_t n = ::send(s.get(), out.data(), out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      out.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!WaitFd(s.get(), POLLOUT, deadline)) return DeadlineExceededError("send timed out");
    } else {
      return UnavailableError(std::string("send: ") + std::strerror(errno));
    }
  }
  return Status::Ok();
}

// Reads into `in` until `done(in)` or EOF (*eof set).
template <typename Done>
Status ReadUntil(const Socket& s, std::string& in, int64_t deadline, size_t max_bytes, bool* eof, Done done) {
  *eof = false;
  while (!done(in)) {
    if (in.size() > max_bytes) return ResourceExhaustedError("answer larger than " + std::to_string(max_bytes) + " bytes");
    char buf[16384];
    ssize_t n = ::recv(s.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      in.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      *eof = true;
      return Status::Ok();
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!WaitFd(s.get(), POLLIN, deadline)) return DeadlineExceededError("no answer in time");
    } else {
      return UnavailableError(std::string("recv: ") + std::strerror(errno));
    }
  }
  return Status::Ok();
}

Result<int> ParseStatusLine(std::string_view head) {
  if (head.rfind("HTTP/", 0) != 0) return UnavailableError("not an HTTP answer");
  size_t space = head.find(' ');
  if (space == std::string::npos || space + 4 > head.size()) return UnavailableError("bad HTTP status line");
  int code = 0;
  for (size_t i = space + 1; i < space + 4; ++i) {
    if (head[i] < '0' || head[i] > '9') return UnavailableError("bad HTTP status line");
    code = code * 10 + (head[i] - '0');
  }
  return code;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

// Joins a chunked body; kUnavailable if it is cut short or malformed.
Result<std::string> Dechunk(std::string_view in) {
  std::string out;
  for (;;) {
    size_t eol = in.find("\r\n");
    if (eol == std::string_view::npos) return UnavailableError("chunked body cut short");
    size_t size = 0;
    size_t i = 0;
    for (; i < eol; ++i) {
      char c = in[i];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) break;
      if (size > (size_t{1} << 40)) return UnavailableError("bad chunk size");
      size = size * 16 + static_cast<size_t>(d);
    }
    if (i == 0) return UnavailableError("bad chunk size");
    if (size == 0) return out;
    in.remove_prefix(eol + 2);
    if (in.size() < size + 2) return UnavailableError("chunked body cut short");
    out.append(in.substr(0, size));
    in.remove_prefix(size + 2);
  }
}

}  // namespace

Result<int> PickFreeLoopbackPort() {
  Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) return UnavailableError(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr = Loopback(0);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return UnavailableError(std::string("bind 127.0.0.1:0: ") + std::strerror(errno));
  }
  socklen_t len = sizeof(addr);
  if (::getsockname(s.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return UnavailableError(std::string("getsockname: ") + std::strerror(errno));
  }
  return static_cast<int>(ntohs(addr.sin_port));
}

Result<int> HttpGetStatus(int port, std::string_view path, std::chrono::milliseconds timeout) {
  const int64_t deadline = MonotonicMillis() + timeout.count();
  Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  RETURN_IF_ERROR(Connect(s, port, deadline));
  RETURN_IF_ERROR(SendAll(s,
                          "GET " + std::string(path.empty() ? "/" : path) + " HTTP/1.0\r\nHost: 127.0.0.1:" +
                              std::to_string(port) + "\r\nConnection: close\r\n\r\n",
                          deadline));
  // Only the status line matters: "HTTP/1.1 200 OK".
  std::string head;
  bool eof = false;
  RETURN_IF_ERROR(ReadUntil(s, head, deadline, 1024, &eof,
                            [](const std::string& in) { return in.find('\n') != std::string::npos || in.size() >= 1024; }));
  return ParseStatusLine(head);
}

Result<HttpAnswer> HttpRequest(int port, std::string_view method, std::string_view path, std::string_view body,
                               std::chrono::milliseconds timeout, size_t max_bytes) {
  const int64_t deadline = MonotonicMillis() + timeout.count();
  Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  RETURN_IF_ERROR(Connect(s, port, deadline));
  std::string request = std::string(method) + " " + std::string(path.empty() ? "/" : path) +
                        " HTTP/1.0\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\nConnection: close\r\n";
  if (!body.empty()) {
    request += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n";
  request.append(body);
  RETURN_IF_ERROR(SendAll(s, request, deadline));

  std::string in;
  bool eof = false;
  RETURN_IF_ERROR(ReadUntil(s, in, deadline, max_bytes, &eof,
                            [](const std::string& x) { return x.find("\r\n\r\n") != std::string::npos; }));
  const size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos) return UnavailableError("connection closed before the answer's headers");
  HttpAnswer answer;
  ASSIGN_OR_RETURN(answer.status, ParseStatusLine(in));
  const std::string head = Lower(std::string_view(in).substr(0, head_end + 2));
  std::optional<size_t> length;
  if (size_t p = head.find("\r\ncontent-length:"); p != std::string::npos) {
    length = static_cast<size_t>(std::strtoull(head.c_str() + p + 17, nullptr, 10));
    if (*length > max_bytes) return ResourceExhaustedError("answer larger than " + std::to_string(max_bytes) + " bytes");
  }
  const bool chunked = head.find("transfer-encoding: chunked") != std::string::npos;
  const size_t body_start = head_end + 4;
  if (!eof) {
    RETURN_IF_ERROR(ReadUntil(s, in, deadline, max_bytes + body_start, &eof, [&](const std::string& x) {
      if (length) return x.size() >= body_start + *length;
      if (chunked) return x.find("\r\n0\r\n\r\n", body_start > 2 ? body_start - 2 : 0) != std::string::npos;
      return false;  // until EOF
    }));
  }
  std::string_view raw = std::string_view(in).substr(body_start);
  if (length) {
    if (raw.size() < *length) return UnavailableError("connection closed in the middle of the answer");
    answer.body = std::string(raw.substr(0, *length));
  } else if (chunked) {
    ASSIGN_OR_RETURN(answer.body, Dechunk(raw));
  } else {
    answer.body = std::string(raw);
  }
  return answer;
}

}  // namespace mw
