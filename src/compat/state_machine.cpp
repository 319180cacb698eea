#include "compat/state_machine.h"

#include <algorithm>
#include <map>
#include <set>

#include "common/log.h"
#include "common/time_util.h"

namespace mw {
namespace {

std::string Quoted(std::string_view name) { return "'" + std::string(name) + "'"; }

// " (on node 'X')" when the open attempt of `name` is another node's.
std::string TestedWhere(Transaction& tx, std::string_view name) {
  auto open = tx.GetOpenAttempt(name);
  if (!open.ok() || !*open || !(*open)->node_id || *(*open)->node_id == tx.NodeId()) return "";
  return " (on node '" + *(*open)->node_id + "')";
}

// Folds a text into one line: control characters become spaces, runs of
// spaces collapse, ends are trimmed, and very long text is cut.
std::string OneLine(std::string_view text) {
  constexpr size_t kMaxLine = 1000;
  std::string out;
  for (char c : text) {
    const bool space = c == '\n' || c == '\r' || c == '\t' || c == ' ';
    if (space) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else if (static_cast<unsigned char>(c) >= 0x20) {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.size() > kMaxLine) out = out.substr(0, kMaxLine) + "...";
  return out;
}

bool IsManualStatus(CompatStatus s) { return s != CompatStatus::kTesting; }

// The attempt fields a failure fills in.
void RecordFailure(const FailureInfo& f, const std::string& summary, AttemptRecord& a) {
  a.exit_code = f.exit_code;
  a.signal = f.signal;
  a.category = f.category;
  a.pattern_id = f.pattern_id;
  a.summary = summary;
  a.matched_line = f.matched_line;
  a.log_excerpt = f.log_excerpt;
}

CompatStatus AfterFailure(int64_t total_loads) {
  return total_loads >= kDegradedAfterLoads ? CompatStatus::kDegraded : CompatStatus::kIncompatible;
}

// A failure ends an attempt as failed, crashed or timeout.
Status CheckFailedOutcome(const FailureInfo& f) {
  if (f.outcome != AttemptOutcome::kFailed && f.outcome != AttemptOutcome::kCrashed &&
      f.outcome != AttemptOutcome::kTimeout) {
    return InvalidArgumentError("a failed load attempt ends as failed, crashed or timeout, not " +
                                std::string(ToString(f.outcome)));
  }
  return Status::Ok();
}

}  // namespace

Result<CompatStatus> NextStatus(CompatStatus from, const TransitionInput& in) {
  const bool testing = from == CompatStatus::kTesting;
  switch (in.event) {
    case CompatEvent::kBeginAttempt:
      if (testing) return FailedPreconditionError("a load attempt is already in progress");
      if (from == CompatStatus::kIncompatible && !in.forced) {
        return FailedPreconditionError("the model is incompatible; load it with force_load to try anyway");
      }
      return CompatStatus::kTesting;
    case CompatEvent::kLoadSucceeded:
      if (!testing) return FailedPreconditionError("no load attempt is in progress");
      return CompatStatus::kCompatible;
    case CompatEvent::kLoadFailed:
    case CompatEvent::kStartupCleanup:
      if (!testing) return FailedPreconditionError("no load attempt is in progress");
      return AfterFailure(in.total_loads);
    case CompatEvent::kLoadCancelled:
      if (!testing) return FailedPreconditionError("no load attempt is in progress");
      if (in.status_before == CompatStatus::kTesting) {
        return InvalidArgumentError("a cancelled attempt cannot restore status 'testing'");
      }
      return in.status_before;
    case CompatEvent::kRetry:
      if (!testing) return FailedPreconditionError("no load attempt is in progress");
      return CompatStatus::kTesting;
    case CompatEvent::kServingCrashed:
      if (testing) return FailedPreconditionError("a load attempt is in progress");
      return AfterFailure(in.total_loads);
    case CompatEvent::kManualSet:
      if (!IsManualStatus(in.manual_target)) {
        return InvalidArgumentError("status 'testing' cannot be set by hand: only a load attempt sets it");
      }
      if (testing) {
        return FailedPreconditionError("a load attempt is in progress; change the status after it ends");
      }
      return in.manual_target;
  }
  return InternalError("unknown compatibility event");
}

std::string FailureNotes(int64_t total_loads, std::string_view summary, std::string_view matched_line,
                         std::string_view category) {
  const std::string line = OneLine(summary);
  std::string notes = category == "unsupported_model"           ? std::string(kBadFileNotes) + line
                      : total_loads >= kDegradedAfterLoads
                          ? "Intermittent issue detected (loaded successfully " +
                                std::to_string(total_loads) + " times before): " + line
                          : "Hardware incompatibility detected: " + line;
  const std::string matched = OneLine(matched_line);
  if (!matched.empty() && matched != line) notes += "\n" + matched;
  return notes;
}

std::string FallbackSummary(const FailureInfo& f) {
  if (!f.summary.empty()) return f.summary;
  if (f.outcome == AttemptOutcome::kTimeout) return "Load timed out";
  if (!f.signal.empty()) return "Worker killed by " + f.signal;
  if (f.exit_code) return "Worker exited with code " + std::to_string(*f.exit_code);
  return "Load failed";
}

Result<AttemptId> StateMachine::BeginAttempt(std::string_view name, bool forced,
                                             std::string_view hardware_fingerprint) {
  ASSIGN_OR_RETURN(Transaction tx, registry_.BeginWrite());
  ASSIGN_OR_RETURN(ModelRecord model, tx.GetModel(name));
  auto next = NextStatus(model.compatibility_status, {.event = CompatEvent::kBeginAttempt, .forced = forced});
  if (!next.ok()) {
    std::string msg = "cannot load model " + Quoted(name) + ": " + next.status().message();
    if (model.compatibility_status == CompatStatus::kTesting) msg += TestedWhere(tx, name);
    if (model.compatibility_status == CompatStatus::kIncompatible && model.compatibility_notes) {
      msg += " (notes: " + OneLine(*model.compatibility_notes) + ")";
    }
    return Status(next.status().code(), msg);
  }
  // One model in testing at a time per node (SPEC §1.6, §14), so that a
  // crash of the whole machine points at exactly one model.
  ASSIGN_OR_RETURN(const auto own_open, tx.ListOwnOpenAttempts());
  if (!own_open.empty()) {
    return FailedPreconditionError("cannot load model " + Quoted(name) + ": model " +
                                   Quoted(own_open.front().model_name) +
                                   " is being tested; load attempts run one at a time");
  }
  AttemptRecord attempt;
  attempt.model_name = model.model_name;
  attempt.forced = forced;
  attempt.status_before = model.compatibility_status;
  attempt.load_config = model.load_config;
  if (!hardware_fingerprint.empty()) attempt.hardware_fingerprint = std::string(hardware_fingerprint);
  ASSIGN_OR_RETURN(const AttemptId id, tx.InsertAttempt(attempt));
  model.compatibility_status = *next;
  RETURN_IF_ERROR(tx.WriteModelState(model));
  // COMMIT POINT "testing mark": from here a crash of the server, the machine
  // or the driver leaves this model in testing with an open attempt.
  RETURN_IF_ERROR(tx.Commit());
  MW_LOG(kInfo, "compat") << "load attempt " << id << " started model=" << model.model_name
                          << " from=" << ToString(attempt.status_before) << (forced ? " forced" : "");
  return id;
}

template <typename Edit>
Result<ModelRecord> StateMachine::Finish(AttemptId id, CompatEvent event, Edit edit) {
  ASSIGN_OR_RETURN(Transaction tx, registry_.BeginWrite());
  ASSIGN_OR_RETURN(AttemptRecord attempt, tx.GetAttempt(id));
  if (!attempt.open()) {
    return FailedPreconditionError("load attempt " + std::to_string(id) + " of model " +
                                   Quoted(attempt.model_name) + " already ended (" +
                                   std::string(ToString(*attempt.outcome)) + "); a late result is ignored");
  }
  ASSIGN_OR_RETURN(ModelRecord model, tx.GetModelOfAttempt(attempt));
  const TransitionInput input{
      .event = event, .total_loads = model.total_loads, .status_before = attempt.status_before};
  ASSIGN_OR_RETURN(const CompatStatus next, NextStatus(model.compatibility_status, input));
  const std::string now = NowIso8601();
  const std::string load_config_before = model.load_config;
  model.compatibility_status = next;
  attempt.finished_at = now;
  attempt.status_after = next;
  RETURN_IF_ERROR(edit(model, attempt, now));
  RETURN_IF_ERROR(tx.WriteModelState(model));
  if (model.load_config != load_config_before) {  // FinishHealed
    ModelUpdate update;
    update.load_config = model.load_config;
    RETURN_IF_ERROR(tx.UpdateModel(model.model_name, update));
  }
  RETURN_IF_ERROR(tx.CloseAttempt(attempt));
  ASSIGN_OR_RETURN(ModelRecord written, tx.GetModelOfAttempt(attempt));
  // COMMIT POINT "attempt outcome": the model's new status and the closed
  // attempt become durable together.
  RETURN_IF_ERROR(tx.Commit());
  MW_LOG(kInfo, "compat") << "load attempt " << id << " ended model=" << model.model_name
                          << " outcome=" << ToString(*attempt.outcome) << " status=" << ToString(next);
  return written;
}

namespace {

// SPEC §18: a success after a forced load or a retest (an attempt from
// incompatible or unknown) starts the notes afresh; the notes it replaces
// stay in the attempt history, as the successful attempt's summary.
void StartNotesAfresh(ModelRecord& m, AttemptRecord& a) {
  const bool afresh = a.forced || a.status_before == CompatStatus::kIncompatible ||
                      a.status_before == CompatStatus::kUnknown;
  const std::string notes = m.compatibility_notes.value_or("");
  if (!afresh || notes.empty()) return;
  a.summary = "notes before this success: " + OneLine(notes);
  m.compatibility_notes.reset();
}

}  // namespace

Result<ModelRecord> StateMachine::FinishSuccess(AttemptId id) {
  return Finish(id, CompatEvent::kLoadSucceeded,
                [](ModelRecord& m, AttemptRecord& a, const std::string& now) {
                  m.total_loads += 1;
                  m.last_loaded_at = now;
                  m.verdict_fingerprint = a.hardware_fingerprint;
                  a.outcome = AttemptOutcome::kSuccess;
                  StartNotesAfresh(m, a);
                  return Status::Ok();
                });
}

Result<ModelRecord> StateMachine::FinishHealed(AttemptId id, const HealedConfig& healed) {
  return Finish(id, CompatEvent::kLoadSucceeded, [&healed](ModelRecord& m, AttemptRecord& a, const std::string& now) {
    m.total_loads += 1;
    m.last_loaded_at = now;
    m.verdict_fingerprint = a.hardware_fingerprint;
    a.outcome = AttemptOutcome::kSuccess;
    StartNotesAfresh(m, a);
    std::string note = OneLine(healed.note);
    if (m.load_config == healed.replaces) {
      m.load_config = healed.load_config;
    } else {
      note += " (not saved: the load_config was changed meanwhile)";
    }
    const std::string notes = m.compatibility_notes.value_or("");
    m.compatibility_notes = notes.empty() ? note : notes + "\n" + note;
    return Status::Ok();
  });
}

Result<AttemptId> StateMachine::RetryAttempt(AttemptId id, const FailureInfo& f, std::string_view load_config) {
  RETURN_IF_ERROR(CheckFailedOutcome(f));
  ASSIGN_OR_RETURN(Transaction tx, registry_.BeginWrite());
  ASSIGN_OR_RETURN(AttemptRecord attempt, tx.GetAttempt(id));
  if (!attempt.open()) {
    return FailedPreconditionError("load attempt " + std::to_string(id) + " of model " +
                                   Quoted(attempt.model_name) + " already ended; it cannot be retried");
  }
  ASSIGN_OR_RETURN(ModelRecord model, tx.GetModelOfAttempt(attempt));
  ASSIGN_OR_RETURN(const CompatStatus next, NextStatus(model.compatibility_status, {.event = CompatEvent::kRetry}));
  attempt.finished_at = NowIso8601();
  attempt.status_after = next;
  attempt.outcome = f.outcome;
  RecordFailure(f, FallbackSummary(f), attempt);
  RETURN_IF_ERROR(tx.CloseAttempt(attempt));
  AttemptRecord retry;
  retry.model_name = attempt.model_name;
  retry.forced = attempt.forced;
  retry.status_before = attempt.status_before;
  retry.load_config = std::string(load_config);
  retry.hardware_fingerprint = attempt.hardware_fingerprint;
  retry.node_id = attempt.node_id;
  retry.environment_class = attempt.environment_class;
  ASSIGN_OR_RETURN(const AttemptId retry_id, tx.InsertAttempt(retry));
  // COMMIT POINT "retry": the failed attempt is closed and the next one is
  // open, the model still testing: a crash from here is one failure.
  RETURN_IF_ERROR(tx.Commit());
  MW_LOG(kInfo, "compat") << "load attempt " << id << " failed, retried as attempt " << retry_id
                          << " model=" << attempt.model_name << " load_config=" << OneLine(load_config);
  return retry_id;
}

Result<ModelRecord> StateMachine::FinishFailure(AttemptId id, const FailureInfo& f, std::string_view extra_note) {
  RETURN_IF_ERROR(CheckFailedOutcome(f));
  return Finish(id, CompatEvent::kLoadFailed, [&f, extra_note](ModelRecord& m, AttemptRecord& a, const std::string& now) {
    const std::string summary = FallbackSummary(f);
    // total_loads before this failure decides the wording, as it decided the status.
    m.compatibility_notes = FailureNotes(m.total_loads, summary, f.matched_line, f.category);
    if (!extra_note.empty()) *m.compatibility_notes += "\n" + OneLine(extra_note);
    m.total_failures += 1;
    m.last_failed_at = now;
    m.verdict_fingerprint = a.hardware_fingerprint;
    a.outcome = f.outcome;
    RecordFailure(f, summary, a);
    return Status::Ok();
  });
}

Result<ModelRecord> StateMachine::FinishCancelled(AttemptId id) {
  return Finish(id, CompatEvent::kLoadCancelled, [](ModelRecord&, AttemptRecord& a, const std::string&) {
    a.outcome = AttemptOutcome::kCancelled;
    return Status::Ok();
  });
}

Result<ModelRecord> StateMachine::FinishEnvironmentFailure(AttemptId id, const FailureInfo& f) {
  return Finish(id, CompatEvent::kLoadCancelled, [&f](ModelRecord&, AttemptRecord& a, const std::string&) {
    a.outcome = AttemptOutcome::kEnvironmentFailure;
    RecordFailure(f, FallbackSummary(f), a);
    return Status::Ok();
  });
}

Result<std::vector<ModelRecord>> StateMachine::RevertVerdicts(const std::vector<AttemptId>& attempts,
                                                              std::string_view note) {
  ASSIGN_OR_RETURN(Transaction tx, registry_.BeginWrite());
  std::vector<ModelRecord> reverted;
  for (AttemptId id : attempts) {
    auto attempt = tx.GetAttempt(id);
    if (!attempt.ok()) {
      if (attempt.status().code() == StatusCode::kNotFound) continue;  // model deleted since
      return attempt.status();
    }
    AttemptRecord& a = *attempt;
    if (a.open() || !a.status_after || a.outcome == AttemptOutcome::kEnvironmentFailure) continue;
    ASSIGN_OR_RETURN(ModelRecord model, tx.GetModelOfAttempt(a));
    // Only a verdict still in force is reverted: a later attempt or a
    // manual change decided since, and that decision stands.
    if (model.compatibility_status != *a.status_after || model.compatibility_status == CompatStatus::kTesting ||
        model.verdict_fingerprint != a.hardware_fingerprint) {
      continue;
    }
    model.compatibility_status = a.status_before == CompatStatus::kTesting ? CompatStatus::kUnknown : a.status_before;
    std::string notes = model.compatibility_notes.value_or("");
    model.compatibility_notes = (notes.empty() ? "" : notes + "\n") + OneLine(note);
    model.verdict_fingerprint.reset();
    if (model.total_failures > 0) model.total_failures -= 1;
    RETURN_IF_ERROR(tx.WriteModelState(model));
    RETURN_IF_ERROR(tx.ReclassifyAttempt(id, AttemptOutcome::kEnvironmentFailure, model.compatibility_status));
    reverted.push_back(model);
  }
  // COMMIT POINT "revert": all reverted verdicts land together.
  RETURN_IF_ERROR(tx.Commit());
  for (const ModelRecord& m : reverted) {
    MW_LOG(kWarn, "compat") << "verdict reverted (environment failure) model=" << m.model_name
                            << " status=" << ToString(m.compatibility_status);
  }
  return reverted;
}

Result<ModelRecord> StateMachine::RecordServingCrash(std::string_view name, const FailureInfo& f) {
  ASSIGN_OR_RETURN(Transaction tx, registry_.BeginWrite());
  ASSIGN_OR_RETURN(ModelRecord model, tx.GetModel(name));
  auto next = NextStatus(model.compatibility_status,
                         {.event = CompatEvent::kServingCrashed, .total_loads = model.total_loads});
  if (!next.ok()) {
    return Status(next.status().code(), "crash while serving of model " + Quoted(name) +
                                            " not recorded: " + next.status().message());
  }
  AttemptRecord attempt;
  attempt.model_name = model.model_name;
  attempt.status_before = model.compatibility_status;
  attempt.load_config = model.load_config;
  ASSIGN_OR_RETURN(attempt.id, tx.InsertAttempt(attempt));
  const std::string summary = FallbackSummary(f);
  const std::string now = NowIso8601();
  // SPEC §11: the environment's failure is not the model's (status,
  // counters, notes and verdict kept).
  const bool environment = f.outcome == AttemptOutcome::kEnvironmentFailure;
  if (!environment) {
    model.compatibility_status = *next;
    model.compatibility_notes = FailureNotes(model.total_loads, summary, f.matched_line, f.category);
    model.total_failures += 1;
    model.last_failed_at = now;
    RETURN_IF_ERROR(tx.WriteModelState(model));
  }
  attempt.finished_at = now;
  attempt.outcome = environment                                     ? AttemptOutcome::kEnvironmentFailure
                    : f.outcome == AttemptOutcome::kHungWhileServing ? AttemptOutcome::kHungWhileServing
                                                                     : AttemptOutcome::kCrashedWhileServing;
  attempt.status_after = model.compatibility_status;
  RecordFailure(f, summary, attempt);
  RETURN_IF_ERROR(tx.CloseAttempt(attempt));
  ASSIGN_OR_RETURN(ModelRecord written, tx.GetModel(model.model_name));
  // COMMIT POINT "serving crash": the closed attempt and the new status together.
  RETURN_IF_ERROR(tx.Commit());
  MW_LOG(kWarn, "compat") << "engine " << (f.outcome == AttemptOutcome::kHungWhileServing ? "hung" : "crashed")
                          << " while serving model=" << model.model_name << " attempt=" << attempt.id
                          << " status=" << ToString(written.compatibility_status);
  return written;
}

Result<ModelRecord> StateMachine::SetStatusManually(std::string_view name, CompatStatus status) {
  return ApplyManualChange(name, status, ModelUpdate{});
}

Result<ModelRecord> StateMachine::ApplyManualChange(std::string_view name, std::optional<CompatStatus> status,
                                                    ModelUpdate fields) {
  ASSIGN_OR_RETURN(Transaction tx, registry_.BeginWrite());
  ASSIGN_OR_RETURN(const ModelRecord model, tx.GetModel(name));
  fields.compatibility_status.reset();
  if (status) {
    auto next =
        NextStatus(model.compatibility_status, {.event = CompatEvent::kManualSet, .manual_target = *status});
    if (!next.ok()) {
      return Status(next.status().code(), "cannot set the status of model " + Quoted(name) + " to '" +
                                              std::string(ToString(*status)) + "': " + next.status().message());
    }
    fields.compatibility_status = *next;
  }
  RETURN_IF_ERROR(tx.UpdateModel(name, fields));
  ASSIGN_OR_RETURN(ModelRecord written, tx.GetModel(name));
  if (status && written.verdict_fingerprint) {
    // A status set by hand was not decided by an attempt (SPEC §11).
    written.verdict_fingerprint.reset();
    RETURN_IF_ERROR(tx.WriteModelState(written));
  }
  // COMMIT POINT "manual": the status and the other fields land together.
  RETURN_IF_ERROR(tx.Commit());
  if (status) {
    MW_LOG(kInfo, "compat") << "status set by hand model=" << written.model_name
                            << " status=" << ToString(written.compatibility_status);
  }
  return written;
}

namespace {

using ClassAndName = std::pair<std::string, std::string>;

// Settles the attempts of a server that died (SPEC §1.4, §14): each model
// still testing in its attempt's class is marked as after a failure, and
// each attempt is closed as server_crash. `orphans`: models in testing in
// this node's class that no open attempt explains (a file edited by hand),
// marked too. The caller commits and then prints.
Status SettleAbandoned(Transaction& tx, const std::vector<AttemptRecord>& abandoned,
                       const std::vector<ModelRecord>& orphans, const std::vector<ModelRecord>& own_testing,
                       CleanupReport& report) {
  const std::string own = tx.EnvironmentClass();
  const std::string now = NowIso8601();
  const std::string summary = "the server stopped while this model was loading (crashed during test)";
  auto class_of = [&](const AttemptRecord& a) { return tx.ClassOf(a); };
  // The models in testing of each class the attempts name, one read per
  // class (this node's class is read already): not one per attempt.
  std::map<ClassAndName, ModelRecord> testing;
  for (const ModelRecord& m : own_testing) testing.emplace(ClassAndName{own, m.model_name}, m);
  std::set<std::string, std::less<>> classes_read{own};
  for (const AttemptRecord& a : abandoned) {
    const std::string cls = class_of(a);
    if (!classes_read.insert(cls).second) continue;
    ASSIGN_OR_RETURN(std::vector<ModelRecord> models, tx.ListModelsWithStatusInClass(CompatStatus::kTesting, cls));
    for (ModelRecord& m : models) testing.emplace(ClassAndName{cls, m.model_name}, std::move(m));
  }

  std::map<ClassAndName, ModelRecord> stuck;  // by class and name: the order of the printed lines
  std::map<ClassAndName, std::optional<std::string>> fingerprint;
  for (const AttemptRecord& a : abandoned) {
    const ClassAndName key{class_of(a), a.model_name};
    fingerprint[key] = a.hardware_fingerprint;
    if (stuck.count(key) != 0) continue;
    if (auto it = testing.find(key); it != testing.end()) stuck.emplace(key, it->second);
  }
  for (const ModelRecord& m : orphans) stuck.emplace(ClassAndName{own, m.model_name}, m);

  std::map<ClassAndName, CompatStatus> status_after;
  std::vector<ModelRecord> marked;
  std::vector<AttemptRecord> closed;
  for (auto& [key, model] : stuck) {
    model.verdict_fingerprint = fingerprint[key];
    const TransitionInput input{.event = CompatEvent::kStartupCleanup, .total_loads = model.total_loads};
    ASSIGN_OR_RETURN(const CompatStatus next, NextStatus(model.compatibility_status, input));
    model.compatibility_notes = FailureNotes(model.total_loads, summary, "");
    model.compatibility_status = next;
    model.total_failures += 1;
    model.last_failed_at = now;
    marked.push_back(model);
    status_after[key] = next;
    report.marked.emplace_back(model.model_name, next);
  }
  std::stable_sort(report.marked.begin(), report.marked.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  for (AttemptRecord attempt : abandoned) {
    if (auto it = status_after.find({class_of(attempt), attempt.model_name}); it != status_after.end()) {
      attempt.status_after = it->second;
    } else {
      // An open attempt of a model not in testing (a file edited by hand):
      // close it without touching the model.
      ASSIGN_OR_RETURN(const ModelRecord model, tx.GetModelOfAttempt(attempt));
      attempt.status_after = model.compatibility_status;
    }
    attempt.finished_at = now;
    attempt.outcome = AttemptOutcome::kServerCrash;
    attempt.summary = summary;
    closed.push_back(std::move(attempt));
    ++report.attempts_closed;
  }
  // Thousands of stuck models in a few statements (PostgreSQL: two).
  return tx.WriteStatesAndCloseAttempts(marked, closed);
}

// The SPEC §1.4 lines.
void PrintCleanup(const CleanupReport& report, std::ostream& out) {
  if (!report.marked.empty()) {
    out << "\u26a0\ufe0f  Found " << report.marked.size()
        << " model(s) stuck in 'testing' status from previous crash\n";
    for (const auto& [name, status] : report.marked) {
      out << "   - Marked '" << name << "' as " << ToString(status) << " (crashed during test)\n";
    }
  }
  out << "\u2705 Compatibility status cleanup completed\n";
  out.flush();
}

}  // namespace

Result<CleanupReport> StateMachine::StartupCleanup(std::ostream& out) {
  CleanupReport report;
  // kBulk: thousands of stuck models must not spill the page cache or run
  // the WAL checkpoint inside this commit (the server checkpoints later).
  ASSIGN_OR_RETURN(Transaction tx, registry_.BeginWrite(WriteMode::kBulk));
  ASSIGN_OR_RETURN(const std::vector<ModelRecord> testing, tx.ListModelsWithStatus(CompatStatus::kTesting));
  ASSIGN_OR_RETURN(const std::vector<AttemptRecord> open, tx.ListOpenAttempts());
  // Only this node's attempts (and those of no node): another node's are
  // its own to settle, or a live node's once its lease expires (SPEC §14).
  const std::string me = tx.NodeId();
  const std::string own_class = tx.EnvironmentClass();
  std::vector<AttemptRecord> mine;
  std::set<std::string, std::less<>> explained;  // models of this class with an open attempt of any node
  for (const AttemptRecord& a : open) {
    // An SQLite file has one server: its open attempts are all this one's
    // (also after node_id was deleted and made anew).
    if (!tx.Shared() || !a.node_id || *a.node_id == me) mine.push_back(a);
    if (tx.ClassOf(a) == own_class) explained.insert(a.model_name);
  }
  std::vector<ModelRecord> orphans;
  for (const ModelRecord& m : testing) {
    if (explained.count(m.model_name) == 0) orphans.push_back(m);
  }
  RETURN_IF_ERROR(SettleAbandoned(tx, mine, orphans, testing, report));
  // COMMIT POINT "cleanup": every stuck model and open attempt is settled at once.
  RETURN_IF_ERROR(tx.Commit());

  PrintCleanup(report, out);
  if (report.attempts_closed > 0 || !report.marked.empty()) {
    MW_LOG(kWarn, "compat") << "startup cleanup marked " << report.marked.size() << " model(s), closed "
                            << report.attempts_closed << " open attempt(s) as server_crash";
  }
  return report;
}

Result<std::vector<ExpiredNodeReport>> StateMachine::CloseAttemptsOfExpiredNodes(std::ostream& out) {
  std::vector<ExpiredNodeReport> reports;
  ASSIGN_OR_RETURN(Transaction tx, registry_.BeginWrite());
  ASSIGN_OR_RETURN(const std::vector<NodeRecord> expired, tx.ListExpiredNodes());
  if (expired.empty()) return reports;  // rolled back: nothing was written
  ASSIGN_OR_RETURN(const std::vector<ModelRecord> testing, tx.ListModelsWithStatus(CompatStatus::kTesting));
  for (const NodeRecord& node : expired) {
    // Decisive and conditional: a node that renewed meanwhile keeps its lease.
    ASSIGN_OR_RETURN(const bool taken, tx.MarkNodeExpired(node.node_id));
    if (!taken) continue;
    ExpiredNodeReport r;
    r.node = node;
    ASSIGN_OR_RETURN(const std::vector<AttemptRecord> open, tx.ListOpenAttemptsOfNode(node.node_id));
    RETURN_IF_ERROR(SettleAbandoned(tx, open, {}, testing, r.cleanup));
    reports.push_back(std::move(r));
  }
  // COMMIT POINT "takeover": the leases and the attempts they covered are
  // settled at once, by exactly one live node.
  RETURN_IF_ERROR(tx.Commit());
  for (const ExpiredNodeReport& r : reports) {
    out << "\u26a0\ufe0f  Node '" << r.node.node_id << "' (" << r.node.host << ") lost its lease: silent for "
        << r.node.heartbeat_age_ms / 1000 << " s (lease " << r.node.lease_s << " s); closing its open load attempts\n";
    PrintCleanup(r.cleanup, out);
    MW_LOG(kWarn, "compat") << "node " << r.node.node_id << " lease expired: marked " << r.cleanup.marked.size()
                            << " model(s), closed " << r.cleanup.attempts_closed << " open attempt(s) as server_crash";
  }
  return reports;
}

}  // namespace mw
