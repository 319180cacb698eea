#include "supervisor/http_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/time_util.h"
#include "supervisor/fd.h"

namespace mw {
namespace {

using supervisor_internal::Fd;

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

}  // namespace

Result<int> PickFreeLoopbackPort() {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
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
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s.valid()) return UnavailableError(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr = Loopback(port);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) return UnavailableError(std::string("connect: ") + std::strerror(errno));
    if (!WaitFd(s.get(), POLLOUT, deadline)) return DeadlineExceededError("connect timed out");
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return UnavailableError(std::string("connect: ") + std::strerror(err));
  }
  std::string request = "GET " + std::string(path.empty() ? "/" : path) + " HTTP/1.0\r\nHost: 127.0.0.1:" +
                        std::to_string(port) + "\r\nConnection: close\r\n\r\n";
  std::string_view out = request;
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
  // Only the status line matters: "HTTP/1.1 200 OK".
  std::string head;
  while (head.find('\n') == std::string::npos && head.size() < 1024) {
    char buf[512];
    ssize_t n = ::recv(s.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      head.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!WaitFd(s.get(), POLLIN, deadline)) return DeadlineExceededError("no answer in time");
    } else {
      return UnavailableError(std::string("recv: ") + std::strerror(errno));
    }
  }
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

}  // namespace mw
