// One model's session inside the Supervisor (private to src/supervisor/).
#pragma once

#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <re2/re2.h>

#include "protocol/protocol.h"
#include "supervisor/child_process.h"
#include "supervisor/supervisor.h"

namespace mw::supervisor_internal {

enum class Phase { kLoading, kLoaded, kStopping, kEnded };

// Everything the monitor thread's callbacks report and the Load() / Unload()
// threads wait on. All fields are guarded by `mu`, except `child` (set once
// under mu right after the spawn, then only its thread-safe methods are used)
// and the fields fixed before the spawn (name, engine, stop, ready_re).
struct Session {
  std::string name;
  EngineKind engine = EngineKind::kLlamaCpp;
  StopOptions stop;
  std::unique_ptr<RE2> ready_re;  // command engines with ready_pattern
  std::string socket_path;        // llama.cpp engines: removed with the session

  std::mutex mu;
  std::condition_variable cv;
  Phase phase = Phase::kLoading;
  bool cancel = false;
  int64_t last_activity_ms = 0;
  std::optional<double> progress;
  bool progress_pending = false;
  std::optional<protocol::LoadedMessage> loaded;
  std::optional<protocol::ReadyMessage> ready;  // verify "request": the engine listens
  bool ready_reported = false;                  // LoadObserver::on_ready was called
  bool standby = false;  // a pre-started worker said `standby` (waits for its `load` line)
  std::optional<protocol::ErrorMessage> error;
  std::string protocol_error;
  std::optional<int64_t> protocol_closed_at_ms;
  bool ready_matched = false;
  std::optional<ProcessExit> exit;        // the process ended (from on_exit)
  std::optional<ProcessExit> final_exit;  // what Unload() returns once kEnded
  LoadedModel info;                       // filled when kLoaded
  int64_t loaded_at_ms = 0;

  std::optional<ChildProcess> child;

  Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  // The engine is gone by now (a session outlives its process): its socket
  // file goes too. unlink() cannot throw.
  ~Session() {
    if (!socket_path.empty()) ::unlink(socket_path.c_str());
  }
};

}  // namespace mw::supervisor_internal
