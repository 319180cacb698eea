// app/model_service.h: the core behind the HTTP API (implements api::ModelApi).
//
// Wires the registry (storage), the compatibility state machine (statuses and
// attempts), the supervisor (worker processes) and the crash classifier into
// the semantics of SPEC §1 and §4:
//
//   Load(name, force)
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
//   Engines that stop answering (engine_hangs.cpp, SPEC §19): the health
//   watch (EngineHealth, app/engine_health.h; started with the probe
//   thread) judges a loaded engine hung; OnEngineHung stops it (SIGTERM,
//   then SIGKILL) and records it the way a crash while serving is recorded
//   (RecordServingEnd), with outcome hung_while_serving; its /v1 requests
//   answer 502 engine_hung.
//
//   Residency (model_residency.cpp, SPEC §12): before an attempt, MakeRoom
//     unloads idle loaded models, least recently used first
//     (serving::PlanEviction), while max_loaded_models is reached or the
//     estimate does not fit the free memory now; a model with a /v1 request
//     in flight or waiting is never unloaded (ServingGate::TryBeginUnload).
//     The cap reached with every loaded model busy: kModelsBusy (503). The
//     fit check counts the memory of idle models as free (they may be
//     evicted), so its 507 is only for what cannot fit even then.
//
//   BeginInference (/v1, model_inference.cpp): a slot of serving::ServingGate
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
// ModelRuntimeTable (live state), serving::ServingGate (slot rules),
// IdleUnloader (keep_alive thread), EngineDeaths (how engines ended),
// FinishLedger (outcomes not written yet, retry thread), ShapeCache (model
// shapes for the fit), EventSubscribers (SSE listeners). Still here, over
// model_*.cpp: the load job and its verdict, the environment (probe,
// streak, reset), fit and residency, the fleet's nodes.
// Thread-safe; Load blocks its caller. Events go to subscribers on the thread
// that caused them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api/model_api.h"
#include "app/engine_deaths.h"
#include "app/engine_health.h"
#include "app/event_subscribers.h"
#include "app/finish_ledger.h"
#include "app/idle_unloader.h"
#include "app/model_file_identity.h"
#include "app/model_runtime.h"
#include "app/shape_cache.h"
#include "classifier/crash_classifier.h"
#include "compat/environment.h"
#include "compat/load_queue.h"
#include "compat/state_machine.h"
#include "compat/system_failure.h"
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
  // publishes them and the counts (Registry::WatchChanges; model_nodes.cpp).
  void OnRegistryChange(const std::vector<std::string>& names);
  // Bumped by PublishModel and PublishCounts (every change of registry data,
  // load state or progress is published through one of them) and when a
  // mutating call (register, patch, delete, unload) returns, errors included.
  // Also bumped when a command engine's binary changed on disk since the
  // last call (its verdicts may have become stale: SPEC §11).
  // On a shared registry (PostgreSQL, SPEC §14) other nodes change models
  // and verdicts too: the registry's change count is read first (one small
  // query), and a new count bumps the version (model_environment.cpp).
  std::optional<uint64_t> ModelListVersion() override;
  Result<api::ModelView> GetModel(const std::string& name) override;
  Result<api::ModelView> RegisterModel(const api::RegisterRequest& request) override;
  Result<api::ModelView> UpdateConfig(const std::string& name, const api::ConfigPatch& patch) override;
  Status DeleteModel(const std::string& name) override;
  Result<api::LoadResult> Load(const std::string& name, bool force) override;
  Result<api::ModelView> Unload(const std::string& name) override;
  Result<api::ServerStatus> GetStatus() override;
  // SPEC §14 (model_nodes.cpp): the fleet's nodes from the registry.
  Result<api::NodeList> ListNodes() override;
  Result<api::LoadResult> Retest(const std::string& name) override;
  Result<api::EnvironmentView> ResetEnvironment() override;
  int64_t Subscribe(api::EventListener listener) override;
  void Unsubscribe(int64_t id) override;
  // /v1 (model_inference.cpp).
  Result<api::InferenceAdmission> BeginInference(const api::InferenceRequest& request) override;
  std::optional<api::EngineEnd> AwaitEngineDeath(const std::string& model_name, int pid, int64_t timeout_ms) override;

  // SPEC §11 device probe (model_probe.cpp): starts the probe thread (the
  // first probe at once, then every probe_interval_s and after each
  // device-level failure); Shutdown() stops it. RestoreEnvironment() reads
  // the environment state the registry kept (call once, before any load).
  void StartProbing();
  void RestoreEnvironment();
  // The supervisor's on_unexpected_exit.
  void OnWorkerDied(const UnexpectedExit& exit);
  // Devices seen by the startup probe (or the reason there are none).
  void SetDevices(std::vector<api::DeviceInfo> devices, std::string error);
  // Runs one device probe now, on the caller's thread (a fleet node knows
  // its environment class before it listens: SPEC §14).
  void ProbeDevicesNow() { ProbeOnce(); }
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
  using LoadJobResult = Result<api::LoadResult>;

  // One attempt run by the supervisor and classified, not yet recorded.
  struct AttemptRun {
    LoadOutcome outcome = LoadOutcome::kFailed;
    int64_t duration_ms = 0;
    int pid = 0;
    std::optional<int> exit_code;
    std::optional<std::string> signal;
    std::string log_tail;
    Classification classification;
    FailureInfo failure;  // when it failed
  };

  // Load() for a model row the caller has read (a /v1 request reads it once).
  Result<api::LoadResult> LoadRow(ModelRecord model, bool force);
  // The queue's job for one model (runs on the queue's thread).
  LoadJobResult RunJob(const std::string& name, bool force);
  LoadJobResult RunAttempt(const ModelRecord& model, bool force);
  // Runs the worker for an attempt that has begun and classifies a failure;
  // an error when no process ran (the attempt is then closed as cancelled).
  Result<AttemptRun> RunLoad(const std::string& name, AttemptId attempt, const LoadRequest& request);
  // Records a failed run (verdict or environment) and builds the 422 answer.
  LoadJobResult RecordFailedRun(const ModelRecord& model, AttemptId attempt, const AttemptRun& run,
                                const std::string& suggestion, const std::string& extra_note);
  Result<LoadRequest> BuildLoadRequest(const ModelRecord& model);
  api::LoadResult Refusal(const ModelRecord& model);
  void OnQueueChange(const std::string& name, LoadQueueState state);
  // The outcomes of attempts, written or kept until they can be (finish_ledger.h).
  Result<ModelRecord> RecordFinish(const Finish& finish) { return finishes_.Record(finish); }
  Status FlushUnrecorded(const std::string& model = "") { return finishes_.Flush(model); }
  Result<ModelRecord> WriteFinish(const Finish& finish);  // finishes_' writer: the state machine
  void OnFinishesSettled(const std::vector<FinishLedger::Settled>& settled);  // written late or dropped

  // app/model_fit.cpp (SPEC §12): the memory estimate of a llama.cpp load
  // (none for a command engine); the model's shape is read once per file
  // version by `modelwarden-worker inspect` and cached.
  Result<std::optional<api::FitView>> EstimateFit(const LoadRequest& request);
  Result<fit::ModelShape> ShapeOf(const std::string& path) { return shapes_.ShapeOf(path); }
  Result<ShapeCache::Answer> InspectShape(const std::string& path);  // the worker's `inspect`: shapes_' reader
  // RAM (MemAvailable now) first, then the probe's GPUs, as a load of `model`
  // sees them (AccountResidents): every fit decision uses this one view.
  std::vector<fit::Device> FitDevices(const std::string& model, bool reclaim_idle);
  void AddFit(const ModelRecord& record, api::ModelView& view);  // GetModel
  // A 507 answer when the estimate exceeds free memory; nullopt to go on.
  std::optional<api::LoadResult> RefuseIfItCannotFit(const ModelRecord& model, const LoadRequest& request);
  // auto_fit (SPEC §12): lowers the settings the user left unset in
  // request.load_config_json so that the estimate fits; returns what it
  // set and reports (a JSON object, empty when nothing), "" for no change.
  std::string ApplyAutoFit(LoadRequest& request);
  // The classifier's suggestion made concrete for this model and machine
  // (SPEC §11, computed from the estimate for out-of-memory and flash
  // attention failures), merged into the attempt's load_config and
  // validated; "" when none helps or it equals `attempt_config`.
  std::string SuggestLoadConfig(const ModelRecord& model, const LoadRequest& request,
                                const Classification& classification);

  // app/model_residency.cpp (SPEC §12 "Residency"). MakeRoom runs on the
  // queue's thread right before an attempt (after the fit check): it evicts
  // what the cap and (unforced) the memory require, and answers kModelsBusy
  // when the cap is reached and too few loaded models are idle; nullopt to go on.
  std::optional<api::LoadResult> MakeRoom(const ModelRecord& model, const LoadRequest& request, bool force);
  // Free memory as a load of `model` sees it: each GPU's probe figure less
  // what the loaded models hold on it (RAM's MemAvailable already counts
  // them); with reclaim_idle, plus what the idle loaded models other than
  // `model` hold (they may be evicted to make room).
  void AccountResidents(std::vector<fit::Device>& devices, const std::string& model, bool reclaim_idle);
  // A sentence for the 507 message: which loaded models the free memory
  // counts as evictable and which stay (requests in flight).
  std::string ResidencyNote(const std::string& model);
  bool IsBusy(const std::string& name);  // a /v1 request in flight or waiting, a load or an unload under way
  void FillResidency(api::ServerStatus& status);  // GetStatus: last use, keep-alive, memory

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
  // SPEC §11 (model_environment.cpp). RefreshEnvironment re-reads the
  // driver files and the probe's devices into base_components_.
  void RefreshEnvironment();
  EnvironmentComponents ModelComponents(const ModelRecord& model);
  // The model file's identity (SPEC §18), "" when it names no readable file.
  std::string ModelFileIdentity(const ModelRecord& model);
  // The model's fingerprint now; its components are recorded in the registry.
  std::string Fingerprint(const ModelRecord& model);
  void FillVerdict(const ModelRecord& record, api::ModelView& view);
  api::EnvironmentView EnvironmentNow();
  bool EnvironmentBlames(const std::string& category);
  // After an attempt is recorded: failure == nullptr for a success.
  void NoteAttemptForEnvironment(AttemptId attempt, const std::string& name, const FailureInfo* failure);
  void RevertStreak(const std::vector<int64_t>& attempts);
  // Probe thread and environment persistence (model_probe.cpp).
  void ProbeLoop();
  void ProbeOnce();
  // SPEC §15: a llama.cpp load_config's placement keys against the devices
  // the last probe saw (400 naming them); Ok while no probe has answered.
  Status CheckPlacementHere(const loadconfig::LoadConfig& load_config);
  void RequestProbe();
  void StopProbing();
  // Writes the state row (streak_now: the streak so far no longer counts).
  void PersistEnvironment(bool streak_now);
  // The state changed: log, metrics gauge, registry, SSE `environment`.
  void EnvironmentChanged(const std::string& log_line, bool streak_reset);
  // Re-stats the engine binaries seen so far; ListChanged() if one changed.
  void CheckEngineBinaries();
  // Status -> unknown with a note saying why (retest).
  Status MarkForRetest(const std::string& name, const std::string& why);
  // The end of a loaded engine nobody asked to stop (model_loads.cpp): a
  // crash (OnWorkerDied) or a hang (OnEngineHung), per failure.outcome:
  // classified from evidence, recorded as a closed attempt (or the
  // environment's, SPEC §11), the model not loaded with `summary` (+ the
  // classification) as last_error, metrics, and the /v1 requests it broke
  // answered (EngineDeaths).
  void RecordServingEnd(const std::string& name, int pid, const CrashEvidence& evidence, std::string summary,
                        FailureInfo failure);
  // SPEC §19 (engine_hangs.cpp): the health watch's hooks, and its verdict.
  EngineHealthHooks HealthHooks();
  void OnEngineHung(const WatchedEngine& engine, const std::string& reason);
  // A /v1 request that waited in the gate for the engine `pid`: if that
  // engine is no longer the model's and was stopped as hung, the summary
  // (the request answers 502 engine_hung, as those in the engine did).
  std::optional<std::string> HungWhileWaiting(const std::string& model, int pid);
  // /v1 (model_inference.cpp): the idle-unload thread and engine deaths.
  class Lease;
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
  std::mutex change_count_mu_;
  std::optional<int64_t> seen_change_count_;  // the registry's, at the last ModelListVersion
  // Each model's live state (load state, progress, last error, load job
  // phase, engine endpoint, /v1 slots and idle deadline): one owner, one
  // lock (model_runtime.h).
  ModelRuntimeTable models_;
  std::mutex mu_;  // guards everything below
  std::vector<api::DeviceInfo> devices_;
  static constexpr const char* kProbeStillRunning = "device probe still running";
  std::string devices_error_ = kProbeStillRunning;
  std::vector<api::BackendView> backends_;  // the last answered probe's GPU backends (SPEC §15)
  EnvironmentComponents base_components_;
  std::string environment_class_;  // SPEC §14: as handed to Registry::SetEnvironmentClass
  SystemFailureDetector detector_;
  std::vector<std::string> good_devices_;  // the last good probe's DeviceKeys (empty: none yet)
  AttemptId streak_after_ = 0;             // as in the registry's environment_state row
  std::string last_probe_error_;           // the last probe's error ("" when it answered)

  std::mutex env_write_mu_;  // one environment state write at a time (taken before mu_)
  std::mutex probe_mu_;      // guards the three below
  std::condition_variable probe_cv_;
  bool probe_requested_ = false;
  bool probe_stop_ = false;
  std::thread probe_thread_;

  std::mutex env_mu_;  // guards known_environments_
  std::map<std::string, EnvironmentComponents> known_environments_;  // fingerprint -> components
  std::map<std::string, std::string> engine_binaries_;  // program path -> its identity when last seen
  ModelFileIdentities model_files_;  // SPEC §18: the "model_file" component of each model's fingerprint

  // Each model file's shape for the fit estimate, read once per file version; its own lock.
  ShapeCache shapes_{[this](const std::string& path) { return InspectShape(path); }};

  // /v1 serving: the rules for slots, the waiting queue and idle deadlines,
  // run over models_ (which holds them, under its lock); the idle thread
  // unloads models whose keep_alive has passed.
  serving::ServingGate gate_;
  // Unloads models idle past keep_alive; started by the first BeginInference.
  IdleUnloader idle_unloader_{gate_, [this](const std::string& name) { UnloadIdle(name); }};
  EngineDeaths engine_deaths_;  // how each engine ended (AwaitEngineDeath), its own lock
  // SPEC §19: probes every loaded engine; started by StartProbing, stopped by BeginShutdown.
  EngineHealth engine_health_{HealthHooks()};
  // When each model was last stopped for hanging (the model view); its own lock.
  LastHangs last_hangs_{[this] { return registry_.LastAttemptEnds(AttemptOutcome::kHungWhileServing); }};

  EventSubscribers subscribers_;  // SSE listeners, their own lock

  // Outcomes not written yet (storage errors) and their retry thread; its own lock.
  FinishLedger finishes_{[this](const Finish& finish) { return WriteFinish(finish); },
                         [this](const std::vector<FinishLedger::Settled>& settled) { OnFinishesSettled(settled); }};

  // Last member: destroyed first, so its thread never sees a half-destroyed service.
  std::unique_ptr<LoadQueue<LoadJobResult>> queue_;
};

}  // namespace mw::app
