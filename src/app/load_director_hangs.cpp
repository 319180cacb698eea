// LoadDirector (load_director.h): engines that stop answering (SPEC §19). The health watch
// (app/engine_health.h) judges; this stops the hung engine and records it
// like a crash while serving, with outcome hung_while_serving.
#include <chrono>

#include "app/load_director.h"
#include "common/log.h"

namespace mw::app {

using namespace std::chrono_literals;

// SIGTERM at once (a hung engine will not read a stop line), SIGKILL to the
// whole group after 1 s: a SIGSTOPped process never acts on SIGTERM, and a
// deadlocked engine's handler only sets a flag its stuck loop never reads.
const StopOptions kHungStop{"", 0ms, 1000ms, 5000ms};

EngineHealthHooks LoadDirector::HealthHooks() {
  EngineHealthHooks hooks;
  hooks.engines = [this] {
    std::vector<WatchedEngine> engines;
    for (const LoadedModel& loaded : supervisor_.Loaded()) {
      engines.push_back(WatchedEngine{loaded.model_name, loaded.pid, loaded.endpoint});
    }
    return engines;
  };
  hooks.in_flight = [this](const std::string& model) { return admission_.gate().InEngine(model); };
  hooks.timing = [this] {
    const auto config = hooks_.config();  // reloadable (SIGHUP)
    return std::pair<int64_t, int64_t>{config->health_interval_s * 1000LL, config->hang_timeout_s * 1000LL};
  };
  hooks.on_hung = [this](const WatchedEngine& engine, const std::string& reason) { OnEngineHung(engine, reason); };
  return hooks;
}

void LoadDirector::OnEngineHung(const WatchedEngine& engine, const std::string& reason) {
  if (hooks_.shutting_down()) return;  // the shutdown stops every engine anyway
  const std::string log_tail = supervisor_.LogTail(engine.model).value_or("");
  Result<ProcessExit> stopped = supervisor_.StopHung(engine.model, engine.pid, kHungStop);
  if (!stopped.ok()) {  // unloaded, died or replaced meanwhile: that end is recorded by its own path
    MW_LOG(kInfo, "health") << "model=" << engine.model << " pid=" << engine.pid
                            << " hung, but was gone before it was stopped: " << stopped.status().message();
    return;
  }
  CrashEvidence evidence;
  evidence.output = log_tail;  // the kill is ours: no exit status or signal to classify
  FailureInfo failure;
  failure.outcome = AttemptOutcome::kHungWhileServing;
  RecordServingEnd(engine.model, engine.pid, evidence,
                   "Engine hung while serving (" + reason + "; stopped: " + stopped->Describe() + ")",
                   std::move(failure));
}

}  // namespace mw::app
