// Where the worker's protocol messages go: the fd named by MW_PROTOCOL_FD
// (default 3), or stdout when that fd is not open (a worker run by hand).
// Send() is thread-safe (one write per message, under a mutex).
#pragma once

#include <mutex>

#include "protocol/protocol.h"

namespace mw::worker {

class ProtocolChannel {
 public:
  // Resolves the fd once. An MW_PROTOCOL_FD that is not a number falls back to 3.
  static ProtocolChannel& Get();

  // Best effort: a closed pipe (server gone) is noted on stderr, not fatal;
  // the worker then stops on stdin EOF.
  void Send(const protocol::Message& message);
  void SendError(const char* code, const std::string& message);

 private:
  explicit ProtocolChannel(int fd) : fd_(fd) {}
  int fd_;
  std::mutex mu_;
};

}  // namespace mw::worker
