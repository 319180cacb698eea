#include "registry/backend.h"
#include "registry/registry.h"

namespace mw {

using registry_internal::Backend;

Transaction::Transaction(Backend* db, std::unique_lock<std::mutex> lock) : db_(db), lock_(std::move(lock)) {
  db_->tx_owner.store(std::this_thread::get_id());
}

Transaction::Transaction(Transaction&& other) noexcept
    : db_(other.db_), lock_(std::move(other.lock_)), active_(std::exchange(other.active_, false)) {}

Transaction::~Transaction() {
  if (!active_) return;
  // Not committed: undo everything.
  db_->Rollback();
  db_->tx_owner.store(std::thread::id());
}

Status Transaction::CheckActive() const {
  if (active_) return Status::Ok();
  return FailedPreconditionError("transaction already committed or rolled back");
}

Result<ModelRecord> Transaction::GetModel(std::string_view name) {
  RETURN_IF_ERROR(CheckActive());
  return db_->SelectModel(name);
}

Result<std::vector<ModelRecord>> Transaction::ListModelsWithStatus(CompatStatus status) {
  RETURN_IF_ERROR(CheckActive());
  return db_->SelectModels(status);
}

Result<std::vector<ModelRecord>> Transaction::ListModelsWithStatusInClass(CompatStatus status,
                                                                         std::string_view environment_class) {
  RETURN_IF_ERROR(CheckActive());
  return db_->SelectModelsInClass(status, environment_class);
}

Result<int64_t> Transaction::CountModelsWithStatus(CompatStatus status) {
  RETURN_IF_ERROR(CheckActive());
  return db_->CountModels(status);
}

Result<AttemptRecord> Transaction::GetAttempt(AttemptId id) {
  RETURN_IF_ERROR(CheckActive());
  return db_->SelectAttempt(id);
}

Result<std::optional<AttemptRecord>> Transaction::GetOpenAttempt(std::string_view name) {
  RETURN_IF_ERROR(CheckActive());
  ASSIGN_OR_RETURN(auto open, db_->SelectOpenAttempts(name));
  if (open.empty()) return std::optional<AttemptRecord>();
  return std::optional<AttemptRecord>(std::move(open.front()));
}

Result<std::vector<AttemptRecord>> Transaction::ListOpenAttempts() {
  RETURN_IF_ERROR(CheckActive());
  return db_->SelectOpenAttempts(std::nullopt);
}

Status Transaction::WriteStatesAndCloseAttempts(const std::vector<ModelRecord>& models,
                                                const std::vector<AttemptRecord>& attempts) {
  RETURN_IF_ERROR(CheckActive());
  return db_->WriteStatesAndCloseAttemptRows(models, attempts);
}

bool Transaction::Shared() const { return db_->verdicts_per_class(); }
std::string Transaction::NodeId() const { return db_->scope.node_id; }
std::string Transaction::EnvironmentClass() const { return db_->scope.environment_class; }
std::string Transaction::ClassOf(const AttemptRecord& attempt) const {
  if (!db_->verdicts_per_class()) return db_->scope.environment_class;
  return attempt.environment_class.value_or(db_->scope.environment_class);
}

Result<std::vector<AttemptRecord>> Transaction::ListOwnOpenAttempts() {
  RETURN_IF_ERROR(CheckActive());
  return db_->SelectOpenAttemptsOfNode(db_->scope.node_id, /*include_unowned=*/true);
}

Result<std::vector<AttemptRecord>> Transaction::ListOpenAttemptsOfNode(std::string_view node_id) {
  RETURN_IF_ERROR(CheckActive());
  return db_->SelectOpenAttemptsOfNode(node_id, /*include_unowned=*/false);
}

Result<ModelRecord> Transaction::GetModelOfAttempt(const AttemptRecord& attempt) {
  RETURN_IF_ERROR(CheckActive());
  return db_->SelectModelInClass(attempt.model_name, ClassOf(attempt));
}

Result<std::vector<NodeRecord>> Transaction::ListExpiredNodes() {
  RETURN_IF_ERROR(CheckActive());
  return db_->SelectNodes(/*only_expired=*/true);
}

Result<bool> Transaction::MarkNodeExpired(std::string_view node_id) {
  RETURN_IF_ERROR(CheckActive());
  return db_->MarkNodeExpiredRow(node_id);
}

Status Transaction::WriteModelState(const ModelRecord& model) {
  RETURN_IF_ERROR(CheckActive());
  return db_->WriteModelStateRow(model);
}

Status Transaction::UpdateModel(std::string_view name, const ModelUpdate& update) {
  RETURN_IF_ERROR(CheckActive());
  return db_->UpdateModelRow(name, update);
}

Status Transaction::ReclassifyAttempt(AttemptId id, AttemptOutcome outcome, CompatStatus status_after) {
  RETURN_IF_ERROR(CheckActive());
  return db_->ReclassifyAttemptRow(id, outcome, status_after);
}

Status Transaction::RecordEnvironment(std::string_view fingerprint, std::string_view components) {
  RETURN_IF_ERROR(CheckActive());
  return db_->InsertEnvironmentRow(fingerprint, components);
}

Status Transaction::WriteEnvironmentState(const EnvironmentStateRecord& state, bool streak_now) {
  RETURN_IF_ERROR(CheckActive());
  return db_->WriteEnvironmentStateRow(state, streak_now);
}

Result<AttemptId> Transaction::InsertAttempt(const AttemptRecord& attempt) {
  RETURN_IF_ERROR(CheckActive());
  return db_->InsertAttemptRow(attempt);
}

Status Transaction::CloseAttempt(const AttemptRecord& attempt) {
  RETURN_IF_ERROR(CheckActive());
  return db_->CloseAttemptRow(attempt);
}

Status Transaction::Commit() {
  RETURN_IF_ERROR(CheckActive());
  // COMMIT POINT: durable when it returns OK (see Backend::Commit).
  if (Status st = db_->Commit(); !st.ok()) {
    std::function<Status()> resolve = db_->TakeLostCommit();
    if (!resolve) return st;  // still active: the destructor rolls back
    // The answer to COMMIT was lost: find out without holding the registry
    // (the transaction is gone either way; other calls go on meanwhile).
    active_ = false;
    db_->tx_owner.store(std::thread::id());
    lock_.unlock();
    return resolve();
  }
  active_ = false;
  db_->tx_owner.store(std::thread::id());
  lock_.unlock();
  return Status::Ok();
}

}  // namespace mw
