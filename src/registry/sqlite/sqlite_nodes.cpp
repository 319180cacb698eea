// SQLite's fleet rows (SPEC §14). One server owns an SQLite file, so there
// is one node and one verdict per model; the rows are kept anyway so that
// GET /api/nodes, attempts' node_id and the lease check mean the same on
// both backends. The clock is this machine's.
#include <chrono>

#include "common/time_util.h"
#include "registry/sqlite/sqlite_rows.h"

namespace mw::registry_internal {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

NodeRecord ReadNode(const Stmt& s, int64_t now_ms) {
  NodeRecord n;
  n.node_id = s.Text(0);
  n.host = s.Text(1);
  n.environment_class = s.Text(2);
  n.lease_s = s.Int(3);
  n.epoch = s.Int(4);
  n.lease_state = s.Text(5);
  n.started_at = s.Text(6);
  n.heartbeat_at = s.Text(7);
  n.loaded_models = SplitLines(s.Text(8));
  n.expired_by = s.OptText(9);
  n.advertise_url = s.Text(10);
  n.heartbeat_age_ms = now_ms - s.Int(11);
  return n;
}

const std::string kSelectNode = std::string("SELECT ") + kNodeColumns + ", heartbeat_ms FROM nodes";

}  // namespace

Result<std::vector<AttemptRecord>> SelectOpenAttemptsOfNode(Db& db, std::string_view node_id, bool include_unowned) {
  static const std::string sql = std::string("SELECT ") + kAttemptColumns +
                                 " FROM load_attempts WHERE finished_at IS NULL AND (node_id = ?1 OR "
                                 "(?2 AND node_id IS NULL)) ORDER BY id";
  ASSIGN_OR_RETURN(Stmt s, db.Prepare(sql.c_str()));
  s.Bind(1, node_id);
  s.Bind(2, int64_t{include_unowned ? 1 : 0});
  return ReadAttempts(s);
}

Result<std::vector<ClassVerdictRecord>> SelectVerdicts(Db& db, std::string_view name,
                                                       const Backend::NodeScope& scope) {
  ASSIGN_OR_RETURN(const ModelRecord m, SelectModel(db, name));
  ClassVerdictRecord v;
  v.environment_class = scope.environment_class;
  v.status = m.compatibility_status;
  v.notes = m.compatibility_notes;
  v.total_loads = m.total_loads;
  v.total_failures = m.total_failures;
  ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT DISTINCT node_id FROM load_attempts WHERE model_name = ?1 AND "
                                      "node_id IS NOT NULL ORDER BY node_id"));
  s.Bind(1, name);
  for (;;) {
    ASSIGN_OR_RETURN(const bool row, s.Step());
    if (!row) break;
    v.nodes.push_back(s.Text(0));
  }
  return std::vector<ClassVerdictRecord>{std::move(v)};
}

Result<NodeRecord> JoinNodeRow(Db& db, const NodeRecord& self) {
  ASSIGN_OR_RETURN(
      Stmt s,
      db.Prepare("INSERT INTO nodes (node_id, host, environment_class, lease_s, epoch, lease_state, started_at, "
                 "heartbeat_at, heartbeat_ms, advertise_url) VALUES (?1, ?2, ?3, ?4, 1, 'held', ?5, ?5, ?6, ?7) ON "
                 "CONFLICT (node_id) "
                 "DO UPDATE SET host = excluded.host, environment_class = excluded.environment_class, lease_s = "
                 "excluded.lease_s, epoch = nodes.epoch + 1, lease_state = 'held', started_at = excluded.started_at, "
                 "heartbeat_at = excluded.heartbeat_at, heartbeat_ms = excluded.heartbeat_ms, loaded_models = '', "
                 "expired_by = NULL, advertise_url = excluded.advertise_url"));
  const int64_t now = NowMs();
  s.Bind(1, self.node_id);
  s.Bind(2, self.host);
  s.Bind(3, self.environment_class);
  s.Bind(4, self.lease_s);
  s.Bind(5, NowIso8601());
  s.Bind(6, now);
  s.Bind(7, self.advertise_url);
  RETURN_IF_ERROR(s.Run());
  ASSIGN_OR_RETURN(Stmt q, db.Prepare((kSelectNode + " WHERE node_id = ?1").c_str()));
  q.Bind(1, self.node_id);
  ASSIGN_OR_RETURN(const bool row, q.Step());
  if (!row) return InternalError("the node's row vanished after it was written");
  return ReadNode(q, now);
}

