// app/model_service.h: the core behind the HTTP API (implements api::ModelApi).
//
// Wires the registry (storage), the compatibility state machine (statuses and
// attempts), the supervisor (worker processes) and the crash classifier into
// the semantics of SPEC §1 and §4:
//
//   Load(name, force) (LoadDirector, load_director.h)
//     already loaded ............................ kAlreadyLoaded, no attempt
//     a load of it queued or running ............ joins it (LoadQueue): waits, same result
//     incompatible and !force ................... kIncompatible (notes)
//     otherwise: compat::LoadQueue (one attempt at a time, FIFO) -> validate load_config
//     and model file (an error here is a 4xx, never an attempt) ->
//     StateMachine::BeginAttempt (durable `testing`) -> Supervisor::Load ->
//     success: FinishSuccess (warning if it was degraded)
//     failure: classify (log tail, exit code, signal, timeout) -> FinishFailure,
//       or FinishEnvironmentFailure (status kept) for device_unavailable and,
//       while the environment is failing, any device-level category; then
//       SystemFailureDetector: 3 models in a row failing at the device level
//       -> environment failing, their verdicts reverted (SPEC §11)
//     cancelled by an unload: FinishCancelled (status restored, not a failure)
//
//   An outcome that cannot be written (disk full, read-only database): the
//   model stays `testing` on disk, so the finish is kept in memory and
//   written before the next attempt starts, before a PATCH or DELETE of that
//   model, every few seconds, and at Shutdown(); until then loads answer the
//   storage error (507 / 503), not "being tested". A crash in between is
//   covered by the next start's cleanup (the attempt is open on disk).
//
//   A worker or engine that dies while serving (OnWorkerDied, SPEC §10): the
//   model becomes not loaded with last_error = the classified summary, and
//   StateMachine::RecordServingCrash keeps the event durably as a closed
//   attempt with outcome crashed_while_serving and moves the status as
//   after a failed load (degraded after 3+ successful loads, else
//   incompatible, so the next load is refused until a user acts). An engine
//   stopped from outside (clean exit, SIGTERM/SIGINT/SIGHUP) is only shown
//   not loaded, with that reason: no verdict.
//
//   Engines that stop answering (load_director_hangs.cpp, SPEC §19): the health
//   watch (EngineHealth, app/engine_health.h; started with the probe
//   thread) judges a loaded engine hung; OnEngineHung stops it (SIGTERM,
//   then SIGKILL) and records it the way a crash while serving is recorded
//   (RecordServingEnd), with outcome hung_while_serving; its /v1 requests
//   answer 502 engine_hung.
//
//   Residency (FitAndResidency::MakeRoom, fit_and_residency.h, SPEC §12): before an attempt, MakeRoom
//     unloads idle loaded models, least recently used first
//     (serving::PlanEviction), while max_loaded_models is reached or the
//     estimate does not fit the free memory now; a model with a /v1 request
//     in flight or waiting is never unloaded (ServingGate::TryBeginUnload).
//     The cap reached with every loaded model busy: kModelsBusy (503). The
//     fit check counts the memory of idle models as free (they may be
//     evicted), so its 507 is only for what cannot fit even then.
//
//   BeginInference (/v1, Admission, admission.h): a slot of serving::ServingGate
//   (n_parallel in the engine, max_queue waiting, else kQueueFull), then
//   Load(name, false) as above; the lease frees the slot and starts the
//   keep_alive clock (the idle thread unloads). AwaitEngineDeath lets a
//   request whose engine connection broke answer with the death's summary;
//   an engine stopped by an unload or the shutdown is not waited for.
//
// Per-model load_state (idle/queued/loading/loaded), progress, last_error,
// the load job's phase and the loaded engine's endpoint live in memory only,
// in one owner (ModelRuntimeTable, app/model_runtime.h); the registry holds
// everything durable. An unload of a starting load waits on that table's
// condition (CancelStartingJob), not in a poll. The /v1 slots and idle
// deadlines are part of that runtime (ServingGate's rules run over it).
//
// Collaborators, each with its own header, contract and lock (or thread):
// ModelRuntimeTable (live state), Admission (/v1: serving::ServingGate's
// slot rules, IdleUnloader's keep_alive thread, EngineDeaths),
// FinishLedger (outcomes not written yet, retry thread), ShapeCache (model
// shapes for the fit), EventSubscribers (SSE listeners), EnvironmentWatch
// (devices and the probe thread, fingerprints, stale verdicts, the streak
// and its reset), FitAndResidency (estimate, auto_fit, suggestions,
// evictions), LoadDirector (the load job and its verdict, deaths and hangs
// while serving: load_director.h), FleetView (the fleet's nodes and
// verdicts as the API shows them, other nodes' changes: fleet_view.h).
// Thread-safe; Load blocks its caller. Events go to subscribers on the thread
// that caused them.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "api/model_api.h"
#include "app/admission.h"
#include "app/environment_watch.h"
#include "app/event_subscribers.h"
#include "app/fit_and_residency.h"
#include "app/fleet_view.h"
#include "app/load_director.h"
#include "app/model_runtime.h"
#include "classifier/crash_classifier.h"
#include "compat/state_machine.h"
#include "config/config.h"
#include "fit/fit_estimate.h"
#include "metrics/metrics.h"
#include "registry/registry.h"
#include "serving/serving_gate.h"
#include "supervisor/supervisor.h"

