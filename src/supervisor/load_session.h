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

// Replaces {model_path}, {model_name} and {port} in every argument.
std::vector<std::string> SubstituteArgv(const std::vector<std::string>& argv, const std::string& model_path,
                                        const std::string& model_name, int port);

// Waits for the end of the load of a spawned session (session.child is set)
// and stops the process unless it succeeded. On kSuccess the session is
// kLoaded; otherwise kEnded with final_exit set. Blocks; calls the observer
// on this thread.
LoadReport RunLoad(Session& session, const LoadRequest& request, const SupervisorOptions& options, int port,
                   const LoadObserver& observer, int64_t start_ms);

}  // namespace mw::supervisor_internal
