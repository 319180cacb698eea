// compat/state_machine: the compatibility status of a model (SPEC §1) and
// the load attempts that move it, over the registry.
//
//                      BeginAttempt (durable before the worker starts)
//   unknown ──────────┐
//   compatible ───────┤
//   degraded ─────────┼──────────────────────────►  testing
//   incompatible ─────┘ (only with force_load)         │
//                                                       ├─ RetryAttempt (auto_fix) ───► testing (a new attempt)
//                                                       ├─ FinishSuccess ─────────────► compatible
//                                                       ├─ FinishFailure,  ┌ total_loads >= 3 ► degraded
//                                                       │  StartupCleanup ─┤
//                                                       │  (server died)   └ otherwise ──────► incompatible
//                                                       ├─ FinishCancelled (user stop) ─► status before
//                                                       └─ FinishEnvironmentFailure ────► status before
//   RevertVerdicts (system-wide failure, SPEC §11): a failed verdict -> status before
//
//   RecordServingCrash (a loaded model's engine died on its own, SPEC §10):
//   any status but testing ─► degraded (total_loads >= 3) | incompatible
//
//   SetStatusManually (PATCH/UI/CLI): unknown|compatible|incompatible|degraded
//   -> any of those four; never to testing, never while testing.
//
// NextStatus() is the one function that decides every edge above; every
// method below calls it, and it is unit-tested edge by edge.
//
// Public API in brief (namespace mw):
//   NextStatus(from, TransitionInput) -> Result<CompatStatus>
//   FailureNotes(total_loads, summary, matched_line, category) -> std::string
//   struct FailureInfo {outcome, exit_code, signal, category, pattern_id,
//                       summary, matched_line, log_excerpt}
//   class StateMachine(Registry&):
//     BeginAttempt(name, forced, hardware_fingerprint) -> Result<AttemptId>
//     FinishSuccess(id) / FinishFailure(id, FailureInfo) / FinishCancelled(id)
//     FinishEnvironmentFailure(id, FailureInfo)
//     FinishHealed(id, HealedConfig) / FinishFailure(id, FailureInfo, extra_note)
//         -> Result<ModelRecord>   (the model after the attempt)
//     RetryAttempt(id, FailureInfo, load_config) -> Result<AttemptId>
//     RevertVerdicts(attempt ids, note) -> Result<std::vector<ModelRecord>>
//     RecordServingCrash(name, FailureInfo) -> Result<ModelRecord>
//     StartupCleanup(std::ostream&) -> Result<CleanupReport>
//     SetStatusManually(name, status) -> Result<ModelRecord>
//     ApplyManualChange(name, status?, fields) -> Result<ModelRecord>
//
// Thread-safety: all methods are thread-safe; each runs in one registry
// transaction (read, check, write, commit), so concurrent calls serialise.
// Ownership: StateMachine borrows the Registry, which must outlive it.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "registry/registry.h"

namespace mw {

// A failure after this many successful loads is "degraded", not "incompatible".
inline constexpr int64_t kDegradedAfterLoads = 3;

enum class CompatEvent {
  kBeginAttempt,    // a load attempt starts
  kLoadSucceeded,   // the worker reported the model loaded
  kLoadFailed,      // crashed, exited, reported an error or timed out
  kLoadCancelled,   // the user stopped the load; no verdict on the model
  kStartupCleanup,  // the server died during the attempt (found at next start)
  kManualSet,       // PATCH / UI / CLI sets a status
  kServingCrashed,  // a loaded model's engine died on its own (SPEC §10)
  kRetry,           // auto_fix (SPEC §11): a failed attempt is followed at once by another
};

struct TransitionInput {
  CompatEvent event = CompatEvent::kBeginAttempt;
  bool forced = false;      // kBeginAttempt: force_load requested
  int64_t total_loads = 0;  // kLoadFailed, kStartupCleanup: successful loads so far
  CompatStatus status_before = CompatStatus::kUnknown;  // kLoadCancelled: status to restore
  CompatStatus manual_target = CompatStatus::kUnknown;  // kManualSet: requested status
};

// The status after `event` happens to a model in `from`.
//   kFailedPrecondition: the event is not allowed in `from` (e.g. an attempt
//     while testing, an unforced attempt on an incompatible model, a finish
//     when not testing, a manual change while testing);
//   kInvalidArgument: a manual change to testing, or cancel restoring testing.
Result<CompatStatus> NextStatus(CompatStatus from, const TransitionInput& input);

// compatibility_notes after a failure: one line
//   "The model file is bad: <summary>"          (category unsupported_model: the file's fault, SPEC §18)
//   "Hardware incompatibility detected: <summary>"                    (total_loads < 3)
//   "Intermittent issue detected (loaded successfully N times before): <summary>"
// followed, when `matched_line` is non-empty and differs from the summary,
// by a newline and the matched log line. Newlines inside either are folded
// into spaces so the notes stay exactly those (at most) two lines.
std::string FailureNotes(int64_t total_loads, std::string_view summary, std::string_view matched_line,
                         std::string_view category = {});
inline constexpr std::string_view kBadFileNotes = "The model file is bad: ";
// Notes that blame the model file, not the machine (see FailureNotes).
inline bool NotesBlameFile(std::string_view notes) { return notes.substr(0, kBadFileNotes.size()) == kBadFileNotes; }

// What the supervisor and the classifier know about a failed attempt.
struct FailureInfo {
  AttemptOutcome outcome = AttemptOutcome::kFailed;  // kFailed, kCrashed or kTimeout
  std::optional<int64_t> exit_code{};
  std::string signal{};        // "SIGSEGV", "SIGABRT", ...; empty if none
  std::string category{};      // classifier category, e.g. "gpu_context"
  std::string pattern_id{};    // catalog entry that matched
  std::string summary{};       // one line, e.g. "CreateContext failed (hipErrorNoDevice)"
  std::string matched_line{};  // the decisive log line
  std::string log_excerpt{};   // tail of the captured output
};

// A summary for notes when the classifier gave none: from the signal, the
// timeout or the exit code ("Worker killed by SIGSEGV", "Load timed out", ...).
std::string FallbackSummary(const FailureInfo& failure);

// auto_fix (SPEC §11): the load_config that made a retried attempt work.
struct HealedConfig {
  std::string load_config;  // saved as the model's load_config ...
  std::string replaces;     // ... if it still is this one (the user may have changed it meanwhile)
  std::string note;         // a line added to the notes: what changed and why
};

struct CleanupReport {
  // Models that were stuck in testing, with the status they now have.
  std::vector<std::pair<std::string, CompatStatus>> marked;
  // Open attempts closed with outcome server_crash (>= marked.size() when
  // the file also held open attempts of non-testing models).
  int64_t attempts_closed = 0;
};

// A node whose lease expired, and what closing its attempts did (SPEC §14).
struct ExpiredNodeReport {
  NodeRecord node;  // as it was before (lease_state held)
  CleanupReport cleanup;
};

class StateMachine {
 public:
  explicit StateMachine(Registry& registry) : registry_(registry) {}

