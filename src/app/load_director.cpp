// LoadDirector (load_director.h): the load path (queue, durable attempt,
// supervisor, classifier, verdict) and the death of a loaded worker.
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <utility>

#include "app/command_policy.h"
#include "app/load_director.h"
#include "app/model_paths.h"
#include "common/log.h"
#include "loadconfig/loadconfig.h"

namespace mw::app {
namespace {

AttemptOutcome ToAttemptOutcome(LoadOutcome outcome) {
  switch (outcome) {
    case LoadOutcome::kSuccess: return AttemptOutcome::kSuccess;
    case LoadOutcome::kFailed: return AttemptOutcome::kFailed;
    case LoadOutcome::kCrashed: return AttemptOutcome::kCrashed;
    case LoadOutcome::kTimeout: return AttemptOutcome::kTimeout;
    case LoadOutcome::kCancelled: return AttemptOutcome::kCancelled;
  }
  return AttemptOutcome::kFailed;
}

// The keys of `after` whose values differ from `before` (JSON object text),
// with their new values; `text` gets "n_ctx 16777216 → 2048, ...".
std::string ChangedKeys(const std::string& before, const std::string& after, std::string* text) {
  nlohmann::json b = nlohmann::json::parse(before.empty() ? "{}" : before, nullptr, false);
  nlohmann::json a = nlohmann::json::parse(after.empty() ? "{}" : after, nullptr, false);
  nlohmann::json changed = nlohmann::json::object();
  if (!a.is_object()) return changed.dump();
  if (!b.is_object()) b = nlohmann::json::object();
  std::string shown;
  for (const auto& [key, value] : a.items()) {
    if (b.contains(key) && b[key] == value) continue;
    changed[key] = value;
    shown += (shown.empty() ? "" : ", ") + key + " " + (b.contains(key) ? b[key].dump() : std::string("unset")) +
             " \u2192 " + value.dump();
  }
  if (text != nullptr) *text = shown;
  return changed.dump();
}

// The attempt's log excerpt: the end of the captured output (the end decides).
std::string Excerpt(const std::string& log, size_t max_bytes = 16 * 1024) {
  if (log.size() <= max_bytes) return log;
  return log.substr(log.size() - max_bytes);
}

// A failed attempt as a load answer shows it.
api::Classification ToApiClassification(const Classification& c, const FailureInfo& failure,
                                        std::optional<int> exit_code, const std::optional<std::string>& signal,
                                        const std::string& log_tail, const std::string& suggestion) {
  api::Classification out;
  out.category = failure.category;
  out.pattern_id = c.pattern_id;
  out.summary = failure.summary;
  out.matched_line = c.matched_line;
  out.suggested_load_config_json = suggestion;
  out.outcome = std::string(ToString(failure.outcome));
  out.exit_code = exit_code;
  out.signal = signal;
  out.log_excerpt = Excerpt(log_tail, 4096);
  return out;
}

// What a failed load answers (and the model's last_error says).
std::string FailureMessage(const std::string& name, AttemptOutcome outcome, const std::string& summary,
                           CompatStatus status_after) {
  return "loading '" + name + "' failed (" + std::string(ToString(outcome)) + "): " + summary +
         ". The model is now " + std::string(ToString(status_after)) + ".";
}


}  // namespace

LoadDirector::LoadDirector(Registry& registry, StateMachine& state_machine, Supervisor& supervisor,
                           ModelRuntimeTable& models, EnvironmentWatch& environment, Admission& admission,
                           FitAndResidency& fit, metrics::Metrics& metrics, LoadDirectorHooks hooks)
    : registry_(registry),
      state_machine_(state_machine),
      supervisor_(supervisor),
      models_(models),
      environment_(environment),
      admission_(admission),
      fit_(fit),
      metrics_(metrics),
      hooks_(std::move(hooks)) {
  queue_ = std::make_unique<LoadQueue<LoadJobResult>>(
      [](const std::string& name) -> LoadJobResult {
        return FailedPreconditionError("the load of '" + name + "' was cancelled before it started");
      },
      [this](const std::string& name, LoadQueueState state) { OnQueueChange(name, state); });
}

void LoadDirector::Shutdown() {
  if (queue_) queue_->Shutdown();
  finishes_.Stop();
  models_.MarkAllNotLoaded();  // Supervisor::Shutdown() stopped the workers without a death callback
  // Last chance for an outcome that could not be written; if this fails
  // too, the next start's cleanup closes the attempt.
  if (Status st = finishes_.Flush(); !st.ok()) MW_LOG(kError, "load") << st.ToString();
}

void LoadDirector::OnQueueChange(const std::string& name, LoadQueueState state) {
  if (state == LoadQueueState::kQueued) models_.SetLoadState(name, api::LoadState::kQueued, std::nullopt);
  if (state == LoadQueueState::kDone) models_.QueuedJobDropped(name);  // a job cancelled before it ran: as it was
  hooks_.publish_model(name);
}

api::LoadResult LoadDirector::Refusal(const ModelRecord& model) {
  api::LoadResult result;
  result.kind = api::LoadResult::Kind::kIncompatible;
  result.notes = model.compatibility_notes.value_or("");
  result.model = hooks_.view(model);
  // SPEC §18: a file's fault is not the machine's; a stale verdict says so.
  const bool file = NotesBlameFile(result.notes);
  result.message = "model '" + model.model_name + (file ? "' was refused" : "' is incompatible with this machine") +
                   (result.notes.empty() ? std::string() : ": " + result.notes) + ". ";
  if (result.model.verdict_stale) {
    result.message += "Its verdict is stale (" + result.model.verdict_stale_reason.value_or("") +
                      "): retest it with POST /api/models/" + model.model_name + "/retest. ";
  } else if (file) {
    result.message += "Replace the file (its verdict then goes stale). ";
  }
  result.message += "Load it with force_load=true to try anyway.";
  return result;
}

Result<api::LoadResult> LoadDirector::Load(ModelRead model, bool force, std::shared_ptr<ColdRequest> cold) {
  const std::string name = model.row.model_name;
  if (hooks_.shutting_down()) return UnavailableError("the server is shutting down");
  if (!queue_->StateOf(name)) {
    // Nothing in flight for it: answer at once when there is nothing to do.
    if (std::optional<LoadedModel> loaded = supervisor_.FindLoaded(name)) {
      api::LoadResult result;
      result.kind = api::LoadResult::Kind::kAlreadyLoaded;
      result.engine_pid = loaded->pid;
      result.engine = loaded->endpoint;
      result.model = hooks_.view(model.row);
      return result;
    }
    if (!model.refusal_checked && model.incompatible() && !force && hooks_.config()->retest_stale_auto) {
      // retest_stale = "auto" (SPEC §11): a stale verdict gets one unforced attempt.
      api::ModelView view;
      environment_.FillVerdict(model.row, view);
      if (view.verdict_stale && hooks_.mark_for_retest(name, "verdict stale: " + view.verdict_stale_reason.value_or("")).ok()) {
        RETURN_IF_ERROR(model.ReadAgain(registry_));  // re-read: the mark changed the row
      }
    }
    if (!model.refusal_checked && model.incompatible() && !force) return Refusal(model.row);
    model.refusal_checked = true;  // decided: the job does not decide it again unless the status changes
  }
  // Queued behind other models' attempts, or joined to this model's attempt.
  auto ticket = queue_->Submit(name, [this, name, model, force, cold] {
    ColdRequests::Armed armed(cold_loads_, name, cold);  // SPEC §16: its first run may claim it
    return RunJob(model, force);
  });
  if (ticket.joined) MW_LOG(kInfo, "load") << "model=" << name << " joins the load in progress";
  if (cold && !ticket.joined && cold->WaitReady(ticket.result)) return cold->ReadyResult();
  Result<api::LoadResult> result = ticket.result.get();
  if (result.ok()) {
    result->joined = ticket.joined;
    // A /v1 answer (`cold`) never shows the model: the row is not read again.
    if (cold) return result;
    // Re-read for the answer's view: the load changed the row (its verdict).
    if (auto now = registry_.GetModel(name); now.ok()) {
      std::optional<api::FitView> fit = std::move(result->model.fit);  // a 507's estimate
      result->model = hooks_.view(*now);
      result->model.fit = std::move(fit);
    }
  }
  return result;
}

Result<api::LoadResult> LoadDirector::RunJob(ModelRead read, bool force) {
  const std::string& name = read.row.model_name;
  // From here until EndJob an unload waits for this job (it cancels it).
  models_.BeginJob(name);
  // Before an attempt: the model's runtime is left as it was.
  auto not_started = [&](Status status) -> Result<api::LoadResult> {
    models_.EndJobWithoutAttempt(name);
    return status;
  };
  if (hooks_.shutting_down()) return not_started(UnavailableError("the server is shutting down"));
  // An earlier outcome not yet on disk leaves its model `testing` there:
  // no attempt may start before it is written (one model testing at a time).
  if (Status st = finishes_.Flush(); !st.ok()) return not_started(st);
  // Re-read when the model may have changed (or gone) while the caller
  // waited (for a slot, in this queue): a PATCH, a status set, another
  // server. The caller's validation and refusal decision stand where it did not.
  if (read.MayHaveChanged(registry_)) {
    MW_LOG(kDebug, "load") << "model=" << name << " read again: the registry was written since the request read it";
    if (Status st = read.ReadAgain(registry_); !st.ok()) return not_started(st);
  }
  Result<api::LoadResult> result = !read.refusal_checked && read.incompatible() && !force
                                       ? Result<api::LoadResult>(Refusal(read.row))
                                       : RunAttempt(read, force);
  // One change of the model's runtime: loaded with its engine's endpoint, or not, with why.
  const bool says_loaded = result.ok() && result->kind == api::LoadResult::Kind::kLoaded;
  std::optional<std::string> error;
  if (!result.ok()) {
    error = result.status().message();
  } else if (says_loaded) {
    error = "the worker exited right after loading '" + name + "'";  // unless OnWorkerDied said why
  } else if (result->kind == api::LoadResult::Kind::kFailed) {
    error = result->message;
  }
  ModelRuntimeTable::EngineFinder find_engine;
  if (says_loaded) {
    find_engine = [&]() -> std::optional<RunningEngine> {
      std::optional<LoadedModel> loaded = supervisor_.FindLoaded(name);
      if (!loaded) return std::nullopt;
      return RunningEngine{loaded->pid, loaded->endpoint};
    };
  }
  if (std::optional<RunningEngine> engine = models_.EndJob(name, find_engine, error, /*keep_error=*/says_loaded)) {
    result->engine_pid = engine->pid;
    result->engine = engine->endpoint;
  }
  hooks_.publish_model(name);
  hooks_.publish_counts();
  return result;
}

Result<LoadRequest> LoadDirector::BuildLoadRequest(const ModelRead& read) {
  const ModelRecord& model = read.row;
  const Result<loadconfig::LoadConfig>& validated = read.config;  // validated once, when read
  if (!validated.ok()) {
    return InvalidArgumentError("the stored load_config of '" + model.model_name +
                                "' is invalid: " + validated.status().message() + ". Fix it with PATCH .../config.");
  }
  LoadRequest request;
  request.model_name = model.model_name;
  request.load_config_json = validated->normalized_json.empty() ? model.load_config : validated->normalized_json;
  const auto config = hooks_.config();  // reloadable (SIGHUP): read once per attempt
  request.load_timeout_s = validated->load_timeout_s ? static_cast<int>(*validated->load_timeout_s)
                                                     : config->load_timeout_s;
  request.verify = config->verify;
  ASSIGN_OR_RETURN(request.engine, ParseEngineKind(model.engine));
  if (model.file_path && !model.file_path->empty()) {
    const config::Location* location = config->FindLocation(model.cache_location);
    if (location == nullptr) {
      return FailedPreconditionError("model location '" + model.cache_location +
                                     "' is no longer configured; add it under [locations] in the configuration");
    }
    // Checked again now: the file may have moved or become a symlink out of the location.
    auto file = ResolveModelFile(location->path, *model.file_path, request.engine == EngineKind::kLlamaCpp);
    if (!file.ok()) return FailedPreconditionError(file.status().message());
    request.model_path = file->absolute.string();
  }
  if (const loadconfig::CommandConfig* command = validated->command()) {
    RETURN_IF_ERROR(ResolveCommand(model.model_name, *command, *config, request));
  }
  return request;
}

Result<api::LoadResult> LoadDirector::RunAttempt(const ModelRead& read, bool force) {
  const ModelRecord& model = read.row;
  const std::string& name = model.model_name;
  // Validation errors happen before the attempt: no record, no status change.
  ASSIGN_OR_RETURN(LoadRequest request, BuildLoadRequest(read));
  std::string adjusted;
  // Refusal before harm (SPEC §12): an estimate beyond free memory is no
  // attempt; auto_fit first lowers what the user left unset.
  if (!force) {
    adjusted = fit_.ApplyAutoFit(request);
    if (!adjusted.empty()) MW_LOG(kInfo, "load") << "model=" << name << " auto_fit adjusted " << adjusted;
    if (auto refusal = fit_.RefuseIfItCannotFit(model, request)) return *refusal;
  }
  // Residency (SPEC §12, fit_and_residency.h): unload idle models to make room.
  if (auto no_room = fit_.MakeRoom(model, request, force)) return *no_room;
  ASSIGN_OR_RETURN(AttemptId attempt, state_machine_.BeginAttempt(name, force, environment_.Fingerprint(model)));
  MW_LOG(kInfo, "load") << "model=" << name << " attempt=" << attempt << " started (forced=" << force << ")";
  ASSIGN_OR_RETURN(AttemptRun run, RunLoad(name, attempt, request, adjusted));
  std::optional<api::AutoFix> auto_fix;
  if (run.outcome != LoadOutcome::kSuccess && run.outcome != LoadOutcome::kCancelled) {
    const std::string suggestion = fit_.SuggestLoadConfig(model, request, run.classification);
    // Self-healing load (SPEC §11): one more attempt at once with the
    // suggestion, when the failure is the model's and the suggestion differs.
    Result<LoadRequest> second = NotFoundError("no suggestion");
    if (!suggestion.empty()) {
      ModelRecord healed = model;
      healed.load_config = suggestion;
      second = BuildLoadRequest(ModelRead(std::move(healed)));
    }
    const bool heal = hooks_.config()->auto_fix && second.ok() && environment_.Blames(run.failure.category) &&
                      !hooks_.shutting_down();
    if (!heal) return RecordFailedRun(model, attempt, run, suggestion, "");
    auto retry = state_machine_.RetryAttempt(attempt, run.failure, second->load_config_json);
    if (!retry.ok()) {
      MW_LOG(kWarn, "load") << "model=" << name << " auto_fix not tried: " << retry.status().ToString();
      return RecordFailedRun(model, attempt, run, suggestion, "");
    }
    metrics_.RecordLoadAttempt(ToString(run.failure.outcome), run.failure.category,
                               static_cast<double>(run.duration_ms) / 1000.0);
    api::AutoFix fix;
    fix.changed_json = ChangedKeys(request.load_config_json, second->load_config_json, &fix.changed_text);
    fix.first_attempt_id = attempt;
    fix.first_failure =
        ToApiClassification(run.classification, run.failure, run.exit_code, run.signal, run.log_tail, suggestion);
    MW_LOG(kInfo, "load") << "model=" << name << " attempt=" << attempt << " failed (" << run.failure.category
                          << "); auto_fix retries as attempt " << *retry << " with " << fix.changed_text;
    auto_fix = std::move(fix);
    attempt = *retry;
    request = std::move(*second);
    adjusted.clear();  // the retry runs with the suggestion as it is
    ASSIGN_OR_RETURN(run, RunLoad(name, attempt, request));
    if (run.outcome != LoadOutcome::kSuccess && run.outcome != LoadOutcome::kCancelled) {
      const std::string note = "auto_fix: the load first failed (" + auto_fix->first_failure.summary +
                               "); changing " + auto_fix->changed_text + " did not help";
      auto failed = RecordFailedRun(model, attempt, run, fit_.SuggestLoadConfig(model, request, run.classification), note);
      if (failed.ok()) failed->auto_fix = std::move(auto_fix);
      return failed;
    }
  }
  api::LoadResult result;
  result.attempt_id = attempt;
  result.adjusted_json = adjusted;
  if (run.outcome == LoadOutcome::kCancelled) {
    auto restored = RecordFinish({Finish::Kind::kCancelled, attempt, name, {}, std::nullopt, ""});
    if (!restored.ok()) return restored.status();
    return FailedPreconditionError("the load of '" + name + "' was cancelled (unloaded or server stopping)");
  }
  Finish finish{Finish::Kind::kSuccess, attempt, name, {}, std::nullopt, ""};
  if (auto_fix) {
    finish.healed = HealedConfig{request.load_config_json, model.load_config,
                                 "loaded after changing " + auto_fix->changed_text + ": " +
                                     auto_fix->first_failure.summary};
  }
  auto after = RecordFinish(finish);
  if (!after.ok()) {
    // Not durable: do not keep a model loaded that the registry does not know about.
    (void)supervisor_.Unload(name);
    return after.status().WithContext("loaded '" + name + "' but could not record it, so it was unloaded");
  }
  MW_LOG(kInfo, "load") << "model=" << name << " attempt=" << attempt << " loaded in " << run.duration_ms << " ms";
  environment_.NoteAttempt(attempt, name, nullptr);
  result.kind = api::LoadResult::Kind::kLoaded;
  result.auto_fix = std::move(auto_fix);
  if (model.compatibility_status == CompatStatus::kDegraded) {
    result.warning = "model '" + name + "' has degraded compatibility (it failed after loading successfully before: " +
                     model.compatibility_notes.value_or("") + "); it loaded this time";
  }
  return result;
}

Result<LoadDirector::AttemptRun> LoadDirector::RunLoad(const std::string& name, AttemptId attempt,
                                                       const LoadRequest& request, const std::string& adjusted) {
  models_.SetLoadState(name, api::LoadState::kLoading, 0.0);
  hooks_.publish_model(name);
  hooks_.publish_counts();
  int last_percent = -1;
  LoadObserver observer;
  observer.on_progress = [&](double progress) {
    int percent = static_cast<int>(progress * 100);
    if (percent == last_percent) return;  // one event per percent is plenty for a progress bar
    last_percent = percent;
    models_.SetLoadState(name, api::LoadState::kLoading, progress);
    hooks_.publish_model(name);
  };
  observer.on_started = [&](int) { models_.ProcessStarted(name); };
  // SPEC §16: an on-demand load is verified by its request's first token.
  LoadRequest to_run = request;
  ClaimColdRequest(cold_loads_, &to_run, &observer, adjusted);
  // An unload that came while the attempt was starting: no process at all.
  if (!models_.ProcessStarting(name)) {
    MW_LOG(kInfo, "load") << "model=" << name << " attempt=" << attempt << " cancelled by an unload before it started";
    metrics_.RecordLoadAttempt(ToString(AttemptOutcome::kCancelled), "none", 0.0);
    AttemptRun cancelled;
    cancelled.outcome = LoadOutcome::kCancelled;
    return cancelled;
  }
  Result<LoadReport> report = supervisor_.Load(to_run, observer);
  models_.ProcessEnded(name);  // the job goes on (recording, an auto_fix retry) without a process
  if (!report.ok()) {
    // No process ran (worker missing, shutting down...): not the model's fault.
    metrics_.RecordLoadAttempt(ToString(AttemptOutcome::kCancelled), "none", -1);
    (void)RecordFinish({Finish::Kind::kCancelled, attempt, name, {}, std::nullopt, ""});
    return report.status().WithContext("could not start the load of '" + name + "'");
  }
  // A load cancelled by an unload: a request it was handed to at `ready`
  // (SPEC §16) lost its engine on purpose; it answers at once, as for an
  // unloaded model, instead of waiting death_wait_ms for a death.
  if (report->outcome == LoadOutcome::kCancelled && report->pid > 0) admission_.OnUnload(name, report->pid);
  AttemptRun run;
  run.outcome = report->outcome;
  run.duration_ms = report->duration_ms;
  run.pid = report->pid;
  run.exit_code = report->exit_code();
  run.signal = report->signal_name();
  run.log_tail = report->log_tail;
  if (report->outcome == LoadOutcome::kSuccess || report->outcome == LoadOutcome::kCancelled) {
    metrics_.RecordLoadAttempt(ToString(ToAttemptOutcome(report->outcome)), "none",
                               static_cast<double>(report->duration_ms) / 1000.0);
    return run;
  }
  // When the supervisor ended the process itself (stall timeout, protocol
  // violation), the signal it died of is ours: not evidence about the model
  // (a SIGKILL would otherwise read as the out-of-memory killer), and the
  // supervisor's own message says what happened.
  const bool ended_by_us = report->outcome == LoadOutcome::kTimeout || report->error_code == kLoadErrProtocol ||
                           report->error_code == kLoadErrProtocolClosed;
  // A worker's own `error` message (e.g. an unknown architecture) is evidence.
  const bool worker_error = !report->error_message.empty() && report->error_code != kLoadErrExited &&
                            report->error_code != kLoadErrExecFailed && !ended_by_us;
  const std::string output = worker_error ? report->log_tail + "\n" + report->error_message : std::string();
  CrashEvidence evidence;
  evidence.output = worker_error ? std::string_view(output) : std::string_view(report->log_tail);
  if (auto code = report->exit_code()) evidence.exit_code = *code;
  if (!ended_by_us) evidence.signal = report->signal_name();
  evidence.timed_out = report->outcome == LoadOutcome::kTimeout;
  const Classification c = hooks_.classifier().Classify(evidence);
  run.classification = c;
  FailureInfo& failure = run.failure;
  failure.outcome = ToAttemptOutcome(report->outcome);
  if (auto code = report->exit_code()) failure.exit_code = *code;
  failure.signal = report->signal_name().value_or("");
  failure.category = std::string(CrashCategoryName(c.category));
  failure.pattern_id = c.pattern_id;
  failure.summary = c.summary.empty() ? report->error_message : c.summary;
  // No catalog line matched: the supervisor's or the worker's message says
  // more than a generic "exited with status 1".
  if (!report->error_message.empty() && c.pattern_id == "unmatched" && (ended_by_us || worker_error) &&
      report->outcome != LoadOutcome::kTimeout) {
    failure.summary = report->error_message;
  }
  failure.matched_line = c.matched_line;
  failure.log_excerpt = Excerpt(report->log_tail);
  return run;
}

Result<api::LoadResult> LoadDirector::RecordFailedRun(const ModelRecord& model, AttemptId attempt,
                                                      const AttemptRun& run, const std::string& suggestion,
                                                      const std::string& extra_note) {
  const std::string& name = model.model_name;
  FailureInfo failure = run.failure;
  // SPEC §11: device_unavailable, or a device-level failure while the
  // environment is failing, is the environment's: the status is kept.
  const bool blamed = environment_.Blames(failure.category);
  if (!blamed) failure.outcome = AttemptOutcome::kEnvironmentFailure;
  metrics_.RecordLoadAttempt(ToString(failure.outcome), failure.category,
                             static_cast<double>(run.duration_ms) / 1000.0);
  Finish finish{blamed ? Finish::Kind::kFailure : Finish::Kind::kEnvironment, attempt, name, failure, std::nullopt,
                blamed ? extra_note : std::string()};
  auto after = RecordFinish(finish);
  if (!after.ok()) return after.status().WithContext("the load of '" + name + "' failed and could not be recorded");
  environment_.NoteAttempt(attempt, name, &failure);
  if (auto now = registry_.GetModel(name); now.ok()) after = std::move(now);  // a revert may have changed it
  MW_LOG(kWarn, "load") << "model=" << name << " attempt=" << attempt << " " << LoadOutcomeName(run.outcome)
                        << " category=" << failure.category << " pid=" << run.pid << " summary=" << failure.summary;
  api::LoadResult result;
  result.attempt_id = attempt;
  result.kind = api::LoadResult::Kind::kFailed;
  result.notes = after->compatibility_notes.value_or("");
  result.message = FailureMessage(name, failure.outcome, failure.summary, after->compatibility_status);
  result.classification =
      ToApiClassification(run.classification, failure, run.exit_code, run.signal, run.log_tail, suggestion);
  return result;
}

Result<ModelRecord> LoadDirector::WriteFinish(const Finish& finish) {
  switch (finish.kind) {
    case Finish::Kind::kSuccess:
      return finish.healed ? state_machine_.FinishHealed(finish.attempt, *finish.healed)
                           : state_machine_.FinishSuccess(finish.attempt);
    case Finish::Kind::kFailure: return state_machine_.FinishFailure(finish.attempt, finish.failure, finish.extra_note);
    case Finish::Kind::kCancelled: return state_machine_.FinishCancelled(finish.attempt);
    case Finish::Kind::kEnvironment: return state_machine_.FinishEnvironmentFailure(finish.attempt, finish.failure);
  }
  return InternalError("unknown finish kind");
}

void LoadDirector::OnFinishesSettled(const std::vector<FinishLedger::Settled>& settled) {
  for (const FinishLedger::Settled& one : settled) {
    const Finish& finish = one.finish;
    std::optional<std::string> last_error;  // the storage error is over
    if (one.after && (finish.kind == Finish::Kind::kFailure || finish.kind == Finish::Kind::kEnvironment)) {
      last_error = FailureMessage(finish.model_name, finish.failure.outcome, finish.failure.summary,
                                  one.after->compatibility_status);
    }
    models_.SetLastError(finish.model_name, last_error);
    hooks_.publish_model(finish.model_name);
  }
  hooks_.publish_counts();
}

// A loaded model's engine died on its own (SPEC §10, crash while serving):
// not loaded any more, last_error = the classified summary (what the /v1
// edge answers with), and, durably, a closed attempt crashed_while_serving
// with the model's status moved as after a failed load (rule 3).
void LoadDirector::OnWorkerDied(const UnexpectedExit& exit) {
  // Stopped from outside (a clean exit, or SIGTERM/SIGINT/SIGHUP, which
  // llama.cpp's server also turns into a clean exit): not a crash, no verdict.
  const bool stopped = exit.exit.signaled() ? (exit.exit.signal == SIGTERM || exit.exit.signal == SIGINT ||
                                               exit.exit.signal == SIGHUP)
                                            : (exit.exit.exit_code == 0 && !exit.exit.status_unknown);
  if (stopped) {
    const std::string reason = "engine stopped from outside modelwarden (" + exit.exit.Describe() + ")";
    MW_LOG(kWarn, "load") << "model=" << exit.model_name << " pid=" << exit.pid << " " << reason;
    models_.MarkNotLoaded(exit.model_name, reason, exit.pid);
    hooks_.publish_model(exit.model_name);
    admission_.NoteDeath(exit.pid, reason);  // /v1 requests it cut off answer at once
    return;
  }
  CrashEvidence evidence;
  evidence.output = exit.log_tail;
  if (!exit.exit.signaled()) evidence.exit_code = exit.exit.exit_code;
  if (exit.exit.signaled()) evidence.signal = std::to_string(exit.exit.signal);
  FailureInfo failure;
  failure.outcome = AttemptOutcome::kCrashedWhileServing;
  if (!exit.exit.signaled() && !exit.exit.status_unknown) failure.exit_code = exit.exit.exit_code;
  if (exit.exit.signaled()) {
    auto signal = ParseSignal(std::to_string(exit.exit.signal));
    failure.signal = signal ? signal->name : std::to_string(exit.exit.signal);
  }
  RecordServingEnd(exit.model_name, exit.pid, evidence,
                   "Engine crashed while serving (" + exit.exit.Describe() + ", up " +
                       std::to_string(exit.uptime_ms / 1000) + " s)",
                   std::move(failure));
}

void LoadDirector::RecordServingEnd(const std::string& name, int pid, const CrashEvidence& evidence,
                                    std::string summary, FailureInfo failure) {
  const bool hung = failure.outcome == AttemptOutcome::kHungWhileServing;
  Classification c = hooks_.classifier().Classify(evidence);
  if (hung && c.pattern_id == "unmatched") {
    // Nothing in the log says why: the hang itself is the cause (SPEC §19).
    c.category = CrashCategory::kTimeout;
    c.pattern_id = "hang.serving";
    c.summary.clear();
  }
  if (!c.summary.empty()) summary += ": " + c.summary;
  MW_LOG(kWarn, "load") << "model=" << name << " pid=" << pid << " " << summary;
  if (hung) {
    metrics_.RecordEngineHang(name);
  } else {
    metrics_.RecordWorkerDeath(CrashCategoryName(c.category));
  }
  models_.MarkNotLoaded(name, summary, pid);
  failure.category = std::string(CrashCategoryName(c.category));
  failure.pattern_id = c.pattern_id;
  failure.summary = summary;
  failure.matched_line = c.matched_line;
  failure.log_excerpt = Excerpt(std::string(evidence.output));
  // SPEC §11: a device that went away (or a device-level failure while the
  // environment is failing) is the environment's: the status is kept.
  if (!environment_.Blames(failure.category)) failure.outcome = AttemptOutcome::kEnvironmentFailure;
  auto recorded = state_machine_.RecordServingCrash(name, failure);
  if (!recorded.ok() && recorded.status().code() != StatusCode::kNotFound) {  // kNotFound: deleted meanwhile
    MW_LOG(kError, "load") << "model=" << name << " cannot record the " << (hung ? "hang" : "crash")
                           << " while serving: " << recorded.status().ToString();
  }
  if (recorded.ok()) {
    // Before anyone is told (the event, the /v1 answers): the next view reads the hang's time.
    if (hung) last_hangs_.Invalidate();
    // A failed attempt like a failed load (SPEC §11 counts both toward a
    // streak, and a restart reads both back from load_attempts).
    auto last = registry_.ListAttempts(name, 1);
    if (last.ok() && !last->empty()) environment_.NoteAttempt(last->front().id, name, &failure);
  }
  hooks_.publish_model(name);
  hooks_.publish_counts();
  admission_.NoteDeath(pid, summary, hung);  // after the record: /v1 requests it broke answer with this summary
}

}  // namespace mw::app
