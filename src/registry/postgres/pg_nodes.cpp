// PgBackend's fleet rows (SPEC §14): node leases on the database's clock,
// the verdicts of every environment class, and the attempts of one node.
// A lease is taken away only by a conditional UPDATE (held and expired), so
// of two nodes that notice an expiry at once exactly one takes it, and a
// heartbeat racing with it either renews first (nothing is taken) or finds
// the lease gone (row locks serialise the two UPDATEs; READ COMMITTED
// re-checks the WHERE after the wait).
#include "common/time_util.h"
#include "registry/postgres/pg_backend.h"

namespace mw::registry_internal {
namespace {

using Tx = pqxx::transaction_base;

// Milliseconds since the epoch on the database server's clock.
constexpr const char* kNowMs = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

std::optional<std::string> OptText(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<std::string>();
}

NodeRecord ReadNode(const pqxx::row& r) {
  NodeRecord n;
  n.node_id = r[0].as<std::string>();
  n.host = r[1].as<std::string>();
  n.environment_class = r[2].as<std::string>();
  n.lease_s = r[3].as<int64_t>();
  n.epoch = r[4].as<int64_t>();
  n.lease_state = r[5].as<std::string>();
  n.started_at = r[6].as<std::string>();
  n.heartbeat_at = r[7].as<std::string>();
  n.loaded_models = SplitLines(r[8].as<std::string>());
  n.expired_by = OptText(r[9]);
  n.advertise_url = r[10].as<std::string>();
  n.heartbeat_age_ms = r[11].as<int64_t>();
  return n;
}

const std::string kSelectNode =
    std::string("SELECT ") + kNodeColumns + ", " + kNowMs + " - heartbeat_ms FROM nodes";

}  // namespace

Result<std::vector<AttemptRecord>> PgBackend::SelectOpenAttemptsOfNode(std::string_view node_id,
                                                                       bool include_unowned) {
  return Read("listing a node's open load attempts", [&](Tx& tx) -> Result<std::vector<AttemptRecord>> {
    const auto rows = tx.exec_params(std::string("SELECT ") + kAttemptColumns +
                                         " FROM load_attempts WHERE finished_at IS NULL AND "
                                         "(node_id = $1 OR ($2 AND node_id IS NULL)) ORDER BY id",
                                     std::string(node_id), include_unowned);
    return PgReadAttempts(rows);
  });
}

Result<ModelRecord> PgBackend::SelectModelInClass(std::string_view name, std::string_view environment_class) {
  return Read("reading a model", [&](Tx& tx) { return SelectModelIn(tx, name, environment_class); });
}

const char* const kSelectVerdicts =
    "SELECT v.environment_class, v.compatibility_status, v.compatibility_notes, v.total_loads, "
    "v.total_failures, (SELECT string_agg(DISTINCT a.node_id, E'\\n' ORDER BY a.node_id) FROM load_attempts a "
    "WHERE a.model_name = v.model_name AND a.environment_class = v.environment_class) "
    "FROM model_verdicts v WHERE v.model_name = $1 ORDER BY v.environment_class COLLATE \"C\"";

Result<std::vector<ClassVerdictRecord>> PgBackend::SelectVerdicts(std::string_view name) {
  return Read("reading a model's verdicts", [&](Tx& tx) -> Result<std::vector<ClassVerdictRecord>> {
    RETURN_IF_ERROR(SelectModelIn(tx, name).status());
    return PgReadVerdicts(tx.exec_params(kSelectVerdicts, std::string(name)));
  });
}

Result<std::vector<ClassVerdictRecord>> PgReadVerdicts(const pqxx::result& rows) {
  {
    std::vector<ClassVerdictRecord> out;
    for (const auto& r : rows) {
      ClassVerdictRecord v;
      v.environment_class = r[0].as<std::string>();
      const std::string status = r[1].as<std::string>();
      auto parsed = ParseCompatStatus(status);
      if (!parsed) return DataLossError("registry holds an unknown compatibility status '" + status + "'");
      v.status = *parsed;
      v.notes = OptText(r[2]);
      v.total_loads = r[3].as<int64_t>();
      v.total_failures = r[4].as<int64_t>();
      if (!r[5].is_null()) v.nodes = SplitLines(r[5].as<std::string>());
      out.push_back(std::move(v));
    }
    return out;
  }
}

Result<NodeRecord> PgBackend::JoinNodeRow(const NodeRecord& self) {
  return Write("joining the fleet", [&](Tx& tx) -> Result<NodeRecord> {
    const std::string now = NowIso8601();
    const auto r = tx.exec_params(
        std::string("INSERT INTO nodes (node_id, host, environment_class, lease_s, epoch, lease_state, started_at, "
                    "heartbeat_at, advertise_url, heartbeat_ms) VALUES ($1, $2, $3, $4, 1, 'held', $5, $5, $6, ") +
            kNowMs +
            ") ON CONFLICT (node_id) DO UPDATE SET host = EXCLUDED.host, environment_class = "
            "EXCLUDED.environment_class, lease_s = EXCLUDED.lease_s, epoch = nodes.epoch + 1, lease_state = 'held', "
            "started_at = EXCLUDED.started_at, heartbeat_at = EXCLUDED.heartbeat_at, heartbeat_ms = "
            "EXCLUDED.heartbeat_ms, loaded_models = '', expired_by = NULL, advertise_url = EXCLUDED.advertise_url "
            "RETURNING node_id",
        self.node_id, self.host, self.environment_class, self.lease_s, now, self.advertise_url);
    const auto row = tx.exec_params(kSelectNode + " WHERE node_id = $1", r[0][0].as<std::string>());
    return ReadNode(row[0]);
  });
}

namespace {
int64_t RenewLease(Tx& tx, const Backend::NodeScope& node, const std::string& loaded_models) {
  const auto r = tx.exec_params(std::string("UPDATE nodes SET heartbeat_ms = ") + kNowMs +
                                    ", heartbeat_at = $3, loaded_models = $4, environment_class = $5, advertise_url = $6 "
                                    "WHERE node_id = $1 AND epoch = $2 AND lease_state = 'held'",
                                node.node_id, node.epoch, NowIso8601(), loaded_models, node.environment_class,
                                node.advertise_url);
  return static_cast<int64_t>(r.affected_rows());
}
}  // namespace

Result<int64_t> PgBackend::HeartbeatNodeRow(const std::string& loaded_models) {
  return Read("renewing the node's lease",
              [&](Tx& tx) -> Result<int64_t> { return RenewLease(tx, scope, loaded_models); });
}

std::optional<Result<int64_t>> PgBackend::HeartbeatApart(const NodeScope& node, const std::string& loaded_models) {
  std::lock_guard lock(side_mu_);
  // One try on the connection kept, and one on a fresh one if that had broken.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool had_connection = side_conn_ != nullptr;
    bool cut = false;  // stalled: a second try would wait as long again
    try {
      if (!side_conn_ || !side_conn_->is_open()) side_conn_ = OpenConnection(nullptr);
      return Result<int64_t>(Guarded(*side_conn_, CallTimeout(), &cut, [&] {
        pqxx::nontransaction n(*side_conn_);
        return RenewLease(n, node, loaded_models);
      }));
    } catch (const pqxx::broken_connection& e) {
      side_conn_.reset();
      if (!had_connection || attempt > 0 || cut) {
        return Result<int64_t>(UnavailableError("cannot reach registry database " + path() +
                                                " to renew the lease: " + e.what()));
      }
    } catch (const std::exception& e) {
      side_conn_.reset();
      return Result<int64_t>(
          UnavailableError("renewing the lease on registry database " + path() + ": " + e.what()));
    }
  }
  return Result<int64_t>(UnavailableError("renewing the lease: unreachable"));
}