  // Sets `name` to testing and records a new open attempt (forced flag,
  // status_before, a snapshot of load_config, hardware_fingerprint).
  // COMMIT POINT "testing mark": when this returns OK both are on disk, so a
  // crash of anything after it is found by StartupCleanup. Start the worker
  // only after this returns.
  //   kNotFound: no such model; kInvalidArgument: malformed name;
  //   kFailedPrecondition: the model is already testing, any other model is
  //     testing (attempts run one at a time; use LoadQueue), or it is
  //     incompatible and !forced (the message carries its notes).
  [[nodiscard]] Result<AttemptId> BeginAttempt(std::string_view name, bool forced,
                                               std::string_view hardware_fingerprint);

  // The load succeeded: compatible, total_loads += 1, last_loaded_at = now,
  // attempt outcome success. Notes are kept (they record past failures),
  // except after a forced attempt or one from incompatible or unknown (a
  // retest): the notes start afresh and the old ones become the attempt's
  // summary ("notes before this success: ...", SPEC §18).
  // COMMIT POINT "attempt outcome" (the same for the two Finish calls below).
  //   kNotFound: no such attempt; kFailedPrecondition: the attempt is
  //   already finished (a late result: ignore it).
  [[nodiscard]] Result<ModelRecord> FinishSuccess(AttemptId id);

  // The load failed: degraded if total_loads >= 3 else incompatible;
  // total_failures += 1, last_failed_at = now, notes = FailureNotes(...)
  // (summary = failure.summary or FallbackSummary); the attempt records the
  // outcome and every field of `failure`. Errors as FinishSuccess, plus
  // kInvalidArgument if failure.outcome is not failed/crashed/timeout.
  // `extra_note`, when non-empty, is one more line of the notes (auto_fix:
  // what the retry changed and that it failed too).
  [[nodiscard]] Result<ModelRecord> FinishFailure(AttemptId id, const FailureInfo& failure,
                                                  std::string_view extra_note = {});

  // auto_fix (SPEC §11), in one transaction: attempt `id` is closed with
  // `failure` (status_after testing, no verdict: nothing counted, the notes
  // unchanged) and a new open attempt of the same model begins with
  // `load_config` as its snapshot (forced, status_before and fingerprint
  // copied), the model staying testing. COMMIT POINT "retry": a crash
  // before the new attempt ends leaves the model testing with that open
  // attempt, so StartupCleanup counts ONE failure for the pair; the new
  // attempt ends with FinishHealed, FinishFailure (one verdict),
  // FinishCancelled or FinishEnvironmentFailure.
  //   Errors as FinishFailure.
  [[nodiscard]] Result<AttemptId> RetryAttempt(AttemptId id, const FailureInfo& failure,
                                               std::string_view load_config);

  // FinishSuccess of a retried attempt whose load_config worked: also saves
  // healed.load_config as the model's (unless the user changed the model's
  // load_config since: then it is kept and the note says so) and adds
  // healed.note to the notes.
  [[nodiscard]] Result<ModelRecord> FinishHealed(AttemptId id, const HealedConfig& healed);

