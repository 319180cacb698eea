#include "worker/channel.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace mw::worker {

ProtocolChannel& ProtocolChannel::Get() {
  static ProtocolChannel* channel = [] {
    int fd = protocol::kDefaultProtocolFd;
    if (const char* env = std::getenv(protocol::kProtocolFdEnv); env != nullptr && *env != '\0') {
      char* end = nullptr;
      long v = std::strtol(env, &end, 10);
      if (end != nullptr && *end == '\0' && v >= 0 && v < 65536) fd = static_cast<int>(v);
    }
    if (::fcntl(fd, F_GETFD) == -1) {
      fd = STDOUT_FILENO;  // not started by the server: answer on stdout
    } else if (fd > STDERR_FILENO) {
      // The pipe must not leak into anything llama.cpp might start.
      ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC);
    }
    return new ProtocolChannel(fd);  // lives until exit; never destroyed mid-send
  }();
  return *channel;
}

void ProtocolChannel::Send(const protocol::Message& message) {
  std::lock_guard<std::mutex> lock(mu_);
  Status s = protocol::WriteMessage(fd_, message);
  if (!s.ok()) std::fprintf(stderr, "modelwarden-worker: protocol write failed: %s\n", s.ToString().c_str());
}

void ProtocolChannel::SendError(const char* code, const std::string& message) {
  std::fprintf(stderr, "modelwarden-worker: error %s: %s\n", code, message.c_str());
  Send(protocol::ErrorMessage{code, message});
}

}  // namespace mw::worker
