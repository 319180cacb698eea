// app/model_runtime.h: the one owner of each model's in-memory live state.
//
// Shape: llama.cpp's router (tools/server/server-models.h): ONE map of
// per-model runtimes under ONE mutex and ONE condition variable. Every state
// change is one method here, made under that lock, and notifies; a waiter
// (an unload waiting for a starting load) waits on the condition, never polls.
// A reader gets a copy taken under the lock, so no reader sees a model
// half-changed (loaded with no endpoint, or an endpoint with no load).
//
// What it holds per model: the load state shown to users (idle, queued,
// loading, loaded) with progress, the last error, the load job's phase (the
// part of an attempt the supervisor does not know about yet), a pending
// cancel, the engine's endpoint while loaded (pid + where it answers HTTP:
// the one place the server keeps an engine's address), and the /v1 slots:
// requests in the engine and waiting, the idle deadline, the last use.
// The slots' rules are serving::ServingGate's, run over this table (it is
// the gate's SlotStore: the gate takes this table's lock and waits on its
// condition), so "not loaded" and "no idle deadline" are one change
// (MarkNotLoaded) and one snapshot (Get) shows both.
//
// Driven from here, kept below for their own work (docs/architecture.md):
//   - the supervisor's sessions (supervisor/): the processes, their pids and
//     pipes. A model is loaded for the server when this table says so: the
//     job's end asks the supervisor under this lock (EndJob's finder), and a
//     death or an unload marks it here (MarkNotLoaded) before it is told.
//   - compat::LoadQueue: the FIFO of load jobs and their shared results. Its
//     queued/running announcements are mirrored here (SetLoadState), so the
//     state users see is this table's.
//
// Thread-safe. No method calls out while holding the lock, except EndJob's
// finder (the supervisor, which never calls back into this table under its locks).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "api/model_api.h"
#include "serving/serving_gate.h"

namespace mw::app {

// A loaded model's engine: its process and where it answers (the serving
// contract of supervisor/supervisor.h). The only struct in app/ that holds the address.
struct RunningEngine {
  int pid = 0;
  EngineEndpoint endpoint;  // empty: the engine does not answer HTTP
};

// The load job of one model, as far as an unload must know it.
enum class LoadPhase {
  kNone,      // no job running (queued jobs are the LoadQueue's)
  kStarting,  // the job runs without a process (before it: fit, residency, durable `testing`; after it: recording)
  kRunning,   // its process exists: Supervisor::Unload cancels it
};

struct ModelRuntime {
  api::LoadState state = api::LoadState::kIdle;
  std::optional<double> progress;
  std::optional<std::string> last_error;
  LoadPhase phase = LoadPhase::kNone;
  bool cancel_requested = false;          // an unload came while kStarting: the job must not start a process
  std::optional<RunningEngine> engine;   // set while loaded
  // The last engine known to have ended (Triton's version check): a job
  // that ends "loaded" with this pid is a late event and counts as not loaded.
  int ended_pid = 0;
  serving::ModelSlots slots;  // /v1 (ServingGate's rules): in the engine, waiting, idle deadline, last use
};

class ModelRuntimeTable : public serving::SlotStore {
 public:
  // A copy of the model's runtime (a default one when none is kept).
  ModelRuntime Get(const std::string& name) const;
  // Sets state and progress (queued, loading with progress, idle).
  void SetLoadState(const std::string& name, api::LoadState state, std::optional<double> progress);
  // A job queued behind others and dropped before it ran: back to idle.
  void QueuedJobDropped(const std::string& name);
  void SetLastError(const std::string& name, std::optional<std::string> error);

  // The load job: Begin when it starts running; ProcessStarting right before
  // it asks the supervisor for a process (false: an unload cancelled it, so
  // no process may start); ProcessStarted once the process exists; End with
  // its result (loaded with the engine's endpoint, or not, with the error).
  void BeginJob(const std::string& name);
  [[nodiscard]] bool ProcessStarting(const std::string& name);
  void ProcessStarted(const std::string& name);
  // `find_engine` (null: the job did not load) is asked under the lock for
  // the engine the supervisor holds loaded now, so that an unload or a death
  // handled meanwhile is either before (not loaded) or after (it then marks
  // the model not loaded). Returns that engine. When not loaded, `error`
  // replaces last_error (kept when nullopt); with keep_error an existing
  // last_error wins (a death reported first says more).
  using EngineFinder = std::function<std::optional<RunningEngine>()>;
  std::optional<RunningEngine> EndJob(const std::string& name, const EngineFinder& find_engine,
                                       std::optional<std::string> error, bool keep_error = false);
  // The job ended before any attempt (shutting down, storage error, model
  // gone): only its phase ends. ProcessEnded: its process ended, the job
  // goes on (recording it, or an auto_fix retry): kStarting again.
  void EndJobWithoutAttempt(const std::string& name);
  void ProcessEnded(const std::string& name);

  // An unload. If the model's job has not started its process yet, asks it
  // not to and waits (on the condition) until its process exists or the job
  // ended, at most until deadline_ms (MonotonicMillis). `on_wait` runs once,
  // without the lock, when it has to wait. Returns false on the deadline.
  [[nodiscard]] bool CancelStartingJob(const std::string& name, int64_t deadline_ms,
                                       const std::function<void()>& on_wait);
  // Not loaded any more (unloaded, stopped, shut down): idle, no endpoint,
  // no idle deadline. With `reason`, last_error says why (an engine death);
  // `pid`: the engine that ended (0: unknown).
  void MarkNotLoaded(const std::string& name, std::optional<std::string> reason = std::nullopt, int pid = 0);
  // Every loaded model becomes idle (Supervisor::Shutdown stopped them).
  void MarkAllNotLoaded();
  // Forgets the model (deleted); its slots stay while a request holds or
  // waits for one (the gate keeps references to them).
  void Erase(const std::string& name);

  // serving::SlotStore: the gate's view of each model's slots.
  std::mutex& Mutex() const override { return mu_; }
  std::condition_variable& Changed() const override { return changed_; }
  serving::ModelSlots& SlotsOf(const std::string& name) override { return models_[name].slots; }
  serving::ModelSlots* FindSlots(const std::string& name) override;
  void ForEachSlots(const std::function<void(const std::string&, serving::ModelSlots&)>& fn) override;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  std::map<std::string, ModelRuntime> models_;
};

}  // namespace mw::app