  // The user stopped the load before it finished: the status before the
  // attempt is restored, nothing is counted, attempt outcome cancelled.
  [[nodiscard]] Result<ModelRecord> FinishCancelled(AttemptId id);

  // The environment failed, not the model (SPEC §11: category
  // device_unavailable, or any device-level failure while the environment is
  // failing): the status before the attempt is restored, nothing is counted,
  // the attempt records outcome environment_failure and every field of
  // `failure` (its outcome is ignored).
  [[nodiscard]] Result<ModelRecord> FinishEnvironmentFailure(AttemptId id, const FailureInfo& failure);

  // A system-wide failure was found (SPEC §11): each attempt's verdict, if
  // still in force (the model's status is the attempt's status_after and no
  // later attempt or manual change decided since), is reverted to its
  // status_before; the notes keep their line and gain `note`;
  // verdict_fingerprint is cleared; the failure is not counted; the attempt
  // becomes environment_failure. All in one transaction. Returns the
  // reverted models. Attempts of deleted models are skipped.
  [[nodiscard]] Result<std::vector<ModelRecord>> RevertVerdicts(const std::vector<AttemptId>& attempts,
                                                                std::string_view note);

  // A loaded model's engine died on its own (SPEC §10): in one transaction,
  // a closed attempt with outcome crashed_while_serving (status_before, the
  // classification of `failure`, its log excerpt) and the model moved as
  // after a failed load (rule 3: degraded with 3+ successful loads, else
  // incompatible; total_failures += 1, last_failed_at, notes).
  // With failure.outcome environment_failure (SPEC §11: the device, not the
  // model, failed) the attempt records that outcome and the model is left
  // as it was; with hung_while_serving (SPEC §19: stopped by the health
  // watch) the attempt records that outcome, the model moved as above; any
  // other failure.outcome is ignored. kNotFound if it was deleted;
  // kFailedPrecondition, nothing written, if a new attempt of it already
  // began (it is testing: that attempt's verdict is the newer one).
  [[nodiscard]] Result<ModelRecord> RecordServingCrash(std::string_view name, const FailureInfo& failure);

  // Run once at server start, before listening. Only this node's open
  // attempts count (and those of no node; SPEC §14): every model still in
  // testing in that attempt's class, or in testing in this node's class with
  // no open attempt of any node, is marked as after a failure (incompatible, or degraded with 3+ loads;
  // total_failures += 1, notes say the server died during the test) and its
  // open attempt is closed with outcome server_crash; open attempts of other
  // models are closed too. All in one transaction, then prints to `out`:
  //   ⚠️  Found N model(s) stuck in 'testing' status from previous crash
  //      - Marked 'NAME' as incompatible (crashed during test)     (one per model)
  //   ✅ Compatibility status cleanup completed
  // With nothing stuck only the last line is printed, so every start
  // confirms the check ran. Nothing is printed if the commit fails.
  // The transaction is WriteMode::kBulk: its WAL is not checkpointed by the
  // commit; call Registry::Checkpoint() afterwards (serve does it once it
  // is listening), or the next commit pays for it.
  [[nodiscard]] Result<CleanupReport> StartupCleanup(std::ostream& out);

  // Run by every live node of a fleet at each heartbeat (SPEC §14): the
  // nodes whose lease expired (held, silent for longer than their lease_s
  // on the database's clock) lose it, and their open attempts are settled
  // exactly as StartupCleanup settles a node's own, in one transaction (of
  // two nodes that look at once, one does it). For each such node prints
  //   ⚠️  Node 'ID' (HOST) lost its lease: silent for N s (lease L s); closing its open load attempts
  // followed by StartupCleanup's lines. Nothing is written or printed when
  // no lease expired. Only this node's class is read for models in testing
  // that no attempt explains: those are left to their own class's nodes.
  [[nodiscard]] Result<std::vector<ExpiredNodeReport>> CloseAttemptsOfExpiredNodes(std::ostream& out);

  // A manual status change. kInvalidArgument for testing; kFailedPrecondition
  // while the model is testing; kNotFound. Counters and notes are unchanged.
  [[nodiscard]] Result<ModelRecord> SetStatusManually(std::string_view name, CompatStatus status);

  // A user's edit (PATCH): an optional manual status change (the rules of
  // SetStatusManually) and other fields (`fields.compatibility_status` is
  // ignored), all in one transaction, so a crash never leaves half of it.
  [[nodiscard]] Result<ModelRecord> ApplyManualChange(std::string_view name, std::optional<CompatStatus> status,
                                                      ModelUpdate fields);

 private:
  // Shared by the Finish calls: loads the open attempt and its model, moves
  // the model by `event` via NextStatus, lets `edit` fill in counters and
  // attempt fields, writes both and commits.
  template <typename Edit>
  Result<ModelRecord> Finish(AttemptId id, CompatEvent event, Edit edit);

  Registry& registry_;
};

}  // namespace mw
