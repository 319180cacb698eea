// app/admission.h: /v1 inference admission (SPEC §10, §19; a collaborator
// of ModelService: the gate, its waiting queue, idle unload, engine deaths).
//
// Contract:
//   Begin(request): reads the model's row once; a name that cannot exist is
//     404, a shutdown 503, embeddings on a model not loaded for them 400, a
//     command model whose argv has no {port} 412; an incompatible model not
//     loaded is refused (never a forced load). Otherwise it takes a slot of
//     the ServingGate (n_parallel in the engine, max_queue waiting, else
//     kQueueFull), then loads on demand through hooks.load (the same load
//     as POST /api/orchestrate/load, never forced) and hands back a lease
//     naming the engine (endpoint and pid from the load's result). A load
//     this request causes is handed back when the engine is ready, and the
//     request's first token verifies it (cold_request.h, SPEC §16). The
//     lease frees the slot when destroyed and wakes the idle thread, which
//     unloads (hooks.unload_idle) models idle past keep_alive.
//   A request that waited in the queue for an engine that the health watch
//     stopped as hung meanwhile answers 502 engine_hung (kEngineHung), as
//     the requests in it did (SPEC §19).
//   AwaitEngineDeath: a request whose engine connection broke waits for
//     the death's summary (NoteDeath); an engine stopped by an unload
//     (NoteStopped) or the shutdown (Close) is not waited for.
// Thread-safe. The slots and idle deadlines live in ModelRuntimeTable
// (under its lock, the gate's rules over them); EngineDeaths and the idle
// thread have their own locks.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "api/model_api.h"
#include "app/cold_request.h"
#include "app/engine_deaths.h"
#include "app/idle_unloader.h"
#include "app/model_read.h"
#include "app/model_runtime.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "registry/registry.h"
#include "serving/serving_gate.h"
#include "supervisor/supervisor.h"

namespace mw::app {

struct AdmissionHooks {
  std::function<std::shared_ptr<const config::Config>()> config;  // the configuration now (SIGHUP)
  std::function<bool()> shutting_down;
  std::function<api::LoadResult(const ModelRecord& model)> refusal;  // the answer for an incompatible model
  // An unforced load of the row this request read, validated and checked
  // once (model_read.h); with `cold`, it returns as soon as the engine is
  // ready and the request's first token verifies the load (cold_request.h,
  // SPEC §16).
  std::function<Result<api::LoadResult>(ModelRead model, std::shared_ptr<ColdRequest> cold)> load;
  std::function<void(const std::string& model)> unload_idle;        // keep_alive passed
};

class Admission {
 public:
  // The references must outlive this.
  Admission(Registry& registry, Supervisor& supervisor, ModelRuntimeTable& models, metrics::Metrics& metrics,
            AdmissionHooks hooks);

  Result<api::InferenceAdmission> Begin(const api::InferenceRequest& request);
  std::optional<api::EngineEnd> AwaitEngineDeath(const std::string& model_name, int pid, int64_t timeout_ms);

  // The slot rules (residency asks who is busy; the health watch who is in flight).
  serving::ServingGate& gate() { return gate_; }
  // An unload by hand, by eviction or by the idle thread: no idle deadline
  // left, and the requests this stop cuts off (pid, when loaded) answer at
  // once, not as a crash.
  void OnUnload(const std::string& model, std::optional<int> pid);
  // An engine died or was stopped for hanging: requests it broke answer with `summary`.
  void NoteDeath(int pid, const std::string& summary, bool hung = false) {
    engine_deaths_.NoteDeath(pid, summary, hung);
  }
  // The shutdown: requests waiting for a slot answer 503, none waits for a death.
  void Close();
  void StopIdleUnloader() { idle_unloader_.Stop(); }

 private:
  class Lease;
  // SPEC §19: a request that waited in the gate for the engine `pid`: if
  // that engine is no longer the model's and was stopped as hung, the
  // summary (the request answers 502 engine_hung, as those in the engine did).
  std::optional<std::string> HungWhileWaiting(const std::string& model, int pid);

  Registry& registry_;
  Supervisor& supervisor_;
  ModelRuntimeTable& models_;
  metrics::Metrics& metrics_;
  const AdmissionHooks hooks_;
  serving::ServingGate gate_;
  EngineDeaths engine_deaths_;  // how each engine ended (AwaitEngineDeath), its own lock
  // Unloads models idle past keep_alive; started by the first Begin.
  IdleUnloader idle_unloader_{gate_, [this](const std::string& name) { hooks_.unload_idle(name); }};
};

}  // namespace mw::app
