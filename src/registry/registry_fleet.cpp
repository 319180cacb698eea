// Registry: the fleet (SPEC §14): this server as a node with a lease, its
// environment class, and the verdicts of every class.
#include "registry/backend.h"
#include "registry/registry.h"

namespace mw {

Result<NodeRecord> Registry::JoinFleet(const NodeRecord& self) {
  if (self.node_id.empty()) return InvalidArgumentError("a node needs a node_id");
  if (self.lease_s <= 0) return InvalidArgumentError("lease_s must be at least 1 second");
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::unique_lock<std::mutex> lock(db_->mutex());
  // The join is a write of its own, without the lease check (it takes the lease).
  write_count_.fetch_add(1);
  RETURN_IF_ERROR(db_->Begin(WriteMode::kNormal));
  auto row = db_->JoinNodeRow(self);
  if (!row.ok()) {
    db_->Rollback();
    return row.status();
  }
  if (Status st = db_->Commit(); !st.ok()) {
    db_->Rollback();
    std::function<Status()> resolve = db_->TakeLostCommit();
    if (!resolve) return st;
    lock.unlock();  // as Transaction::Commit: the answer is waited for without the registry
    RETURN_IF_ERROR(resolve());
    lock.lock();
  }
  // A rejoin keeps the address set since the first join (SetAdvertiseUrl).
  std::string advertise_url = self.advertise_url.empty() ? db_->scope.advertise_url : self.advertise_url;
  db_->scope = {row->node_id, row->epoch, row->environment_class, std::move(advertise_url)};
  db_->SetScopeSnapshot(db_->scope);
  return row;
}

void Registry::SetAdvertiseUrl(std::string_view advertise_url) {
  std::lock_guard<std::mutex> lock(db_->mutex());
  db_->scope.advertise_url = std::string(advertise_url);
  db_->SetScopeSnapshot(db_->scope);
}

void Registry::SetEnvironmentClass(std::string_view environment_class) {
  std::lock_guard<std::mutex> lock(db_->mutex());
  db_->scope.environment_class = std::string(environment_class);
  db_->SetScopeSnapshot(db_->scope);
}

std::string Registry::EnvironmentClass() {
  std::lock_guard<std::mutex> lock(db_->mutex());
  return db_->scope.environment_class;
}

std::string Registry::NodeId() {
  std::lock_guard<std::mutex> lock(db_->mutex());
  return db_->scope.node_id;
}

Status Registry::Heartbeat(const std::vector<std::string>& loaded_models) {
  RETURN_IF_ERROR(CheckNotInTransaction());
  const std::string names = registry_internal::JoinNames(loaded_models);
  // Issue 26: on its own connection, never behind the registry's mutex
  // (a slow write, a lost COMMIT being resolved), where the backend can.
  const registry_internal::Backend::NodeScope node = db_->ScopeSnapshot();
  if (node.node_id.empty()) return FailedPreconditionError("this server has not joined the fleet");
  std::optional<Result<int64_t>> apart = db_->HeartbeatApart(node, names);
  if (!apart) {
    std::lock_guard<std::mutex> lock(db_->mutex());
    apart = db_->HeartbeatNodeRow(names);
  }
  ASSIGN_OR_RETURN(const int64_t renewed, std::move(*apart));
  if (renewed == 0) return FailedPreconditionError(registry_internal::LeaseLostMessage(node));
  return Status::Ok();
}

Status Registry::LeaveFleet() {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  if (db_->scope.node_id.empty()) return Status::Ok();
  return db_->LeaveNodeRow();
}

Result<std::optional<int64_t>> Registry::ModelChangeCount() {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return db_->SelectModelChangeCount();
}

Result<std::vector<NodeRecord>> Registry::ListNodes() {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  return db_->SelectNodes(/*only_expired=*/false);
}

namespace {

// This node's class (`own`) first, present even before it has tried the model.
std::vector<ClassVerdictRecord> OwnClassFirst(std::vector<ClassVerdictRecord> verdicts, const std::string& own) {
  std::vector<ClassVerdictRecord> ordered(1);
  ordered.front().environment_class = own;
  for (ClassVerdictRecord& v : verdicts) {
    if (v.environment_class == own) {
      ordered.front() = std::move(v);
    } else {
      ordered.push_back(std::move(v));
    }
  }
  return ordered;
}

}  // namespace

Result<std::vector<ClassVerdictRecord>> Registry::ListVerdicts(std::string_view name) {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  ASSIGN_OR_RETURN(std::vector<ClassVerdictRecord> verdicts, db_->SelectVerdicts(name));
  return OwnClassFirst(std::move(verdicts), db_->scope.environment_class);
}

std::unique_ptr<Registry::ChangeWatch> Registry::WatchChanges(
    std::function<void(const std::vector<std::string>&)> on_change) {
  return db_->WatchChanges(std::move(on_change));  // its own connection: no mutex
}

Result<ModelDetail> Registry::GetModelDetail(std::string_view name, int attempt_limit) {
  RETURN_IF_ERROR(CheckNotInTransaction());
  std::lock_guard<std::mutex> lock(db_->mutex());
  ASSIGN_OR_RETURN(ModelDetail detail, db_->SelectModelDetail(name, attempt_limit));
  detail.verdicts = OwnClassFirst(std::move(detail.verdicts), db_->scope.environment_class);
  return detail;
}

}  // namespace mw
