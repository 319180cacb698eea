// Registry: each public method takes the connection's mutex and, for writes,
// runs in its own transaction (see registry_rows.cpp for the SQL).
#include "registry/registry.h"

#include "registry/registry_rows.h"

namespace mw {

using registry_internal::Db;

Registry::Registry(std::unique_ptr<Db> db) : db_(std::move(db)) {}
Registry::~Registry() = default;

const std::string& Registry::path() const { return db_->path(); }

Status Registry::CheckNotInTransaction() const {
  if (db_->tx_owner.load() != std::this_thread::get_id()) return Status::Ok();
  return InternalError("registry called on a thread that holds an open Transaction (would deadlock)");
}

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

Result<Transaction> Registry::BeginWrite(WriteMode mode) {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::unique_lock<std::mutex> lock(db_->mutex());
  std::optional<Transaction::Saved> saved;
  if (mode == WriteMode::kBulk) {
    Transaction::Saved s;
    ASSIGN_OR_RETURN(s.cache_size, PragmaInt(*db_, "PRAGMA cache_size"));
    ASSIGN_OR_RETURN(s.wal_autocheckpoint, PragmaInt(*db_, "PRAGMA wal_autocheckpoint"));
    const std::string sql =
        "PRAGMA cache_size = -" + std::to_string(kBulkCacheKiB) + "; PRAGMA wal_autocheckpoint = 0";
    RETURN_IF_ERROR(db_->Exec(sql.c_str(), "preparing a bulk transaction"));
    saved = s;
  }
  Status st = db_->Exec("BEGIN IMMEDIATE", "starting a registry transaction");
  if (!st.ok()) {
    if (saved) Transaction::Restore(*db_, *saved);
    return st;
  }
  // From here the Transaction restores the settings, whether it commits or not.
  return Transaction(db_.get(), std::move(lock), saved);
}

Result<int64_t> Registry::Checkpoint() {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  int wal_frames = 0;
  int copied = 0;
  const int rc =
      sqlite3_wal_checkpoint_v2(db_->conn(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &wal_frames, &copied);
  if (rc != SQLITE_OK) return registry_internal::SqliteStatus(db_->conn(), rc, "checkpointing the WAL");
  return int64_t{copied};
}

// Runs `body` inside a write transaction and commits it if body succeeded.
// BeginWrite() refuses a thread that already holds a Transaction.
template <typename Body>
static auto InWrite(Registry& reg, Body body) -> decltype(body(std::declval<Transaction&>())) {
  ASSIGN_OR_RETURN(Transaction tx, reg.BeginWrite());
  auto result = body(tx);
  if (!result.ok()) return result;
  RETURN_IF_ERROR(tx.Commit());
  return result;
}

Result<ModelRecord> Registry::AddModel(const ModelRecord& model) {
  return InWrite(*this, [&](Transaction&) -> Result<ModelRecord> {
    RETURN_IF_ERROR(registry_internal::InsertModel(*db_, model));
    return registry_internal::SelectModel(*db_, model.model_name);
  });
}

Result<ModelRecord> Registry::GetModel(std::string_view name) {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return registry_internal::SelectModel(*db_, name);
}

Result<std::vector<ModelRecord>> Registry::ListModels() {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return registry_internal::SelectModels(*db_, std::nullopt);
}

Result<ModelRecord> Registry::UpdateModel(std::string_view name, const ModelUpdate& update) {
  return InWrite(*this, [&](Transaction&) -> Result<ModelRecord> {
    RETURN_IF_ERROR(registry_internal::UpdateModelRow(*db_, name, update));
    return registry_internal::SelectModel(*db_, name);
  });
}

Status Registry::DeleteModel(std::string_view name) {
  ASSIGN_OR_RETURN(Transaction tx, BeginWrite());
  RETURN_IF_ERROR(registry_internal::DeleteModelRow(*db_, name));
  return tx.Commit();
}

Result<std::vector<AttemptRecord>> Registry::ListAttempts(std::string_view name, int limit) {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return registry_internal::SelectAttemptsOfModel(*db_, name, limit);
}

Result<AttemptRecord> Registry::GetAttempt(AttemptId id) {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return registry_internal::SelectAttempt(*db_, id);
}

Result<StatusCounts> Registry::CountByStatus() {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return registry_internal::CountAllStatuses(*db_);
}

Result<std::optional<std::string>> Registry::GetEnvironment(std::string_view fingerprint) {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return registry_internal::SelectEnvironment(*db_, fingerprint);
}

Result<std::optional<EnvironmentStateRecord>> Registry::GetEnvironmentState() {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return registry_internal::SelectEnvironmentState(*db_);
}

Result<std::vector<AttemptRecord>> Registry::ListRecentLoadOutcomes(AttemptId after, int limit) {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return registry_internal::SelectRecentLoadOutcomes(*db_, after, limit);
}

Status Registry::CheckIntegrity() {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
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

}  // namespace mw
