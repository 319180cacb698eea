// Internal to registry/: the storage backend behind Registry and Transaction.
// Two implementations: SQLite (sqlite_backend.cpp, the default: one file in
// the data directory) and PostgreSQL (pg_backend.cpp, a database that several
// servers share). Registry and Transaction hold the backend's mutex for
// every call, so no implementation needs a lock of its own.
//
// Precondition of every method except the constructor/destructor: mutex()
// is held by the caller.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/text_lines.h"
#include "registry/registry.h"

namespace mw::registry_internal {

class Backend {
 public:
  virtual ~Backend() = default;

  // What messages and Registry::path() call the store: the SQLite file's
  // path, or the PostgreSQL URL without its password.
  virtual const std::string& path() const = 0;

  std::mutex& mutex() { return mu_; }
  // The thread that holds an open Transaction, so that a Registry method
  // called on that same thread fails instead of deadlocking on the mutex.
  std::atomic<std::thread::id> tx_owner{};

  // The node this registry acts as (SPEC §14), set by Registry::JoinFleet
  // and SetEnvironmentClass under mutex(). node_id empty: not joined (no
  // lease check; attempts get no node).
  struct NodeScope {
    std::string node_id;
    int64_t epoch = 0;
    std::string environment_class;
    std::string advertise_url = {};  // SPEC §21: written by every heartbeat
  };
  NodeScope scope;
  // A copy of `scope` that may be read without mutex() (the heartbeat's):
  // set it wherever `scope` is set.
  NodeScope ScopeSnapshot() {
    std::lock_guard lock(scope_mu_);
    return scope_snapshot_;
  }
  void SetScopeSnapshot(NodeScope s) {
    std::lock_guard lock(scope_mu_);
    scope_snapshot_ = std::move(s);
  }

  // Write transactions. Begin: every later row call runs inside it until
  // Commit or Rollback. Commit: COMMIT POINT, durable when OK; on error the
  // transaction is still open (the caller rolls back). Rollback never fails
  // visibly (a failure is logged; the store discards the transaction itself).
  [[nodiscard]] virtual Status Begin(WriteMode mode) = 0;
  [[nodiscard]] virtual Status Commit() = 0;
  virtual void Rollback() = 0;
  // After a Commit that failed because its answer was lost (the connection
  // broke during COMMIT): how to find out whether it was recorded, to run
  // WITHOUT mutex() (PostgreSQL waits up to its write wait for the database
  // to come back, and other calls go on meanwhile). Empty otherwise. Taking
  // it clears it.
  virtual std::function<Status()> TakeLostCommit() { return {}; }

  // PostgreSQL keeps a verdict per environment class; SQLite one per model.
  virtual bool verdicts_per_class() const = 0;

  // Rows (see the Registry/Transaction methods of the same meaning).
  virtual Result<ModelRecord> SelectModel(std::string_view name) = 0;
  virtual Result<std::vector<ModelRecord>> SelectModels(std::optional<CompatStatus> status) = 0;
  virtual Result<int64_t> CountModels(CompatStatus status) = 0;
  virtual Result<StatusCounts> CountAllStatuses() = 0;
  virtual Status InsertModel(const ModelRecord& model) = 0;
  virtual Status UpdateModelRow(std::string_view name, const ModelUpdate& update) = 0;
  virtual Status WriteModelStateRow(const ModelRecord& model) = 0;
  virtual Status DeleteModelRow(std::string_view name) = 0;