Result<int64_t> HeartbeatNodeRow(Db& db, const Backend::NodeScope& scope, const std::string& loaded_models) {
  ASSIGN_OR_RETURN(Stmt s, db.Prepare("UPDATE nodes SET heartbeat_ms = ?3, heartbeat_at = ?4, loaded_models = ?5, "
                                      "environment_class = ?6, advertise_url = ?7 WHERE node_id = ?1 AND "
                                      "epoch = ?2 AND lease_state = 'held'"));
  s.Bind(1, scope.node_id);
  s.Bind(2, scope.epoch);
  s.Bind(3, NowMs());
  s.Bind(4, NowIso8601());
  s.Bind(5, loaded_models);
  s.Bind(6, scope.environment_class);
  s.Bind(7, scope.advertise_url);
  RETURN_IF_ERROR(s.Run());
  return int64_t{sqlite3_changes(db.conn())};
}

Status LeaveNodeRow(Db& db, const Backend::NodeScope& scope) {
  ASSIGN_OR_RETURN(Stmt s, db.Prepare("UPDATE nodes SET lease_state = 'stopped', loaded_models = '' WHERE "
                                      "node_id = ?1 AND epoch = ?2 AND lease_state = 'held'"));
  s.Bind(1, scope.node_id);
  s.Bind(2, scope.epoch);
  return s.Run();
}

Result<std::vector<NodeRecord>> SelectNodes(Db& db, const Backend::NodeScope& scope, bool only_expired) {
  static const std::string all = kSelectNode + " ORDER BY node_id";
  static const std::string expired = kSelectNode +
                                     " WHERE lease_state = 'held' AND node_id <> ?1 AND heartbeat_ms + "
                                     "lease_s * 1000 < ?2 ORDER BY node_id";
  const int64_t now = NowMs();
  ASSIGN_OR_RETURN(Stmt s, db.Prepare(only_expired ? expired.c_str() : all.c_str()));
  if (only_expired) {
    s.Bind(1, scope.node_id);
    s.Bind(2, now);
  }
  std::vector<NodeRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(const bool row, s.Step());
    if (!row) break;
    out.push_back(ReadNode(s, now));
  }
  return out;
}

Result<bool> MarkNodeExpiredRow(Db& db, const Backend::NodeScope& scope, std::string_view node_id) {
  ASSIGN_OR_RETURN(Stmt s, db.Prepare("UPDATE nodes SET lease_state = 'expired', expired_by = ?2 WHERE "
                                      "node_id = ?1 AND lease_state = 'held' AND heartbeat_ms + lease_s * 1000 < ?3"));
  s.Bind(1, node_id);
  s.Bind(2, scope.node_id);
  s.Bind(3, NowMs());
  RETURN_IF_ERROR(s.Run());
  return sqlite3_changes(db.conn()) == 1;
}

Status CheckLease(Db& db, const Backend::NodeScope& scope) {
  if (scope.node_id.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT 1 FROM nodes WHERE node_id = ?1 AND epoch = ?2 AND "
                                      "lease_state = 'held'"));
  s.Bind(1, scope.node_id);
  s.Bind(2, scope.epoch);
  ASSIGN_OR_RETURN(const bool row, s.Step());
  if (!row) return FailedPreconditionError(LeaseLostMessage(scope));
  return Status::Ok();
}

}  // namespace mw::registry_internal
