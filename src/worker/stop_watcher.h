// Watches the worker's stdin for the server's commands (docs/worker-protocol.md).
#pragma once

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "protocol/protocol.h"

namespace mw::worker {

// Watches stdin: a "stop" line or EOF sets the flag (and wakes the waiter);
// "verified" / "verify" (verify "request", SPEC §16) are kept for
// WaitVerification.
// The reader thread is detached and shares the state, because it can wake
// after RunLoad has returned (the server closes stdin once it has seen an
// error reply) and must not touch a watcher that no longer exists.
class StopWatcher {
 public:
  void Start() {
    std::thread([state = state_] {
      char buf[256];
      std::string line;
      while (true) {
        ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // EOF or error: the server is gone or closed the pipe
        line.append(buf, static_cast<size_t>(n));
        size_t nl;
        bool stop = false;
        while ((nl = line.find('\n')) != std::string::npos) {
          std::string cmd = line.substr(0, nl);
          line.erase(0, nl + 1);
          if (!cmd.empty() && cmd.back() == '\r') cmd.pop_back();
          if (cmd == protocol::kStopCommand) stop = true;
          else if (cmd == protocol::kVerifiedCommand) state->SetVerification(Verification::kVerified);
          else if (cmd == protocol::kVerifyCommand) state->SetVerification(Verification::kDecodeNow);
          else if (!cmd.empty()) std::fprintf(stderr, "modelwarden-worker: ignoring unknown command '%s'\n", cmd.c_str());
        }
        if (stop) break;
        if (line.size() > 4096) line.clear();
      }
      state->Request();
    }).detach();  // it ends by itself after stop/EOF; the process may exit first
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(state_->mu);
    state_->cv.wait(lock, [this] { return state_->stop.load(); });
  }
  // True once stop was asked for; waits at most `timeout` for it.
  bool WaitFor(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(state_->mu);
    return state_->cv.wait_for(lock, timeout, [this] { return state_->stop.load(); });
  }
  const std::atomic<bool>* flag() const { return &state_->stop; }

  // The server's word after `ready`: kVerified (the request's first token
  // exists), kDecodeNow (it ended without one: decode now), or kStopped
  // (stop or EOF). Waits for the first of them.
  enum class Verification { kNone, kVerified, kDecodeNow, kStopped };
  Verification WaitVerification() {
    std::unique_lock<std::mutex> lock(state_->mu);
    state_->cv.wait(lock, [this] { return state_->stop.load() || state_->verification != Verification::kNone; });
    return state_->stop ? Verification::kStopped : state_->verification;
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::atomic<bool> stop{false};
    Verification verification = Verification::kNone;  // the first one counts

    void SetVerification(Verification v) {
      std::lock_guard<std::mutex> lock(mu);
      if (verification == Verification::kNone) verification = v;
      cv.notify_all();
    }

    void Request() {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
      cv.notify_all();
    }
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace mw::worker