  virtual Result<AttemptRecord> SelectAttempt(AttemptId id) = 0;
  // Newest first; limit <= 0 means all.
  virtual Result<std::vector<AttemptRecord>> SelectAttemptsOfModel(std::string_view name, int limit) = 0;
  // Open attempts, oldest first; of one model when `name` is set.
  virtual Result<std::vector<AttemptRecord>> SelectOpenAttempts(std::optional<std::string_view> name) = 0;
  virtual Result<AttemptId> InsertAttemptRow(const AttemptRecord& attempt) = 0;
  virtual Status CloseAttemptRow(const AttemptRecord& attempt) = 0;
  // Row by row unless a backend does better (PostgreSQL).
  virtual Status WriteStatesAndCloseAttemptRows(const std::vector<ModelRecord>& models,
                                                const std::vector<AttemptRecord>& attempts) {
    for (const ModelRecord& m : models) RETURN_IF_ERROR(WriteModelStateRow(m));
    for (const AttemptRecord& a : attempts) RETURN_IF_ERROR(CloseAttemptRow(a));
    return Status::Ok();
  }
  virtual Status ReclassifyAttemptRow(AttemptId id, AttemptOutcome outcome, CompatStatus status_after) = 0;
  virtual Status InsertEnvironmentRow(std::string_view fingerprint, std::string_view components) = 0;
  virtual Result<std::optional<std::string>> SelectEnvironment(std::string_view fingerprint) = 0;
  // The environment state row (schema version 5) and the load outcomes a
  // failure streak is read back from (Registry::ListRecentLoadOutcomes).
  virtual Status WriteEnvironmentStateRow(const EnvironmentStateRecord& state, bool streak_now) = 0;
  virtual Result<std::optional<EnvironmentStateRecord>> SelectEnvironmentState() = 0;
  virtual Result<std::vector<AttemptRecord>> SelectRecentLoadOutcomes(AttemptId after, int limit) = 0;
  // Model name -> finished_at of its latest attempt with `outcome` (Registry::LastAttemptEnds).
  virtual Result<std::map<std::string, std::string>> SelectLastFinishedByOutcome(AttemptOutcome outcome) = 0;

  // Open attempts made by `node_id`; with include_unowned also those with
  // no node (made before schema 6 or without a joined node).
  virtual Result<std::vector<AttemptRecord>> SelectOpenAttemptsOfNode(std::string_view node_id,
                                                                      bool include_unowned) = 0;
  // The model with environment class `environment_class`'s verdict (SQLite: the model).
  virtual Result<ModelRecord> SelectModelInClass(std::string_view name, std::string_view environment_class) = 0;
  // Models in `status` in `environment_class`, by name (SQLite: SelectModels).
  virtual Result<std::vector<ModelRecord>> SelectModelsInClass(CompatStatus status,
                                                               std::string_view environment_class) = 0;
  virtual Result<std::vector<ClassVerdictRecord>> SelectVerdicts(std::string_view name) = 0;
  // SelectModel + SelectAttemptsOfModel + SelectVerdicts (verdicts in the
  // backend's order) unless a backend does better (PostgreSQL: one round trip).
  virtual Result<ModelDetail> SelectModelDetail(std::string_view name, int attempt_limit) {
    ModelDetail d;
    ASSIGN_OR_RETURN(d.model, SelectModel(name));
    ASSIGN_OR_RETURN(d.attempts, SelectAttemptsOfModel(name, attempt_limit));
    ASSIGN_OR_RETURN(d.verdicts, SelectVerdicts(name));
    return d;
  }

  // The fleet (Registry::JoinFleet and the rest). Each runs in its own
  // transaction unless one is open (MarkNodeExpiredRow, SelectExpiredNodes).
  virtual Result<NodeRecord> JoinNodeRow(const NodeRecord& self) = 0;
  // Rows changed: 0 when scope's epoch no longer holds the lease.
  virtual Result<int64_t> HeartbeatNodeRow(const std::string& loaded_models) = 0;
  // The same for `node` on a connection of the heartbeat's own, called
  // WITHOUT mutex(), so a lease is renewed while a slow write holds the
  // registry (PostgreSQL). nullopt: not supported here (SQLite, one server):
  // call HeartbeatNodeRow under mutex().
  virtual std::optional<Result<int64_t>> HeartbeatApart(const NodeScope& node, const std::string& loaded_models) {
    (void)node;
    (void)loaded_models;
    return std::nullopt;
  }
  virtual Status LeaveNodeRow() = 0;
  virtual Result<std::vector<NodeRecord>> SelectNodes(bool only_expired) = 0;
  // true when it took the lease away (it was still held and expired).
  virtual Result<bool> MarkNodeExpiredRow(std::string_view node_id) = 0;
  // Inside Begin's transaction: OK when scope is not joined or its epoch
  // still holds the lease; else kFailedPrecondition "lost its lease".
  virtual Status CheckLease() = 0;

