// Internal to registry/: the SQLite implementation of Backend.
#pragma once

#include <memory>

#include "registry/backend.h"
#include "registry/sqlite_util.h"

namespace mw::registry_internal {

class SqliteBackend final : public Backend {
 public:
  explicit SqliteBackend(std::unique_ptr<Db> db);
  ~SqliteBackend() override;

  const std::string& path() const override;
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
  Status CheckIntegrity() override;
  Result<int64_t> Checkpoint() override;

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
