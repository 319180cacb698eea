// app/engine_deaths.h: how each engine process ended, for the /v1 edge
// (a collaborator of ModelService: inference admission's engine deaths).
//
// Contract: the supervisor's death callback records a death (pid -> its
// classified summary), an unload records a stop (on purpose), and the
// shutdown closes the record. A death may be a hang: the health watch
// stopped the engine (SPEC §19), and its requests answer engine_hung. A /v1 request whose engine connection broke
// waits (on a condition) for the pid's end: a death answers with its
// summary; a stop, the shutdown or the timeout answers nullopt (not a
// crash to report). Keyed by pid, not model name: a late answer about an
// older engine of the same model never reads as the newer one's. Keeps the
// last kKept of each. Thread-safe; its own lock.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "api/model_api.h"

namespace mw::app {

class EngineDeaths {
 public:
  static constexpr size_t kKept = 256;
  void NoteDeath(int pid, const std::string& summary, bool hung = false);
  void NoteStopped(int pid);  // stopped on purpose (an unload): Await returns at once
  void Close();               // shutting down: engines are about to be stopped, no death to wait for
  // The death (its summary, and whether it was a hang), or nullopt (stopped
  // on purpose, shutting down, or no end within timeout_ms: then
  // `on_timeout` runs, e.g. to log it).
  std::optional<api::EngineEnd> Await(int pid, int64_t timeout_ms, const std::function<void()>& on_timeout);

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  bool closed_ = false;
  std::map<int, api::EngineEnd> deaths_;  // pid -> how it ended, the last few
  std::set<int> stops_;                // pids stopped by an unload, the last few
};

}  // namespace mw::app