Status PgBackend::LeaveNodeRow() {
  return Read("leaving the fleet", [&](Tx& tx) -> Status {
    tx.exec_params("UPDATE nodes SET lease_state = 'stopped', loaded_models = '' WHERE node_id = $1 AND "
                   "epoch = $2 AND lease_state = 'held'",
                   scope.node_id, scope.epoch);
    return Status::Ok();
  });
}

Result<std::vector<NodeRecord>> PgBackend::SelectNodes(bool only_expired) {
  return Read("listing nodes", [&](Tx& tx) -> Result<std::vector<NodeRecord>> {
    const auto rows =
        only_expired
            ? tx.exec_params(kSelectNode + " WHERE lease_state = 'held' AND node_id <> $1 AND heartbeat_ms + "
                                           "lease_s * 1000 < " + kNowMs + " ORDER BY node_id COLLATE \"C\"",
                             scope.node_id)
            : tx.exec(kSelectNode + " ORDER BY node_id COLLATE \"C\"");
    std::vector<NodeRecord> out;
    for (const auto& r : rows) out.push_back(ReadNode(r));
    return out;
  });
}

Result<bool> PgBackend::MarkNodeExpiredRow(std::string_view node_id) {
  return Write("taking over an expired lease", [&](Tx& tx) -> Result<bool> {
    const auto r = tx.exec_params(std::string("UPDATE nodes SET lease_state = 'expired', expired_by = $2 "
                                              "WHERE node_id = $1 AND lease_state = 'held' AND "
                                              "heartbeat_ms + lease_s * 1000 < ") + kNowMs,
                                  std::string(node_id), scope.node_id);
    return r.affected_rows() == 1;
  });
}

Result<std::optional<int64_t>> PgBackend::SelectModelChangeCount() {
  return Read("reading the change count", [&](Tx& tx) -> Result<std::optional<int64_t>> {
    const auto r = tx.exec("SELECT n FROM model_changes WHERE id = 1");
    if (r.empty()) return std::optional<int64_t>();
    return std::optional<int64_t>(r[0][0].as<int64_t>());
  });
}

Status PgBackend::CheckLease() {
  if (scope.node_id.empty()) return Status::Ok();
  return Read("checking the node's lease", [&](Tx& tx) -> Status {
    const auto r = tx.exec_params("SELECT 1 FROM nodes WHERE node_id = $1 AND epoch = $2 AND lease_state = 'held'",
                                  scope.node_id, scope.epoch);
    if (r.empty()) return FailedPreconditionError(LeaseLostMessage(scope));
    return Status::Ok();
  });
}

}  // namespace mw::registry_internal
