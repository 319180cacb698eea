#include "http_client/loopback_http.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

#include "common/time_util.h"

namespace mw {
namespace {

constexpr size_t kMaxHead = 64 << 10;
constexpr size_t kMaxChunkLine = 1024;

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

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

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

// The value of header `name` (lower case) in a lower-cased head, trimmed.
std::optional<std::string> HeaderValue(const std::string& head, const std::string& name) {
  const size_t p = head.find("\r\n" + name + ":");
  if (p == std::string::npos) return std::nullopt;
  size_t start = p + 3 + name.size();
  size_t end = head.find("\r\n", start);
  if (end == std::string::npos) end = head.size();
  while (start < end && (head[start] == ' ' || head[start] == '\t')) ++start;
  while (end > start && (head[end - 1] == ' ' || head[end - 1] == '\t')) --end;
  return head.substr(start, end - start);
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

}  // namespace

std::string EngineEndpoint::Describe() const {
  return socket_path.empty() ? (host.empty() ? "127.0.0.1" : host) + ":" + std::to_string(port) : "unix:" + socket_path;
}

Result<int> PickFreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return UnavailableError(Errno("socket"));
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof(addr);
  Result<int> port = UnavailableError("no port");
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    port = UnavailableError(Errno("bind 127.0.0.1:0"));
  } else if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    port = UnavailableError(Errno("getsockname"));
  } else {
    port = static_cast<int>(ntohs(addr.sin_port));
  }
  ::close(fd);
  return port;
}

Result<std::unique_ptr<HttpStream>> HttpStream::Connect(const EngineEndpoint& at, std::chrono::milliseconds timeout) {
  const int64_t deadline = MonotonicMillis() + timeout.count();
  const bool unix_socket = !at.socket_path.empty();
  if (!unix_socket && at.port <= 0) return UnavailableError("the engine has no endpoint");
  sockaddr_un un{};
  sockaddr_in in = Loopback(at.port);
  if (!unix_socket && !at.host.empty() && ::inet_pton(AF_INET, at.host.c_str(), &in.sin_addr) != 1) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (int rc = ::getaddrinfo(at.host.c_str(), nullptr, &hints, &found); rc != 0 || found == nullptr) {
      return UnavailableError("cannot resolve " + at.host + ": " + ::gai_strerror(rc));
    }
    in.sin_addr = reinterpret_cast<const sockaddr_in*>(found->ai_addr)->sin_addr;
    ::freeaddrinfo(found);
  }
  if (unix_socket) {
    if (at.socket_path.size() >= sizeof(un.sun_path)) return UnavailableError("socket path too long: " + at.socket_path);
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, at.socket_path.data(), at.socket_path.size());
  }
  int fd = ::socket(unix_socket ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return UnavailableError(Errno("socket"));
  std::unique_ptr<HttpStream> stream(new HttpStream(fd, at));
  const sockaddr* addr = unix_socket ? reinterpret_cast<const sockaddr*>(&un) : reinterpret_cast<const sockaddr*>(&in);
  const socklen_t addr_len = unix_socket ? sizeof(un) : sizeof(in);
  for (;;) {
    if (::connect(fd, addr, addr_len) == 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN && unix_socket) {  // the listener's backlog is full: try again shortly
      if (MonotonicMillis() >= deadline) return DeadlineExceededError("connect timed out");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    if (errno != EINPROGRESS) return UnavailableError("connect " + at.Describe() + ": " + std::strerror(errno));
    if (!WaitFd(fd, POLLOUT, deadline)) return DeadlineExceededError("connect timed out");
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return UnavailableError("connect " + at.Describe() + ": " + std::strerror(err));
    break;
  }
  if (!unix_socket) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  return stream;
}

HttpStream::~HttpStream() { ::close(fd_); }

void HttpStream::Shutdown() {
  if (!shut_.exchange(true)) ::shutdown(fd_, SHUT_RDWR);
}

Status HttpStream::Send(std::string_view method, std::string_view path, std::string_view body,
                        std::chrono::milliseconds timeout, std::string_view extra_headers) {
  const int64_t deadline = MonotonicMillis() + timeout.count();
  std::string out = std::string(method) + " " + std::string(path.empty() ? "/" : path) + " HTTP/1.1\r\nHost: " +
                    (at_.socket_path.empty() ? at_.Describe() : std::string("localhost")) +
                    "\r\nConnection: close\r\nAccept-Encoding: identity\r\n";
  if (!at_.api_key.empty()) out += "Authorization: Bearer " + at_.api_key + "\r\n";
  out.append(extra_headers);
  if (!body.empty() || method == "POST") {
    out += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  out += "\r\n";
  out.append(body);
  std::string_view left = out;
  while (!left.empty()) {
    if (shut_) return AbortedError("connection shut down");
    ssize_t n = ::send(fd_, left.data(), left.size(), MSG_NOSIGNAL);
    if (n > 0) {
      left.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!WaitFd(fd_, POLLOUT, deadline)) return DeadlineExceededError("send timed out");
    } else {
      return UnavailableError(Errno("send"));
    }
  }
  return Status::Ok();
}

Status HttpStream::Fill(int64_t deadline, bool* eof) {
  *eof = false;
  for (;;) {
    if (shut_) return AbortedError("connection shut down");
    char buf[16384];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
      return Status::Ok();
    }
    if (n == 0) {
      if (shut_) return AbortedError("connection shut down");
      *eof = true;
      return Status::Ok();
    }
    if (errno == EAGAIN || errno == EINTR) {
      if (!WaitFd(fd_, POLLIN, deadline)) return DeadlineExceededError("no answer in time");
      continue;
    }
    return UnavailableError(Errno("recv"));
  }
}

