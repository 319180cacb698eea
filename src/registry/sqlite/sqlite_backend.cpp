// SqliteBackend: the registry in one SQLite file (WAL, synchronous=FULL).
// Rows are the SQL of sqlite/sqlite_rows.cpp; this adds the transaction and the
// WriteMode::kBulk cache settings around them. Opened by OpenSqlite
// (sqlite/sqlite_open.cpp).
#include "registry/sqlite/sqlite_backend.h"

#include "common/log.h"
#include "registry/sqlite/sqlite_rows.h"

namespace mw::registry_internal {
namespace {

// 64 MiB (negative cache_size = KiB): room for every page a cleanup of
// thousands of models dirties, so none is spilled to the WAL before COMMIT.
constexpr int64_t kBulkCacheKiB = 64 * 1024;

Result<int64_t> PragmaInt(Db& db, const char* sql) {
  ASSIGN_OR_RETURN(auto stmt, db.Prepare(sql));
  ASSIGN_OR_RETURN(const bool row, stmt.Step());
  if (!row) return InternalError(std::string(sql) + ": no result");
  return stmt.Int(0);
}

}  // namespace

SqliteBackend::SqliteBackend(std::unique_ptr<Db> db) : db_(std::move(db)) {}
SqliteBackend::~SqliteBackend() = default;

const std::string& SqliteBackend::path() const { return db_->path(); }

Status SqliteBackend::Begin(WriteMode mode) {
  if (mode == WriteMode::kBulk) {
    Saved s;
    ASSIGN_OR_RETURN(s.cache_size, PragmaInt(*db_, "PRAGMA cache_size"));
    ASSIGN_OR_RETURN(s.wal_autocheckpoint, PragmaInt(*db_, "PRAGMA wal_autocheckpoint"));
    const std::string sql =
        "PRAGMA cache_size = -" + std::to_string(kBulkCacheKiB) + "; PRAGMA wal_autocheckpoint = 0";
    RETURN_IF_ERROR(db_->Exec(sql.c_str(), "preparing a bulk transaction"));
    saved_ = s;
  }
  Status st = db_->Exec("BEGIN IMMEDIATE", "starting a registry transaction");
  if (!st.ok()) RestoreSettings();
  return st;
}

Status SqliteBackend::Commit() {
  // COMMIT POINT: with synchronous=FULL in WAL mode, COMMIT returns only
  // after the WAL is fsynced.
  RETURN_IF_ERROR(db_->Exec("COMMIT", "committing a registry transaction"));
  RestoreSettings();
  return Status::Ok();
}

void SqliteBackend::Rollback() {
  // ROLLBACK cannot fail in a way we could act on here; SQLite rolls back
  // by itself if the connection closes.
  const int rc = sqlite3_exec(db_->conn(), "ROLLBACK", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    MW_LOG(kWarn, "registry") << "rollback failed: " << sqlite3_errmsg(db_->conn());
  }
  RestoreSettings();
}

void SqliteBackend::RestoreSettings() {
  if (!saved_) return;
  // Settings of this connection only; they cannot fail on a valid handle.
  // A smaller cache_size also releases the pages above it.
  const std::string sql = "PRAGMA cache_size = " + std::to_string(saved_->cache_size) +
                          "; PRAGMA wal_autocheckpoint = " + std::to_string(saved_->wal_autocheckpoint);
  Status st = db_->Exec(sql.c_str(), "restoring the cache size and WAL autocheckpoint");
  if (!st.ok()) MW_LOG(kWarn, "registry") << st.ToString();
  saved_.reset();
}

Result<ModelRecord> SqliteBackend::SelectModel(std::string_view name) {
  return registry_internal::SelectModel(*db_, name);
}
Result<std::vector<ModelRecord>> SqliteBackend::SelectModels(std::optional<CompatStatus> status) {
  return registry_internal::SelectModels(*db_, status);
}
Result<int64_t> SqliteBackend::CountModels(CompatStatus status) { return registry_internal::CountModels(*db_, status); }
Result<StatusCounts> SqliteBackend::CountAllStatuses() { return registry_internal::CountAllStatuses(*db_); }
Status SqliteBackend::InsertModel(const ModelRecord& model) { return registry_internal::InsertModel(*db_, model); }
Status SqliteBackend::UpdateModelRow(std::string_view name, const ModelUpdate& update) {
  return registry_internal::UpdateModelRow(*db_, name, update);
}
Status SqliteBackend::WriteModelStateRow(const ModelRecord& model) {
  return registry_internal::WriteModelStateRow(*db_, model);
}
Status SqliteBackend::DeleteModelRow(std::string_view name) { return registry_internal::DeleteModelRow(*db_, name); }
Result<AttemptRecord> SqliteBackend::SelectAttempt(AttemptId id) { return registry_internal::SelectAttempt(*db_, id); }
Result<std::vector<AttemptRecord>> SqliteBackend::SelectAttemptsOfModel(std::string_view name, int limit) {
  return registry_internal::SelectAttemptsOfModel(*db_, name, limit);
}
Result<std::vector<AttemptRecord>> SqliteBackend::SelectOpenAttempts(std::optional<std::string_view> name) {
  return registry_internal::SelectOpenAttempts(*db_, name);
}
Result<AttemptId> SqliteBackend::InsertAttemptRow(const AttemptRecord& attempt) {
  return registry_internal::InsertAttemptRow(*db_, attempt, OwnerOf(attempt, scope));
}
Status SqliteBackend::CloseAttemptRow(const AttemptRecord& attempt) {
  return registry_internal::CloseAttemptRow(*db_, attempt);
}
Status SqliteBackend::ReclassifyAttemptRow(AttemptId id, AttemptOutcome outcome, CompatStatus status_after) {
  return registry_internal::ReclassifyAttemptRow(*db_, id, outcome, status_after);
}
Status SqliteBackend::InsertEnvironmentRow(std::string_view fingerprint, std::string_view components) {
  return registry_internal::InsertEnvironmentRow(*db_, fingerprint, components);
}
Result<std::optional<std::string>> SqliteBackend::SelectEnvironment(std::string_view fingerprint) {
  return registry_internal::SelectEnvironment(*db_, fingerprint);
}
Status SqliteBackend::WriteEnvironmentStateRow(const EnvironmentStateRecord& state, bool streak_now) {
  return registry_internal::WriteEnvironmentStateRow(*db_, state, streak_now);
}
Result<std::optional<EnvironmentStateRecord>> SqliteBackend::SelectEnvironmentState() {
  return registry_internal::SelectEnvironmentState(*db_);
}
Result<std::vector<AttemptRecord>> SqliteBackend::SelectRecentLoadOutcomes(AttemptId after, int limit) {
  return registry_internal::SelectRecentLoadOutcomes(*db_, after, limit);
}

Result<std::map<std::string, std::string>> SqliteBackend::SelectLastFinishedByOutcome(AttemptOutcome outcome) {
  ASSIGN_OR_RETURN(Stmt s, db_->Prepare("SELECT model_name, MAX(finished_at) FROM load_attempts WHERE outcome = ?1 "
                                        "GROUP BY model_name"));
  s.Bind(1, ToString(outcome));
  std::map<std::string, std::string> out;
  for (;;) {
    ASSIGN_OR_RETURN(const bool row, s.Step());
    if (!row) return out;
    out[s.Text(0)] = s.Text(1);
  }
}

Result<std::vector<AttemptRecord>> SqliteBackend::SelectOpenAttemptsOfNode(std::string_view node_id,
                                                                           bool include_unowned) {
  return registry_internal::SelectOpenAttemptsOfNode(*db_, node_id, include_unowned);
}
// One verdict per model on SQLite, whatever the class.
Result<ModelRecord> SqliteBackend::SelectModelInClass(std::string_view name, std::string_view) {
  return registry_internal::SelectModel(*db_, name);
}
Result<std::vector<ModelRecord>> SqliteBackend::SelectModelsInClass(CompatStatus status, std::string_view) {
  return registry_internal::SelectModels(*db_, status);
}
Result<std::vector<ClassVerdictRecord>> SqliteBackend::SelectVerdicts(std::string_view name) {
  return registry_internal::SelectVerdicts(*db_, name, scope);
}
Result<NodeRecord> SqliteBackend::JoinNodeRow(const NodeRecord& self) {
  return registry_internal::JoinNodeRow(*db_, self);
}
Result<int64_t> SqliteBackend::HeartbeatNodeRow(const std::string& loaded_models) {
  return registry_internal::HeartbeatNodeRow(*db_, scope, loaded_models);
}
Status SqliteBackend::LeaveNodeRow() { return registry_internal::LeaveNodeRow(*db_, scope); }
Result<std::vector<NodeRecord>> SqliteBackend::SelectNodes(bool only_expired) {
  return registry_internal::SelectNodes(*db_, scope, only_expired);
}
Result<bool> SqliteBackend::MarkNodeExpiredRow(std::string_view node_id) {
  return registry_internal::MarkNodeExpiredRow(*db_, scope, node_id);
}
Status SqliteBackend::CheckLease() { return registry_internal::CheckLease(*db_, scope); }

Status SqliteBackend::CheckIntegrity() {
  ASSIGN_OR_RETURN(auto stmt, db_->Prepare("PRAGMA integrity_check"));
  std::string report;
  while (true) {
    ASSIGN_OR_RETURN(const bool row, stmt.Step());
    if (!row) break;
    if (!report.empty()) report += "; ";
    report += stmt.Text(0);
  }
  if (report == "ok") return Status::Ok();
  return DataLossError("registry database '" + db_->path() + "' failed its integrity check: " + report);
}

// Unpinned pages only: the registry's mutex is held, so no statement of this
// connection is running.
void SqliteBackend::ReleaseCachedPages() { (void)sqlite3_db_release_memory(db_->conn()); }

Result<int64_t> SqliteBackend::Checkpoint() {
  int wal_frames = 0;
  int copied = 0;
  const int rc =
      sqlite3_wal_checkpoint_v2(db_->conn(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &wal_frames, &copied);
  if (rc != SQLITE_OK) return SqliteStatus(db_->conn(), rc, "checkpointing the WAL");
  return int64_t{copied};
}

}  // namespace mw::registry_internal
