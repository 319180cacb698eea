// app/load_director.h: loads and their verdict, and the end of a loaded
// engine (SPEC §4, §10, §11, §16, §19; a collaborator of ModelService).
//
// Contract:
//   Load(model, force, cold) (load_director.cpp): already loaded ->
//     kAlreadyLoaded; incompatible and !force -> the refusal (a stale
//     verdict with retest_stale=auto gets one unforced attempt first);
//     otherwise one job per model on compat::LoadQueue (one attempt at a
//     time, FIFO; a second caller joins the job and gets its result). The
//     job re-reads the row (keeping the caller's validation and refusal
//     where it is unchanged: model_read.h), checks the file (a 4xx, never
//     an attempt), fits and makes room (FitAndResidency), begins the durable
//     attempt, runs the supervisor, classifies a failure, retries once with
//     the suggestion (auto_fix) when the failure is the model's, and writes
//     the verdict through FinishLedger (kept in memory and retried when
//     storage fails; Flush writes what is pending). The result carries the
//     engine's endpoint and pid. With `cold` (cold_request.h, SPEC §16) it
//     returns when the engine is ready, and the request's first token
//     verifies the load.
//   OnWorkerDied / the health watch's hang verdict (load_director_hangs.cpp,
//     SPEC §19): the model not loaded with the classified summary, a closed
//     attempt crashed_while_serving / hung_while_serving (or the
//     environment's), and the /v1 requests it broke answered (Admission).
//   Shutdown: StopHealthWatch, then Shutdown (cancels queued loads, waits
//     for the running job, flushes pending verdicts).
// Thread-safe. Its own threads: the load queue's, the health watch's and
// the ledger's retry thread, each with its lock; the live state is
// ModelRuntimeTable's.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/model_api.h"
#include "app/admission.h"
#include "app/cold_request.h"
#include "app/engine_health.h"
#include "app/environment_watch.h"
#include "app/finish_ledger.h"
#include "app/fit_and_residency.h"
#include "app/model_read.h"
#include "app/model_runtime.h"
#include "classifier/crash_classifier.h"
#include "compat/load_queue.h"
#include "compat/state_machine.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "registry/registry.h"
#include "supervisor/supervisor.h"

namespace mw::app {

struct LoadDirectorHooks {
  std::function<std::shared_ptr<const config::Config>()> config;  // the configuration now (SIGHUP)
  std::function<CrashClassifier()> classifier;                    // the crash patterns now (SIGHUP)
  std::function<bool()> shutting_down;
  std::function<api::ModelView(const ModelRecord& model)> view;   // the model as answers show it
  std::function<void(const std::string& model)> publish_model;    // SSE + list version
  std::function<void()> publish_counts;
  std::function<Status(const std::string& model, const std::string& why)> mark_for_retest;  // status -> unknown
};

class LoadDirector {
 public:
  // The references must outlive this.
  LoadDirector(Registry& registry, StateMachine& state_machine, Supervisor& supervisor, ModelRuntimeTable& models,
               EnvironmentWatch& environment, Admission& admission, FitAndResidency& fit, metrics::Metrics& metrics,
               LoadDirectorHooks hooks);

  // A row read and validated once (model_read.h); `cold`: a /v1 request (its answer's view not re-read).
  Result<api::LoadResult> Load(ModelRead model, bool force, std::shared_ptr<ColdRequest> cold = nullptr);
  // The answer for an incompatible model (kIncompatible, SPEC §18's wording).
  api::LoadResult Refusal(const ModelRecord& model);
  Result<LoadRequest> BuildLoadRequest(const ModelRead& model);  // what a load would run (file, command)

  bool LoadUnderWay(const std::string& model) { return queue_->StateOf(model).has_value(); }  // queued or running
  bool CancelQueued(const std::string& model) { return queue_->CancelQueued(model); }
  // The model's running load job's result, if one runs (compat/load_queue.h).
  std::optional<std::shared_future<Result<api::LoadResult>>> RunningJob(const std::string& model) const {
    return queue_->RunningResult(model);
  }
  std::vector<LoadQueueEntry> QueueSnapshot() { return queue_->Snapshot(); }
  // Writes outcomes kept in memory (all, or this model's); an error while storage fails.
  Status Flush(const std::string& model = "") { return finishes_.Flush(model); }
  // When the model was last stopped for hanging (the model view).
  std::optional<std::string> LastHungAt(const std::string& model) { return last_hangs_.Get(model); }

  // The supervisor's on_unexpected_exit (SPEC §10).
  void OnWorkerDied(const UnexpectedExit& exit);
  void StartHealthWatch() { engine_health_.Start(); }
  void StopHealthWatch() { engine_health_.Stop(); }
  // Cancels queued loads, waits for the running job, stops the ledger's
  // thread, marks all not loaded and flushes what is pending.
  void Shutdown();

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

  LoadJobResult RunJob(ModelRead model, bool force);  // on the queue's thread
  LoadJobResult RunAttempt(const ModelRead& read, bool force);
  // Runs the worker for an attempt that has begun and classifies a failure;
  // an error when no process ran (the attempt is then closed as cancelled).
  // adjusted: the attempt's auto_fit choices (a cold request's headers).
  Result<AttemptRun> RunLoad(const std::string& name, AttemptId attempt, const LoadRequest& request,
                             const std::string& adjusted = {});
  // Records a failed run (verdict or environment) and builds the 422 answer.
  LoadJobResult RecordFailedRun(const ModelRecord& model, AttemptId attempt, const AttemptRun& run,
                                const std::string& suggestion, const std::string& extra_note);
  void OnQueueChange(const std::string& name, LoadQueueState state);
  Result<ModelRecord> RecordFinish(const Finish& finish) { return finishes_.Record(finish); }
  Result<ModelRecord> WriteFinish(const Finish& finish);  // finishes_' writer: the state machine
  void OnFinishesSettled(const std::vector<FinishLedger::Settled>& settled);  // written late or dropped
  // The end of a loaded engine nobody asked to stop: a crash (OnWorkerDied)
  // or a hang (OnEngineHung), per failure.outcome.
  void RecordServingEnd(const std::string& name, int pid, const CrashEvidence& evidence, std::string summary,
                        FailureInfo failure);
  EngineHealthHooks HealthHooks();  // load_director_hangs.cpp
  void OnEngineHung(const WatchedEngine& engine, const std::string& reason);

  Registry& registry_;
  StateMachine& state_machine_;
  Supervisor& supervisor_;
  ModelRuntimeTable& models_;
  EnvironmentWatch& environment_;
  Admission& admission_;
  FitAndResidency& fit_;
  metrics::Metrics& metrics_;
  const LoadDirectorHooks hooks_;

  ColdRequests cold_loads_;  // SPEC §16: on-demand loads verified by their request's first token
  // SPEC §19: probes every loaded engine; started by StartHealthWatch.
  EngineHealth engine_health_{HealthHooks()};
  // When each model was last stopped for hanging (the model view); its own lock.
  LastHangs last_hangs_{[this] { return registry_.LastAttemptEnds(AttemptOutcome::kHungWhileServing); }};
  // Outcomes not written yet (storage errors) and their retry thread; its own lock.
  FinishLedger finishes_{[this](const Finish& finish) { return WriteFinish(finish); },
                         [this](const std::vector<FinishLedger::Settled>& settled) { OnFinishesSettled(settled); }};
  // Last member: destroyed first, so its thread never sees a half-destroyed director.
  std::unique_ptr<LoadQueue<LoadJobResult>> queue_;
};

}  // namespace mw::app