Status HttpStream::ReadHead(std::chrono::milliseconds timeout) {
  const int64_t deadline = MonotonicMillis() + timeout.count();
  size_t head_end;
  while ((head_end = in_.find("\r\n\r\n")) == std::string::npos) {
    if (in_.size() > kMaxHead) return UnavailableError("the answer's headers exceed 64 KiB");
    bool eof = false;
    RETURN_IF_ERROR(Fill(deadline, &eof));
    if (eof) return UnavailableError("connection closed before the answer's headers");
  }
  ASSIGN_OR_RETURN(status_, ParseStatusLine(in_));
  const std::string head = Lower(std::string_view(in_).substr(0, head_end + 2));
  const size_t first_line_end = in_.find("\r\n");
  head_ = in_.substr(first_line_end + 2, head_end + 2 - (first_line_end + 2));
  in_.erase(0, head_end + 4);
  content_type_.clear();
  if (auto type = HeaderValue(head, "content-type")) content_type_ = *type;  // lower case
  if (auto te = HeaderValue(head, "transfer-encoding"); te && te->find("chunked") != std::string::npos) {
    framing_ = Framing::kChunked;
  } else if (auto length = HeaderValue(head, "content-length")) {
    framing_ = Framing::kLength;
    char* end = nullptr;
    left_ = std::strtoull(length->c_str(), &end, 10);
    if (end == length->c_str()) return UnavailableError("bad Content-Length in the answer");
  } else if (status_ == 204 || status_ == 304 || (status_ >= 100 && status_ < 200)) {
    framing_ = Framing::kLength;
    left_ = 0;
  } else {
    framing_ = Framing::kUntilClose;
  }
  return Status::Ok();
}

std::vector<std::pair<std::string, std::string>> HttpStream::headers() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t start = 0; start < head_.size();) {
    size_t end = head_.find("\r\n", start);
    if (end == std::string::npos) end = head_.size();
    const std::string_view line = std::string_view(head_).substr(start, end - start);
    start = end + 2;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    out.emplace_back(Lower(line.substr(0, colon)), std::string(value));
  }
  return out;
}

