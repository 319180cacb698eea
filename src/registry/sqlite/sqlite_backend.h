// Internal to registry/: the SQLite implementation of Backend.
#pragma once

#include <memory>

#include "registry/backend.h"
#include "registry/sqlite/sqlite_util.h"

namespace mw::registry_internal {

class SqliteBackend final : public Backend {
 public:
  explicit SqliteBackend(std::unique_ptr<Db> db);
  ~SqliteBackend() override;

  const std::string& path() const override;
  bool verdicts_per_class() const override { return false; }
  Status Begin(WriteMode mode) override;
  Status Commit() override;
  void Rollback() override;

  Result<ModelRecord> SelectModel(std::string_view name) override;
  Result<std::vector<ModelRecord>> SelectModels(std::optional<CompatStatus> status) override;
  Result<int64_t> CountModels(CompatStatus status) override;
  Result<StatusCounts> CountAllStatuses() override;
  Status InsertModel(const ModelRecord& model) override;
  Status UpdateModelRow(std::string_view name, const ModelUpdate& update) override;
  Status WriteModelStateRow(const ModelRecord& model) override;
  Status DeleteModelRow(std::string_view name) override;
  Result<AttemptRecord> SelectAttempt(AttemptId id) override;
  Result<std::vector<AttemptRecord>> SelectAttemptsOfModel(std::string_view name, int limit) override;
  Result<std::vector<AttemptRecord>> SelectOpenAttempts(std::optional<std::string_view> name) override;
  Result<AttemptId> InsertAttemptRow(const AttemptRecord& attempt) override;
  Status CloseAttemptRow(const AttemptRecord& attempt) override;
  Status ReclassifyAttemptRow(AttemptId id, AttemptOutcome outcome, CompatStatus status_after) override;
  Status InsertEnvironmentRow(std::string_view fingerprint, std::string_view components) override;
  Result<std::optional<std::string>> SelectEnvironment(std::string_view fingerprint) override;
  Status WriteEnvironmentStateRow(const EnvironmentStateRecord& state, bool streak_now) override;
  Result<std::optional<EnvironmentStateRecord>> SelectEnvironmentState() override;
  Result<std::vector<AttemptRecord>> SelectRecentLoadOutcomes(AttemptId after, int limit) override;
  Result<std::map<std::string, std::string>> SelectLastFinishedByOutcome(AttemptOutcome outcome) override;
  Result<std::vector<AttemptRecord>> SelectOpenAttemptsOfNode(std::string_view node_id,
                                                              bool include_unowned) override;
  Result<ModelRecord> SelectModelInClass(std::string_view name, std::string_view environment_class) override;
  Result<std::vector<ModelRecord>> SelectModelsInClass(CompatStatus status,
                                                       std::string_view environment_class) override;
  Result<std::vector<ClassVerdictRecord>> SelectVerdicts(std::string_view name) override;
  Result<NodeRecord> JoinNodeRow(const NodeRecord& self) override;
  Result<int64_t> HeartbeatNodeRow(const std::string& loaded_models) override;
  Status LeaveNodeRow() override;
  Result<std::vector<NodeRecord>> SelectNodes(bool only_expired) override;
  Result<bool> MarkNodeExpiredRow(std::string_view node_id) override;
  Status CheckLease() override;
  Status CheckIntegrity() override;
  Result<int64_t> Checkpoint() override;
  void ReleaseCachedPages() override;

 private:
  // Settings a WriteMode::kBulk transaction restores when it ends.
  struct Saved {
    int64_t cache_size = 0;
    int64_t wal_autocheckpoint = 0;
  };
  void RestoreSettings();

  std::unique_ptr<Db> db_;
  std::optional<Saved> saved_;
};

}  // namespace mw::registry_internal
