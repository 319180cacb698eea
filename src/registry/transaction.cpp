#include "common/log.h"
#include "registry/registry.h"
#include "registry/registry_rows.h"

namespace mw {

using registry_internal::Db;

Transaction::Transaction(Db* db, std::unique_lock<std::mutex> lock, std::optional<Saved> saved)
    : db_(db), lock_(std::move(lock)), saved_(saved) {
  db_->tx_owner.store(std::this_thread::get_id());
}

Transaction::Transaction(Transaction&& other) noexcept
    : db_(other.db_),
      lock_(std::move(other.lock_)),
      active_(std::exchange(other.active_, false)),
      saved_(std::exchange(other.saved_, std::nullopt)) {}

Transaction::~Transaction() {
  if (!active_) return;
  // Not committed: undo everything. ROLLBACK cannot fail in a way we could
  // act on here; SQLite rolls back by itself if the connection closes.
  const int rc = sqlite3_exec(db_->conn(), "ROLLBACK", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    MW_LOG(kWarn, "registry") << "rollback failed: " << sqlite3_errmsg(db_->conn());
  }
  RestoreSettings();
  db_->tx_owner.store(std::thread::id());
}

void Transaction::Restore(Db& db, const Saved& saved) {
  // Settings of this connection only; they cannot fail on a valid handle.
  // A smaller cache_size also releases the pages above it.
  const std::string sql = "PRAGMA cache_size = " + std::to_string(saved.cache_size) +
                          "; PRAGMA wal_autocheckpoint = " + std::to_string(saved.wal_autocheckpoint);
  Status st = db.Exec(sql.c_str(), "restoring the cache size and WAL autocheckpoint");
  if (!st.ok()) MW_LOG(kWarn, "registry") << st.ToString();
}

void Transaction::RestoreSettings() {
  if (!saved_) return;
  Restore(*db_, *saved_);
  saved_.reset();
}

Status Transaction::CheckActive() const {
  if (active_) return Status::Ok();
  return FailedPreconditionError("transaction already committed or rolled back");
}

Result<ModelRecord> Transaction::GetModel(std::string_view name) {
  RETURN_IF_ERROR(CheckActive());
  return registry_internal::SelectModel(*db_, name);
}

Result<std::vector<ModelRecord>> Transaction::ListModelsWithStatus(CompatStatus status) {
  RETURN_IF_ERROR(CheckActive());
  return registry_internal::SelectModels(*db_, status);
}

Result<int64_t> Transaction::CountModelsWithStatus(CompatStatus status) {
  RETURN_IF_ERROR(CheckActive());
  return registry_internal::CountModels(*db_, status);
}

Result<AttemptRecord> Transaction::GetAttempt(AttemptId id) {
  RETURN_IF_ERROR(CheckActive());
  return registry_internal::SelectAttempt(*db_, id);
}

Result<std::optional<AttemptRecord>> Transaction::GetOpenAttempt(std::string_view name) {
  RETURN_IF_ERROR(CheckActive());
  ASSIGN_OR_RETURN(auto open, registry_internal::SelectOpenAttempts(*db_, name));
  if (open.empty()) return std::optional<AttemptRecord>();
  return std::optional<AttemptRecord>(std::move(open.front()));
}

Result<std::vector<AttemptRecord>> Transaction::ListOpenAttempts() {
  RETURN_IF_ERROR(CheckActive());
  return registry_internal::SelectOpenAttempts(*db_, std::nullopt);
}

Status Transaction::WriteModelState(const ModelRecord& model) {
  RETURN_IF_ERROR(CheckActive());
  return registry_internal::WriteModelStateRow(*db_, model);
}

Status Transaction::UpdateModel(std::string_view name, const ModelUpdate& update) {
  RETURN_IF_ERROR(CheckActive());
  return registry_internal::UpdateModelRow(*db_, name, update);
}

Status Transaction::ReclassifyAttempt(AttemptId id, AttemptOutcome outcome, CompatStatus status_after) {
  RETURN_IF_ERROR(CheckActive());
  return registry_internal::ReclassifyAttemptRow(*db_, id, outcome, status_after);
}

Status Transaction::RecordEnvironment(std::string_view fingerprint, std::string_view components) {
  RETURN_IF_ERROR(CheckActive());
  return registry_internal::InsertEnvironmentRow(*db_, fingerprint, components);
}

Status Transaction::WriteEnvironmentState(const EnvironmentStateRecord& state, bool streak_now) {
  RETURN_IF_ERROR(CheckActive());
  return registry_internal::WriteEnvironmentStateRow(*db_, state, streak_now);
}

Result<AttemptId> Transaction::InsertAttempt(const AttemptRecord& attempt) {
  RETURN_IF_ERROR(CheckActive());
  return registry_internal::InsertAttemptRow(*db_, attempt);
}

Status Transaction::CloseAttempt(const AttemptRecord& attempt) {
  RETURN_IF_ERROR(CheckActive());
  return registry_internal::CloseAttemptRow(*db_, attempt);
}

Status Transaction::Commit() {
  RETURN_IF_ERROR(CheckActive());
  // COMMIT POINT: with synchronous=FULL in WAL mode, COMMIT returns only
  // after the WAL is fsynced.
  Status st = db_->Exec("COMMIT", "committing a registry transaction");
  if (!st.ok()) {
    return st;  // still active: the destructor rolls back
  }
  active_ = false;
  RestoreSettings();
  db_->tx_owner.store(std::thread::id());
  lock_.unlock();
  return Status::Ok();
}

}  // namespace mw
