// app/fit_and_residency.h: will a load fit, and what must go to make room
// (SPEC §11, §12; a collaborator of ModelService: fit and residency).
//
// Contract:
//   Fit (fit_and_residency.cpp): the memory estimate of a llama.cpp load
//     (none for a command engine) from the model's shape, read once per
//     file version by `modelwarden-worker inspect` (ShapeCache), against
//     one view of free memory: RAM's MemAvailable now, then the last
//     probe's GPUs less what the loaded models hold on them; with
//     reclaim_idle, plus what the idle loaded models other than the one
//     loading hold (they may be evicted). Estimate for GET /api/models/{name};
//     RefuseIfItCannotFit's 507 before any attempt; ApplyAutoFit lowers the
//     settings a user left unset (auto_fit); SuggestLoadConfig makes the
//     classifier's suggestion concrete for this model and machine.
//   Residency (fit_and_residency_room.cpp): MakeRoom runs right before an attempt, after
//     the fit check: it unloads (hooks.evict) idle loaded models, least
//     recently used first (serving::PlanEviction), while max_loaded_models
//     is reached or (unforced) the estimate does not fit; a model with a
//     /v1 request in flight or waiting, or a load or unload under way, is
//     busy and never evicted (ServingGate::TryBeginUnload claims a victim).
//     The cap reached with every loaded model busy: kModelsBusy (503).
//     FillResidency adds last use, keep-alive and memory to GET /api/status.
// Holds no live state of its own: the loaded models are the supervisor's,
// use and busy-ness the gate's (over ModelRuntimeTable), the devices
// EnvironmentWatch's; the shape cache has its own lock. Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/model_api.h"
#include "app/environment_watch.h"
#include "app/shape_cache.h"
#include "classifier/crash_classifier.h"
#include "config/config.h"
#include "fit/fit_estimate.h"
#include "metrics/metrics.h"
#include "registry/registry.h"
#include "serving/serving_gate.h"
#include "supervisor/supervisor.h"

namespace mw::app {

struct FitAndResidencyHooks {
  std::function<std::shared_ptr<const config::Config>()> config;  // the configuration now (SIGHUP)
  std::function<bool(const std::string& model)> load_under_way;   // queued or running (LoadQueue)
  std::function<Status(const std::string& model)> evict;          // unload it (the usual unload, events)
  std::function<api::ModelView(const ModelRecord& model)> view;   // the model as answers show it
};

class FitAndResidency {
 public:
  // The references must outlive this.
  FitAndResidency(Supervisor& supervisor, serving::ServingGate& gate, EnvironmentWatch& environment,
                  metrics::Metrics& metrics, FitAndResidencyHooks hooks);

  // The estimate of a load (nullopt: none, for a command engine or a
  // load_config the estimate does not cover); an error when the model's
  // shape cannot be read.
  Result<std::optional<api::FitView>> Estimate(const LoadRequest& request);
  // A 507 answer when the estimate exceeds free memory; nullopt to go on.
  std::optional<api::LoadResult> RefuseIfItCannotFit(const ModelRecord& model, const LoadRequest& request);
  // auto_fit (SPEC §12): lowers the settings the user left unset in
  // request.load_config_json so that the estimate fits; returns what it
  // set and reports (a JSON object), "" for no change.
  std::string ApplyAutoFit(LoadRequest& request);
  // The classifier's suggestion made concrete (SPEC §11, computed from the
  // estimate for out-of-memory and flash attention failures), merged into
  // the attempt's load_config and validated; "" when none helps or it
  // equals the attempt's.
  std::string SuggestLoadConfig(const ModelRecord& model, const LoadRequest& request,
                                const Classification& classification);

  // Evicts what the cap and (unforced) the memory require; kModelsBusy when
  // the cap is reached and too few loaded models are idle; nullopt to go on.
  std::optional<api::LoadResult> MakeRoom(const ModelRecord& model, const LoadRequest& request, bool force);
  void FillResidency(api::ServerStatus& status);

 private:
  Result<ShapeCache::Answer> InspectShape(const std::string& path);  // the worker's `inspect`: shapes_' reader
  std::vector<fit::Device> FitDevices(const std::string& model, bool reclaim_idle);
  void AccountResidents(std::vector<fit::Device>& devices, const std::string& model, bool reclaim_idle);
  // A sentence for the 507 message: which loaded models count as evictable.
  std::string ResidencyNote(const std::string& model);
  bool IsBusy(const std::string& name);  // a /v1 request in flight or waiting, a load or an unload under way

  Supervisor& supervisor_;
  serving::ServingGate& gate_;
  EnvironmentWatch& environment_;
  metrics::Metrics& metrics_;
  const FitAndResidencyHooks hooks_;
  ShapeCache shapes_{[this](const std::string& path) { return InspectShape(path); }};
};

}  // namespace mw::app
