// The load of one session: callbacks that feed it and the loop that decides
// its outcome (private to src/supervisor/).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "supervisor/session.h"
#include "supervisor/supervisor.h"

namespace mw::supervisor_internal {

// Points the spawn's callbacks at the session. `on_loaded_death` runs (on
// the monitor thread, no lock held) when the process ends while kLoaded.
void AttachSessionCallbacks(SpawnOptions& spawn, const std::weak_ptr<Session>& session,
                            std::function<void(const std::shared_ptr<Session>&)> on_loaded_death);

// The values of a command's placeholders.
struct Placeholders {
  std::string model_path;
  std::string model_name;
  int port = 0;
  std::string api_key;
};

// Replaces {model_path}, {model_name}, {port} and {api_key} in every
// argument, in one pass: text that came from a value is never expanded
// again. Any other {...} stays as written.
std::vector<std::string> SubstituteArgv(const std::vector<std::string>& argv, const Placeholders& values);

// Waits for the end of the load of a spawned session (session.child is set)
// and stops the process unless it succeeded. On kSuccess the session is
// kLoaded; otherwise kEnded with final_exit set. Blocks; calls the observer
// on this thread.
// `endpoint`: where the engine will answer (a worker's `loaded` must name
// the same socket).
LoadReport RunLoad(Session& session, const LoadRequest& request, const SupervisorOptions& options,
                   const EngineEndpoint& endpoint, const LoadObserver& observer, int64_t start_ms);

}  // namespace mw::supervisor_internal
