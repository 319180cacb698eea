// Internal to registry/: the SQLite SQL of each row operation, behind
// SqliteBackend (sqlite_backend.cpp). Precondition of every function: the
// backend's mutex is held.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "registry/backend.h"
#include "registry/registry.h"
#include "registry/sqlite/sqlite_util.h"

namespace mw::registry_internal {

// Uses SQLite's json_valid/json_type: kInvalidArgument unless a JSON object.
Status ValidateLoadConfig(Db& db, std::string_view json_text);

Result<ModelRecord> SelectModel(Db& db, std::string_view name);
Result<std::vector<ModelRecord>> SelectModels(Db& db, std::optional<CompatStatus> status);
Result<int64_t> CountModels(Db& db, CompatStatus status);
Result<StatusCounts> CountAllStatuses(Db& db);
Status InsertModel(Db& db, const ModelRecord& model);
Status UpdateModelRow(Db& db, std::string_view name, const ModelUpdate& update);
Status WriteModelStateRow(Db& db, const ModelRecord& model);
Status DeleteModelRow(Db& db, std::string_view name);

Result<AttemptRecord> SelectAttempt(Db& db, AttemptId id);
// Newest first; limit <= 0 means all.
Result<std::vector<AttemptRecord>> SelectAttemptsOfModel(Db& db, std::string_view name, int limit);
// Open attempts, oldest first; of one model when `name` is set.
Result<std::vector<AttemptRecord>> SelectOpenAttempts(Db& db, std::optional<std::string_view> name);
Result<AttemptId> InsertAttemptRow(Db& db, const AttemptRecord& attempt, const AttemptOwner& owner);
Status CloseAttemptRow(Db& db, const AttemptRecord& attempt);
Status ReclassifyAttemptRow(Db& db, AttemptId id, AttemptOutcome outcome, CompatStatus status_after);
// Environment fingerprints (SPEC §11): INSERT OR IGNORE, and the lookup.
Status InsertEnvironmentRow(Db& db, std::string_view fingerprint, std::string_view components);
Result<std::optional<std::string>> SelectEnvironment(Db& db, std::string_view fingerprint);
// The environment state row (schema version 5).
Status WriteEnvironmentStateRow(Db& db, const EnvironmentStateRecord& state, bool streak_now);
Result<std::optional<EnvironmentStateRecord>> SelectEnvironmentState(Db& db);
Result<std::vector<AttemptRecord>> SelectRecentLoadOutcomes(Db& db, AttemptId after, int limit);
// Every row of a statement selecting kAttemptColumns.
Result<std::vector<AttemptRecord>> ReadAttempts(Stmt& s);

// The fleet (sqlite_nodes.cpp): one node per file, the same rows as on
// PostgreSQL, on this machine's clock.
Result<std::vector<AttemptRecord>> SelectOpenAttemptsOfNode(Db& db, std::string_view node_id, bool include_unowned);
Result<std::vector<ClassVerdictRecord>> SelectVerdicts(Db& db, std::string_view name,
                                                       const Backend::NodeScope& scope);
Result<NodeRecord> JoinNodeRow(Db& db, const NodeRecord& self);
Result<int64_t> HeartbeatNodeRow(Db& db, const Backend::NodeScope& scope, const std::string& loaded_models);
Status LeaveNodeRow(Db& db, const Backend::NodeScope& scope);
Result<std::vector<NodeRecord>> SelectNodes(Db& db, const Backend::NodeScope& scope, bool only_expired);
Result<bool> MarkNodeExpiredRow(Db& db, const Backend::NodeScope& scope, std::string_view node_id);
Status CheckLease(Db& db, const Backend::NodeScope& scope);

}  // namespace mw::registry_internal