  // How many statements have changed models or verdicts (PostgreSQL: a
  // counter kept by triggers); nullopt where only this server writes (SQLite).
  virtual Result<std::optional<int64_t>> SelectModelChangeCount() { return std::optional<int64_t>(); }

  // Registry::WatchChanges (PostgreSQL); nullptr where only this server writes.
  virtual std::unique_ptr<Registry::ChangeWatch> WatchChanges(
      std::function<void(const std::vector<std::string>&)> on_change) {
    (void)on_change;
    return nullptr;
  }

  virtual Status CheckIntegrity() = 0;
  virtual Result<int64_t> Checkpoint() = 0;
  // Registry::ReleaseCachedPages; nothing where the backend caches no pages here.
  virtual void ReleaseCachedPages() {}

 private:
  std::mutex mu_;
  std::mutex scope_mu_;
  NodeScope scope_snapshot_;
};

// The columns every SELECT of a whole row names, in this order.
inline constexpr const char* kModelColumns =
    "model_name, hf_path, cache_location, file_path, engine, compatibility_status, compatibility_notes, "
    "load_config, total_loads, total_failures, created_at, updated_at, last_loaded_at, last_failed_at, "
    "verdict_fingerprint";
inline constexpr const char* kAttemptColumns =
    "id, model_name, started_at, finished_at, outcome, forced, status_before, status_after, load_config, "
    "exit_code, signal, category, pattern_id, summary, matched_line, log_excerpt, duration_ms, "
    "hardware_fingerprint, node_id, environment_class";

inline constexpr const char* kNodeColumns =
    "node_id, host, environment_class, lease_s, epoch, lease_state, started_at, heartbeat_at, loaded_models, "
    "expired_by, advertise_url";

// Who an inserted attempt belongs to: its own fields, else the joined node
// (none when not joined).
struct AttemptOwner {
  std::optional<std::string> node_id;
  std::optional<std::string> environment_class;
};
AttemptOwner OwnerOf(const AttemptRecord& attempt, const Backend::NodeScope& scope);

// The message of a write refused because this node lost its lease.
std::string LeaseLostMessage(const Backend::NodeScope& scope);
// Newline-separated names (read back with SplitLines, common/text_lines.h).
std::string JoinNames(const std::vector<std::string>& names);

// Checks shared by both backends before they write (pure; no SQL).
// kInvalidArgument with a message naming the rule.
Status ValidateModelName(std::string_view name);
Status ValidateEngine(std::string_view engine);
// The checks of a new model other than its load_config: name, engine, status
// (never testing), cache_location.
Status ValidateNewModel(const ModelRecord& model);
// The checks of an update other than its load_config.
Status ValidateUpdate(const ModelUpdate& update);
// kFailedPrecondition when `current` is testing and `change` (e.g. "change
// its status", "delete it") must wait for the attempt to end.
Status CheckNotTesting(const ModelRecord& current, std::string_view change);
Status CloseNeedsOutcome(const AttemptRecord& attempt);
// 'name', truncated for messages.
std::string Quoted(std::string_view name);
// Empty text means "no value" for the nullable descriptive columns.
std::optional<std::string> NullIfEmpty(const std::optional<std::string>& v);

// Opens the SQLite backend at a file path (sqlite/sqlite_open.cpp) or the
// PostgreSQL backend at a postgresql:// URL (pg_backend.cpp); each runs the
// pending migrations. Errors as Registry::Open documents.
Result<std::unique_ptr<Backend>> OpenSqlite(const std::string& path, const OpenOptions& options);
Result<std::unique_ptr<Backend>> OpenPostgres(const std::string& url, const OpenOptions& options);

}  // namespace mw::registry_internal