namespace mw::app {

class ModelService : public api::ModelApi {
 public:
  // All references must outlive the service.
  ModelService(Registry& registry, StateMachine& state_machine, Supervisor& supervisor,
               const CrashClassifier& classifier, const config::Config& config, std::string version);
  ~ModelService() override;

  Result<std::vector<api::ModelView>> ListModels() override;
  // Another node changed these models (empty: anything may have changed):
  // publishes them and the counts (Registry::WatchChanges; FleetView).
  void OnRegistryChange(const std::vector<std::string>& names) { fleet_.OnRegistryChange(names); }
  // Bumped by PublishModel and PublishCounts (every change of registry data,
  // load state or progress is published through one of them) and when a
  // mutating call (register, patch, delete, unload) returns, errors included.
  // Also bumped when a command engine's binary changed on disk since the
  // last call (its verdicts may have become stale: SPEC §11).
  // On a shared registry (PostgreSQL, SPEC §14) other nodes change models
  // and verdicts too: the registry's change count is read first (one small
  // query: FleetView::ChangedElsewhere), and a new count bumps the version
  // (model_retest.cpp; EnvironmentWatch::InputsChanged).
  std::optional<uint64_t> ModelListVersion() override;
  Result<api::ModelView> GetModel(const std::string& name) override;
  Result<api::ModelView> RegisterModel(const api::RegisterRequest& request) override;
  Result<api::ModelView> UpdateConfig(const std::string& name, const api::ConfigPatch& patch) override;
  Status DeleteModel(const std::string& name) override;
  Result<api::LoadResult> Load(const std::string& name, bool force) override;
  Result<api::ModelView> Unload(const std::string& name) override;
  Result<api::ServerStatus> GetStatus() override;
  // SPEC §14 (fleet_view.h): the fleet's nodes from the registry.
  Result<api::NodeList> ListNodes() override { return fleet_.Nodes(); }
  Result<api::LoadResult> Retest(const std::string& name) override;
  Result<api::EnvironmentView> ResetEnvironment() override;
  int64_t Subscribe(api::EventListener listener) override;
  void Unsubscribe(int64_t id) override;
  // /v1 (Admission, admission.h).
  Result<api::InferenceAdmission> BeginInference(const api::InferenceRequest& request) override {
    return admission_.Begin(request);
  }
  std::optional<api::EngineEnd> AwaitEngineDeath(const std::string& model_name, int pid, int64_t timeout_ms) override {
    return admission_.AwaitEngineDeath(model_name, pid, timeout_ms);
  }

  // SPEC §11 device probe (EnvironmentWatch, environment_watch.h): starts the probe thread (the
  // first probe at once, then every probe_interval_s and after each
  // device-level failure); Shutdown() stops it. RestoreEnvironment() reads
  // the environment state the registry kept (call once, before any load).
  void StartProbing();
  void RestoreEnvironment() { environment_.Restore(); }
  // The supervisor's on_unexpected_exit.
  void OnWorkerDied(const UnexpectedExit& exit);  // forwards to LoadDirector (a symbol the fault tests stop at)
  // Devices seen by the startup probe (or the reason there are none).
  void SetDevices(std::vector<api::DeviceInfo> devices, std::string error) {
    environment_.SetDevices(std::move(devices), std::move(error));
  }
  // Runs one device probe now, on the caller's thread (a fleet node knows
  // its environment class before it listens: SPEC §14).
  void ProbeDevicesNow() { environment_.ProbeOnce(); }
  // Shutdown, in this order: BeginShutdown() (no new loads), then
  // Supervisor::Shutdown() (cancels the running load, stops workers), then
  // Shutdown() (cancels queued loads, waits for the running job): so that no
  // HTTP thread stays blocked in Load().
  void BeginShutdown();
  void Shutdown();
  // SIGHUP (SPEC §13): later loads and registrations use this configuration's
  // locations and load_timeout_s, and this classifier (crash patterns). A
  // load already running finishes with what it started with. Thread-safe.
  void Reconfigure(const config::Config& config, const CrashClassifier& classifier);