Status HttpStream::Decode(std::string* out, bool* end) {
  switch (framing_) {
    case Framing::kUntilClose:
      out->append(in_);
      in_.clear();
      break;
    case Framing::kLength: {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(left_, in_.size()));
      out->append(in_, 0, take);
      in_.clear();  // anything past the body is not ours (Connection: close)
      left_ -= take;
      if (left_ == 0) finished_ = true;
      break;
    }
    case Framing::kChunked: {
      size_t pos = 0;
      while (chunk_ != ChunkState::kDone) {
        if (chunk_ == ChunkState::kSize) {
          const size_t eol = in_.find("\r\n", pos);
          if (eol == std::string::npos) {
            if (in_.size() - pos > kMaxChunkLine) return UnavailableError("bad chunk size line in the answer");
            break;
          }
          uint64_t size = 0;
          size_t i = pos;
          for (; i < eol; ++i) {
            const char c = in_[i];
            const int d = c >= '0' && c <= '9'   ? c - '0'
                          : c >= 'a' && c <= 'f' ? c - 'a' + 10
                          : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                 : -1;
            if (d < 0) break;
            if (size > (uint64_t{1} << 40)) return UnavailableError("bad chunk size in the answer");
            size = size * 16 + static_cast<uint64_t>(d);
          }
          if (i == pos) return UnavailableError("bad chunk size in the answer");
          pos = eol + 2;
          left_ = size;
          chunk_ = size == 0 ? ChunkState::kDone : ChunkState::kData;  // trailers are not read
        } else if (chunk_ == ChunkState::kData) {
          const size_t take = static_cast<size_t>(std::min<uint64_t>(left_, in_.size() - pos));
          if (take == 0) break;
          out->append(in_, pos, take);
          pos += take;
          left_ -= take;
          if (left_ == 0) chunk_ = ChunkState::kDataEnd;
        } else {  // kDataEnd: the CRLF after a chunk's data
          if (in_.size() - pos < 2) break;
          if (in_.compare(pos, 2, "\r\n") != 0) return UnavailableError("bad chunk in the answer");
          pos += 2;
          chunk_ = ChunkState::kSize;
        }
      }
      in_.erase(0, pos);
      if (chunk_ == ChunkState::kDone) finished_ = true;
      break;
    }
  }
  *end = finished_;
  return Status::Ok();
}

Status HttpStream::Read(std::string* out, bool* end, std::chrono::milliseconds timeout) {
  const int64_t deadline = MonotonicMillis() + timeout.count();
  const size_t before = out->size();
  for (;;) {
    RETURN_IF_ERROR(Decode(out, end));
    if (*end || out->size() > before) return Status::Ok();
    bool eof = false;
    RETURN_IF_ERROR(Fill(deadline, &eof));
    if (eof) {
      if (framing_ != Framing::kUntilClose) return UnavailableError("connection closed in the middle of the answer");
      finished_ = true;
      *end = true;
      return Status::Ok();
    }
  }
}

namespace {

// What is left of `deadline` (at least 1 ms), for the next step of a call.
std::chrono::milliseconds Left(int64_t deadline) {
  return std::chrono::milliseconds(std::max<int64_t>(deadline - MonotonicMillis(), 1));
}

// Connects, sends the request and reads the answer's head, all before `deadline`.
Result<std::unique_ptr<HttpStream>> OpenAnswer(const EngineEndpoint& at, std::string_view method,
                                               std::string_view path, std::string_view body,
                                               std::chrono::milliseconds timeout, int64_t deadline) {
  ASSIGN_OR_RETURN(std::unique_ptr<HttpStream> stream, HttpStream::Connect(at, timeout));
  RETURN_IF_ERROR(stream->Send(method, path, body, Left(deadline)));
  RETURN_IF_ERROR(stream->ReadHead(Left(deadline)));
  return stream;
}

}  // namespace

Result<int> HttpGetStatus(const EngineEndpoint& at, std::string_view path, std::chrono::milliseconds timeout) {
  const int64_t deadline = MonotonicMillis() + timeout.count();
  ASSIGN_OR_RETURN(std::unique_ptr<HttpStream> stream, OpenAnswer(at, "GET", path, "", timeout, deadline));
  return stream->status();
}

Result<HttpAnswer> HttpRequest(const EngineEndpoint& at, std::string_view method, std::string_view path,
                               std::string_view body, std::chrono::milliseconds timeout, size_t max_bytes) {
  const int64_t deadline = MonotonicMillis() + timeout.count();
  ASSIGN_OR_RETURN(std::unique_ptr<HttpStream> stream, OpenAnswer(at, method, path, body, timeout, deadline));
  HttpAnswer answer;
  answer.status = stream->status();
  for (bool end = false; !end;) {
    RETURN_IF_ERROR(stream->Read(&answer.body, &end, Left(deadline)));
    if (answer.body.size() > max_bytes) {
      return ResourceExhaustedError("answer larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  return answer;
}

}  // namespace mw
