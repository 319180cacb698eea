// Registry: each public method takes the backend's mutex and, for writes,
// runs in its own transaction (the SQL is in the backend).
#include "registry/registry.h"

#include "registry/backend.h"

namespace mw {

using registry_internal::Backend;

namespace {

bool IsPostgresUrl(std::string_view s) {
  return s.starts_with("postgresql://") || s.starts_with("postgres://");
}

}  // namespace

Result<std::unique_ptr<Registry>> Registry::Open(const std::string& path, const OpenOptions& options) {
  std::unique_ptr<Backend> backend;
  if (IsPostgresUrl(path)) {
    ASSIGN_OR_RETURN(backend, registry_internal::OpenPostgres(path, options));
  } else {
    ASSIGN_OR_RETURN(backend, registry_internal::OpenSqlite(path, options));
  }
  return std::unique_ptr<Registry>(new Registry(std::move(backend)));
}

Registry::Registry(std::unique_ptr<Backend> db) : db_(std::move(db)) {}
Registry::~Registry() = default;

const std::string& Registry::path() const { return db_->path(); }
bool Registry::Shared() const { return db_->verdicts_per_class(); }

Status Registry::CheckNotInTransaction() const {
  if (db_->tx_owner.load() != std::this_thread::get_id()) return Status::Ok();
  return InternalError("registry called on a thread that holds an open Transaction (would deadlock)");
}

Result<Transaction> Registry::BeginWrite(WriteMode mode) {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::unique_lock<std::mutex> lock(db_->mutex());
  write_count_.fetch_add(1);  // before the write: a read that sees the old count may be out of date
  RETURN_IF_ERROR(db_->Begin(mode));
  // From here the Transaction commits or rolls back. A node that lost its
  // lease writes nothing (SPEC §14): another node settled its attempts.
  Transaction tx(db_.get(), std::move(lock));
  RETURN_IF_ERROR(db_->CheckLease());
  return tx;
}

void Registry::ReleaseCachedPages() {
  if (!CheckNotInTransaction().ok()) return;
  std::lock_guard<std::mutex> lock(db_->mutex());
  db_->ReleaseCachedPages();
}

Result<int64_t> Registry::Checkpoint() {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return db_->Checkpoint();
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
    RETURN_IF_ERROR(db_->InsertModel(model));
    return db_->SelectModel(model.model_name);
  });
}

Result<ModelRecord> Registry::GetModel(std::string_view name) {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return db_->SelectModel(name);
}

Result<std::vector<ModelRecord>> Registry::ListModels() {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return db_->SelectModels(std::nullopt);
}

Result<ModelRecord> Registry::UpdateModel(std::string_view name, const ModelUpdate& update) {
  return InWrite(*this, [&](Transaction&) -> Result<ModelRecord> {
    RETURN_IF_ERROR(db_->UpdateModelRow(name, update));
    return db_->SelectModel(name);
  });
}

Status Registry::DeleteModel(std::string_view name) {
  ASSIGN_OR_RETURN(Transaction tx, BeginWrite());
  RETURN_IF_ERROR(db_->DeleteModelRow(name));
  return tx.Commit();
}

Result<std::vector<AttemptRecord>> Registry::ListAttempts(std::string_view name, int limit) {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return db_->SelectAttemptsOfModel(name, limit);
}

Result<AttemptRecord> Registry::GetAttempt(AttemptId id) {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return db_->SelectAttempt(id);
}

Result<StatusCounts> Registry::CountByStatus() {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return db_->CountAllStatuses();
}

Result<std::optional<std::string>> Registry::GetEnvironment(std::string_view fingerprint) {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return db_->SelectEnvironment(fingerprint);
}

Result<std::optional<EnvironmentStateRecord>> Registry::GetEnvironmentState() {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return db_->SelectEnvironmentState();
}

Result<std::vector<AttemptRecord>> Registry::ListRecentLoadOutcomes(AttemptId after, int limit) {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return db_->SelectRecentLoadOutcomes(after, limit);
}

Result<std::map<std::string, std::string>> Registry::LastAttemptEnds(AttemptOutcome outcome) {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return db_->SelectLastFinishedByOutcome(outcome);
}

Status Registry::CheckIntegrity() {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return db_->CheckIntegrity();
}

}  // namespace mw