 private:
  // GET /api/models/{name}: the estimate of the settings a load would use
  // (FitAndResidency, fit_and_residency.h).
  void AddFit(const ModelRecord& record, api::ModelView& view);

  api::ModelView ToView(const ModelRecord& record);
  void PublishModel(const std::string& name);
  void PublishCounts();
  // SSE `environment` (SPEC §11): the environment state changed.
  void PublishEnvironment();
  // Call after a change is visible to ListModels() (see ModelListVersion).
  void ListChanged() { list_version_.fetch_add(1); }
  // Calls ListChanged() when it goes out of scope: on every return path.
  struct ListChangedOnExit {
    ModelService* service;
    ~ListChangedOnExit() { service->ListChanged(); }
  };
  // environment_'s revert_streak: the streak's verdicts were the
  // environment's, not the models' (SPEC §11).
  void RevertStreak(const std::vector<int64_t>& attempts);
  // Status -> unknown with a note saying why (retest).
  Status MarkForRetest(const std::string& name, const std::string& why);
  // /v1 (admission.h).
  void UnloadIdle(const std::string& name);  // the idle unloader's callback: Unload if loaded

  Registry& registry_;
  StateMachine& state_machine_;
  Supervisor& supervisor_;
  std::shared_ptr<const config::Config> CurrentConfig() const;
  CrashClassifier CurrentClassifier() const;

  mutable std::mutex reconfigure_mu_;  // guards config_ and classifier_ (replaced by Reconfigure)
  std::shared_ptr<const config::Config> config_;
  CrashClassifier classifier_;
  const std::string version_;
  const int64_t started_ms_;
  metrics::Metrics& metrics_ = metrics::Global();  // load attempts and worker deaths are counted here

  std::atomic<bool> shutting_down_{false};
  std::atomic<bool> shut_down_{false};  // Shutdown() ran
  std::atomic<uint64_t> list_version_{1};
  // Each model's live state (load state, progress, last error, load job
  // phase, engine endpoint, /v1 slots and idle deadline): one owner, one
  // lock (model_runtime.h).
  ModelRuntimeTable models_;
  // SPEC §11, §14, §15 (environment_watch.h): devices and the probe
  // thread, fingerprints and stale verdicts, the streak of device-level
  // failures; its own locks and thread.
  EnvironmentWatch environment_{registry_, supervisor_, metrics_, version_,
                                {[this] { return CurrentConfig(); }, [this] { return shutting_down_.load(); },
                                 [this] { ListChanged(); },
                                 [this](const std::vector<int64_t>& attempts) { RevertStreak(attempts); },
                                 [this] { PublishEnvironment(); }}};

  // /v1 admission (admission.h): the slot rules over models_, the waiting
  // queue, the idle-unload thread, how engines ended.
  Admission admission_{registry_, supervisor_, models_, metrics_,
                       {[this] { return CurrentConfig(); }, [this] { return shutting_down_.load(); },
                        [this](const ModelRecord& model) { return loads_.Refusal(model); },
                        [this](ModelRead model, std::shared_ptr<ColdRequest> cold) {
                          return loads_.Load(std::move(model), /*force=*/false, std::move(cold));
                        },
                        [this](const std::string& model) { UnloadIdle(model); }}};
  // SPEC §12 (fit_and_residency.h): the estimate, auto_fit, computed
  // suggestions, evictions; no state of its own but the shape cache.
  FitAndResidency fit_{supervisor_, admission_.gate(), environment_, metrics_,
                       {[this] { return CurrentConfig(); },
                        [this](const std::string& model) { return loads_.LoadUnderWay(model); },
                        [this](const std::string& model) { return Unload(model).status(); },
                        [this](const ModelRecord& record) { return ToView(record); }}};
  EventSubscribers subscribers_;  // SSE listeners, their own lock
  // SPEC §14 (fleet_view.h): nodes, per-class verdicts, other nodes' changes;
  // the lock of the change count it saw.
  FleetView fleet_{registry_,
                   {[this](const std::string& model) { PublishModel(model); }, [this] { PublishCounts(); }}};

  // Loads and their verdict, engines that crash or hang while serving
  // (load_director.h): the load queue's thread, the health watch, the
  // ledger of outcomes not written yet. Last member: destroyed first.
  LoadDirector loads_{registry_, state_machine_, supervisor_, models_, environment_, admission_, fit_, metrics_,
                      {[this] { return CurrentConfig(); }, [this] { return CurrentClassifier(); },
                       [this] { return shutting_down_.load(); },
                       [this](const ModelRecord& record) { return ToView(record); },
                       [this](const std::string& model) { PublishModel(model); }, [this] { PublishCounts(); },
                       [this](const std::string& model, const std::string& why) { return MarkForRetest(model, why); }}};
};

}  // namespace mw::app
