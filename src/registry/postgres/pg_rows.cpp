// PgBackend's rows: the same operations as sqlite/sqlite_rows.cpp (SQLite), in
// PostgreSQL's dialect ($n parameters, RETURNING, ON CONFLICT). Names sort
// in byte order (COLLATE "C"), as SQLite sorts them.
#include "common/time_util.h"
#include "registry/postgres/pg_backend.h"

namespace mw::registry_internal {
namespace {

using Tx = pqxx::transaction_base;

// A nullable parameter: libpqxx sends a null const char* as NULL.
const char* Opt(const std::optional<std::string>& v) { return v ? v->c_str() : nullptr; }

std::optional<std::string> OptText(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<std::string>();
}
std::optional<int64_t> OptInt(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<int64_t>();
}

Result<CompatStatus> StatusColumn(const pqxx::field& f) {
  const std::string text = f.as<std::string>();
  if (auto v = ParseCompatStatus(text)) return *v;
  return DataLossError("registry holds an unknown compatibility status '" + text + "'");
}

Result<ModelRecord> ReadModel(const pqxx::row& r) {
  ModelRecord m;
  m.model_name = r[0].as<std::string>();
  m.hf_path = OptText(r[1]);
  m.cache_location = r[2].as<std::string>();
  m.file_path = OptText(r[3]);
  m.engine = r[4].as<std::string>();
  ASSIGN_OR_RETURN(m.compatibility_status, StatusColumn(r[5]));
  m.compatibility_notes = OptText(r[6]);
  m.load_config = r[7].as<std::string>();
  m.total_loads = r[8].as<int64_t>();
  m.total_failures = r[9].as<int64_t>();
  m.created_at = r[10].as<std::string>();
  m.updated_at = r[11].as<std::string>();
  m.last_loaded_at = OptText(r[12]);
  m.last_failed_at = OptText(r[13]);
  m.verdict_fingerprint = OptText(r[14]);
  return m;
}

}  // namespace

Result<AttemptRecord> PgReadAttempt(const pqxx::row& r) {
  AttemptRecord a;
  a.id = r[0].as<int64_t>();
  a.model_name = r[1].as<std::string>();
  a.started_at = r[2].as<std::string>();
  a.finished_at = OptText(r[3]);
  if (!r[4].is_null()) {
    const std::string text = r[4].as<std::string>();
    auto outcome = ParseAttemptOutcome(text);
    if (!outcome) return DataLossError("registry holds an unknown attempt outcome '" + text + "'");
    a.outcome = *outcome;
  }
  a.forced = r[5].as<int64_t>() != 0;
  ASSIGN_OR_RETURN(a.status_before, StatusColumn(r[6]));
  if (!r[7].is_null()) {
    ASSIGN_OR_RETURN(a.status_after, StatusColumn(r[7]));
  }
  a.load_config = r[8].as<std::string>();
  a.exit_code = OptInt(r[9]);
  a.signal = OptText(r[10]);
  a.category = OptText(r[11]);
  a.pattern_id = OptText(r[12]);
  a.summary = OptText(r[13]);
  a.matched_line = OptText(r[14]);
  a.log_excerpt = OptText(r[15]);
  a.duration_ms = OptInt(r[16]);
  a.hardware_fingerprint = OptText(r[17]);
  a.node_id = OptText(r[18]);
  a.environment_class = OptText(r[19]);
  return a;
}

namespace {

template <typename Record, typename Reader>
Result<std::vector<Record>> ReadAll(const pqxx::result& rows, Reader read) {
  std::vector<Record> out;
  out.reserve(rows.size());
  for (const auto& row : rows) {
    ASSIGN_OR_RETURN(Record r, read(row));
    out.push_back(std::move(r));
  }
  return out;
}

std::string S(std::string_view v) { return std::string(v); }
std::string S(CompatStatus v) { return std::string(ToString(v)); }

// A model with one environment class's verdict ($1) in its state columns
// (SPEC §14): no row in model_verdicts reads as unknown, never loaded.
const std::string kSelectModel =
    "SELECT m.model_name, m.hf_path, m.cache_location, m.file_path, m.engine, "
    "COALESCE(v.compatibility_status, 'unknown'), v.compatibility_notes, m.load_config, "
    "COALESCE(v.total_loads, 0), COALESCE(v.total_failures, 0), m.created_at, "
    "GREATEST(m.updated_at, v.updated_at), v.last_loaded_at, v.last_failed_at, v.verdict_fingerprint "
    "FROM models m LEFT JOIN model_verdicts v ON v.model_name = m.model_name AND v.environment_class = $1";
const std::string kVerdictStatus = "COALESCE(v.compatibility_status, 'unknown')";
const std::string kSelectAttempt = std::string("SELECT ") + kAttemptColumns + " FROM load_attempts";

}  // namespace

Result<std::vector<AttemptRecord>> PgReadAttempts(const pqxx::result& rows) {
  return ReadAll<AttemptRecord>(rows, PgReadAttempt);
}

Status PgBackend::ValidateLoadConfig(Tx& tx, std::string_view json_text) {
  const auto r = tx.exec_params("SELECT mw_json_type($1)", S(json_text));
  if (r[0][0].is_null()) return InvalidArgumentError("load_config is not valid JSON: it must be a JSON object");
  const std::string type = r[0][0].as<std::string>();
  if (type != "object") return InvalidArgumentError("load_config must be a JSON object, not " + type);
  return Status::Ok();
}

Result<ModelRecord> PgBackend::SelectModelIn(Tx& tx, std::string_view name, std::string_view environment_class) {
  RETURN_IF_ERROR(ValidateModelName(name));
  const auto r = tx.exec_params(kSelectModel + " WHERE m.model_name = $2", S(environment_class), S(name));
  if (r.empty()) return NotFoundError("model " + Quoted(name) + " is not registered");
  ASSIGN_OR_RETURN(ModelRecord m, ReadModel(r[0]));
  m.environment_class = std::string(environment_class);
  return m;
}

Result<ModelRecord> PgBackend::SelectModelIn(Tx& tx, std::string_view name) {
  return SelectModelIn(tx, name, scope.environment_class);
}

// The verdict columns of `m` into model_verdicts under m.environment_class.
Status PgBackend::UpsertVerdict(Tx& tx, const ModelRecord& m, const std::string& now) {
  NoteChanged(m.model_name);
  tx.exec_params(
      "INSERT INTO model_verdicts (model_name, environment_class, compatibility_status, compatibility_notes, "
      "total_loads, total_failures, last_loaded_at, last_failed_at, verdict_fingerprint, updated_at) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (model_name, environment_class) DO UPDATE SET "
      "compatibility_status = EXCLUDED.compatibility_status, compatibility_notes = EXCLUDED.compatibility_notes, "
      "total_loads = EXCLUDED.total_loads, total_failures = EXCLUDED.total_failures, "
      "last_loaded_at = EXCLUDED.last_loaded_at, last_failed_at = EXCLUDED.last_failed_at, "
      "verdict_fingerprint = EXCLUDED.verdict_fingerprint, updated_at = EXCLUDED.updated_at",
      m.model_name, m.environment_class, S(m.compatibility_status), Opt(NullIfEmpty(m.compatibility_notes)),
      m.total_loads, m.total_failures, Opt(m.last_loaded_at), Opt(m.last_failed_at),
      Opt(NullIfEmpty(m.verdict_fingerprint)), now);
  return Status::Ok();
}

// A model in testing in any class may not be deleted: a node is loading it.
Status PgBackend::CheckNotTestingAnywhere(Tx& tx, std::string_view name) {
  const auto r = tx.exec_params("SELECT environment_class FROM model_verdicts WHERE model_name = $1 AND "
                                "compatibility_status = 'testing' LIMIT 1",
                                S(name));
  if (r.empty()) return Status::Ok();
  ModelRecord testing;
  testing.model_name = std::string(name);
  testing.compatibility_status = CompatStatus::kTesting;
  return CheckNotTesting(testing, "delete it");
}

Result<AttemptRecord> PgBackend::SelectAttemptIn(Tx& tx, AttemptId id) {
  const auto r = tx.exec_params(kSelectAttempt + " WHERE id = $1", int64_t{id});
  if (r.empty()) return NotFoundError("no load attempt with id " + std::to_string(id));
  return PgReadAttempt(r[0]);
}

Result<ModelRecord> PgBackend::SelectModel(std::string_view name) {
  return Read("reading a model", [&](Tx& tx) { return SelectModelIn(tx, name); });
}

Result<std::vector<ModelRecord>> PgBackend::SelectModels(std::optional<CompatStatus> status) {
  return SelectModelsOfClass(status, scope.environment_class);
}

Result<std::vector<ModelRecord>> PgBackend::SelectModelsInClass(CompatStatus status,
                                                                std::string_view environment_class) {
  return SelectModelsOfClass(status, environment_class);
}

Result<std::vector<ModelRecord>> PgBackend::SelectModelsOfClass(std::optional<CompatStatus> status,
                                                                std::string_view environment_class) {
  return Read("listing models", [&](Tx& tx) -> Result<std::vector<ModelRecord>> {
    const std::string cls(environment_class);
    const auto rows =
        status ? tx.exec_params(kSelectModel + " WHERE " + kVerdictStatus +
                                    " = $2 ORDER BY m.model_name COLLATE \"C\"",
                                cls, S(*status))
               : tx.exec_params(kSelectModel + " ORDER BY m.model_name COLLATE \"C\"", cls);
    ASSIGN_OR_RETURN(std::vector<ModelRecord> models, ReadAll<ModelRecord>(rows, ReadModel));
    for (ModelRecord& m : models) m.environment_class = cls;
    return models;
  });
}

Result<int64_t> PgBackend::CountModels(CompatStatus status) {
  return Read("counting models", [&](Tx& tx) -> Result<int64_t> {
    return tx.exec_params("SELECT count(*) FROM models m LEFT JOIN model_verdicts v ON v.model_name = m.model_name "
                          "AND v.environment_class = $1 WHERE " + kVerdictStatus + " = $2",
                          scope.environment_class, S(status))[0][0]
        .as<int64_t>();
  });
}

Result<StatusCounts> PgBackend::CountAllStatuses() {
  return Read("counting models", [&](Tx& tx) -> Result<StatusCounts> {
    StatusCounts counts;
    for (CompatStatus st : kAllCompatStatuses) counts[st] = 0;
    for (const auto& row : tx.exec_params("SELECT " + kVerdictStatus + ", count(*) FROM models m LEFT JOIN "
                                          "model_verdicts v ON v.model_name = m.model_name AND "
                                          "v.environment_class = $1 GROUP BY 1",
                                          scope.environment_class)) {
      ASSIGN_OR_RETURN(const CompatStatus st, StatusColumn(row[0]));
      counts[st] = row[1].as<int64_t>();
    }
    return counts;
  });
}

Status PgBackend::InsertModel(const ModelRecord& m) {
  RETURN_IF_ERROR(ValidateNewModel(m));
  Status st = Write("registering a model", [&](Tx& tx) -> Status {
    RETURN_IF_ERROR(ValidateLoadConfig(tx, m.load_config));
    const std::string now = NowIso8601();
    NoteChanged(m.model_name);
    tx.exec_params(
        "INSERT INTO models (model_name, hf_path, cache_location, file_path, engine, load_config, created_at, "
        "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        m.model_name, Opt(NullIfEmpty(m.hf_path)), m.cache_location, Opt(NullIfEmpty(m.file_path)), m.engine,
        m.load_config, now);
    // A status or notes given at registration are this node's class's verdict.
    if (m.compatibility_status == CompatStatus::kUnknown && !NullIfEmpty(m.compatibility_notes)) return Status::Ok();
    ModelRecord verdict;
    verdict.model_name = m.model_name;
    verdict.environment_class = scope.environment_class;
    verdict.compatibility_status = m.compatibility_status;
    verdict.compatibility_notes = m.compatibility_notes;
    return UpsertVerdict(tx, verdict, now);
  });
  if (st.code() == StatusCode::kAlreadyExists) {
    return AlreadyExistsError("model " + Quoted(m.model_name) + " is already registered");
  }
  return st;
}

Status PgBackend::UpdateModelRow(std::string_view name, const ModelUpdate& u) {
  RETURN_IF_ERROR(ValidateUpdate(u));
  return Write("updating a model", [&](Tx& tx) -> Status {
    if (u.load_config) RETURN_IF_ERROR(ValidateLoadConfig(tx, *u.load_config));
    ASSIGN_OR_RETURN(ModelRecord current, SelectModelIn(tx, name));
    if (u.compatibility_status) RETURN_IF_ERROR(CheckNotTesting(current, "change its status"));
    // One static statement: each column has a "was it given" flag.
    tx.exec_params(
        "UPDATE models SET "
        "load_config = CASE WHEN $2 THEN $3 ELSE load_config END, "
        "hf_path = CASE WHEN $4 THEN $5 ELSE hf_path END, "
        "file_path = CASE WHEN $6 THEN $7 ELSE file_path END, "
        "cache_location = CASE WHEN $8 THEN $9 ELSE cache_location END, "
        "engine = CASE WHEN $10 THEN $11 ELSE engine END, "
        "updated_at = $12 WHERE model_name = $1",
        S(name), u.load_config.has_value(), Opt(u.load_config), u.hf_path.has_value(), Opt(NullIfEmpty(u.hf_path)),
        u.file_path.has_value(), Opt(NullIfEmpty(u.file_path)), u.cache_location.has_value(), Opt(u.cache_location),
        u.engine.has_value(), Opt(u.engine), NowIso8601());
    // Status and notes are this node's class's verdict.
    if (!u.compatibility_status && !u.compatibility_notes) return Status::Ok();
    if (u.compatibility_status) current.compatibility_status = *u.compatibility_status;
    if (u.compatibility_notes) current.compatibility_notes = NullIfEmpty(u.compatibility_notes);
    return UpsertVerdict(tx, current, NowIso8601());
  });
}

Status PgBackend::WriteModelStateRow(const ModelRecord& m) {
  // The verdict row's foreign key refuses a model that is not registered.
  Status st = Write("writing a model's state", [&](Tx& tx) -> Status {
    return UpsertVerdict(tx, m, NowIso8601());
  });
  if (st.code() == StatusCode::kInvalidArgument && st.message().find("FOREIGN KEY") != std::string::npos) {
    return NotFoundError("model " + Quoted(m.model_name) + " is not registered");
  }
  return st;
}

Status PgBackend::DeleteModelRow(std::string_view name) {
  return Write("deleting a model", [&](Tx& tx) -> Status {
    RETURN_IF_ERROR(SelectModelIn(tx, name).status());
    RETURN_IF_ERROR(CheckNotTestingAnywhere(tx, name));
    NoteChanged(name);
    tx.exec_params("DELETE FROM models WHERE model_name = $1", S(name));
    return Status::Ok();
  });
}

Result<AttemptRecord> PgBackend::SelectAttempt(AttemptId id) {
  return Read("reading a load attempt", [&](Tx& tx) { return SelectAttemptIn(tx, id); });
}

Result<std::vector<AttemptRecord>> PgBackend::SelectAttemptsOfModel(std::string_view name, int limit) {
  return Read("listing load attempts", [&](Tx& tx) -> Result<std::vector<AttemptRecord>> {
    RETURN_IF_ERROR(SelectModelIn(tx, name).status());
    const std::optional<std::string> lim =
        limit > 0 ? std::optional<std::string>(std::to_string(limit)) : std::nullopt;  // NULL: all
    return ReadAll<AttemptRecord>(
        tx.exec_params(kSelectAttempt + " WHERE model_name = $1 ORDER BY id DESC LIMIT $2::bigint", S(name),
                       Opt(lim)),
        PgReadAttempt);
  });
}

Result<ModelDetail> PgBackend::SelectModelDetail(std::string_view name, int attempt_limit) {
  RETURN_IF_ERROR(ValidateModelName(name));
  // Outside a write transaction (which sees its own uncommitted rows) the
  // node's copy answers while it is exact (pg_detail_cache.h).
  const std::optional<uint64_t> generation = tx_ ? std::nullopt : details_.Generation();
  if (generation) {
    if (std::optional<ModelDetail> kept = details_.Find(name, scope.environment_class, attempt_limit)) {
      return std::move(*kept);
    }
  }
  Result<ModelDetail> read = ReadModelDetail(name, attempt_limit);
  if (generation && read.ok()) details_.Store(name, scope.environment_class, attempt_limit, *read, *generation);
  return read;
}

Result<ModelDetail> PgBackend::ReadModelDetail(std::string_view name, int attempt_limit) {
  return Read("reading a model", [&](Tx& tx) -> Result<ModelDetail> {
    // Three queries sent at once (libpqxx's pipeline: one multi-statement
    // query, so one round trip; parameters as quoted literals).
    const std::string quoted = tx.quote(S(name));
    auto with = [&](std::string sql, const std::string& value) {
      sql.replace(sql.find("$1"), 2, value);
      return sql;
    };
    pqxx::pipeline p(tx);
    const auto model_q =
        p.insert(with(kSelectModel, tx.quote(scope.environment_class)) + " WHERE m.model_name = " + quoted);
    const auto attempts_q = p.insert(kSelectAttempt + " WHERE model_name = " + quoted + " ORDER BY id DESC" +
                                     (attempt_limit > 0 ? " LIMIT " + std::to_string(attempt_limit) : ""));
    const auto verdicts_q = p.insert(with(kSelectVerdicts, quoted));
    p.complete();
    const pqxx::result model_rows = p.retrieve(model_q);
    const pqxx::result attempt_rows = p.retrieve(attempts_q);
    const pqxx::result verdict_rows = p.retrieve(verdicts_q);
    if (model_rows.empty()) return NotFoundError("model " + Quoted(name) + " is not registered");
    ModelDetail d;
    ASSIGN_OR_RETURN(d.model, ReadModel(model_rows[0]));
    d.model.environment_class = scope.environment_class;
    ASSIGN_OR_RETURN(d.attempts, PgReadAttempts(attempt_rows));
    ASSIGN_OR_RETURN(d.verdicts, PgReadVerdicts(verdict_rows));
    return d;
  });
}

Result<std::vector<AttemptRecord>> PgBackend::SelectOpenAttempts(std::optional<std::string_view> name) {
  return Read("listing open load attempts", [&](Tx& tx) -> Result<std::vector<AttemptRecord>> {
    const auto rows = name ? tx.exec_params(kSelectAttempt +
                                                " WHERE finished_at IS NULL AND model_name = $1 ORDER BY id",
                                            S(*name))
                           : tx.exec(kSelectAttempt + " WHERE finished_at IS NULL ORDER BY id");
    return ReadAll<AttemptRecord>(rows, PgReadAttempt);
  });
}

Result<AttemptId> PgBackend::InsertAttemptRow(const AttemptRecord& a) {
  auto id = Write("recording a load attempt", [&](Tx& tx) -> Result<AttemptId> {
    RETURN_IF_ERROR(ValidateLoadConfig(tx, a.load_config));
    const AttemptOwner owner = OwnerOf(a, scope);
    NoteChanged(a.model_name);  // its detail lists its attempts
    const auto r = tx.exec_params(
        "INSERT INTO load_attempts (model_name, started_at, forced, status_before, load_config, "
        "hardware_fingerprint, node_id, environment_class) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        a.model_name, a.started_at.empty() ? NowIso8601() : a.started_at, int64_t{a.forced ? 1 : 0},
        S(a.status_before), a.load_config, Opt(NullIfEmpty(a.hardware_fingerprint)), Opt(owner.node_id),
        Opt(owner.environment_class));
    return r[0][0].as<int64_t>();
  });
  if (id.status().code() == StatusCode::kAlreadyExists) {
    return AlreadyExistsError("model " + Quoted(a.model_name) + " already has an open load attempt");
  }
  if (id.status().code() == StatusCode::kInvalidArgument &&
      id.status().message().find("FOREIGN KEY") != std::string::npos) {
    return NotFoundError("model " + Quoted(a.model_name) + " is not registered");
  }
  return id;
}

Status PgBackend::CloseAttemptRow(const AttemptRecord& a) {
  RETURN_IF_ERROR(CloseNeedsOutcome(a));
  return Write("closing a load attempt", [&](Tx& tx) -> Status {
    const std::optional<std::string> exit_code =
        a.exit_code ? std::optional<std::string>(std::to_string(*a.exit_code)) : std::nullopt;
    const auto r = tx.exec_params(
        "UPDATE load_attempts SET finished_at = $2::text, outcome = $3, status_after = $4, exit_code = $5::bigint, "
        "signal = $6, category = $7, pattern_id = $8, summary = $9, matched_line = $10, log_excerpt = $11, "
        "duration_ms = GREATEST(0, round(extract(epoch FROM ($2::text::timestamptz - started_at::timestamptz)) * "
        "1000))::bigint WHERE id = $1 AND finished_at IS NULL RETURNING model_name",
        int64_t{a.id}, a.finished_at ? *a.finished_at : NowIso8601(), S(ToString(*a.outcome)),
        S(*a.status_after), Opt(exit_code), Opt(NullIfEmpty(a.signal)), Opt(NullIfEmpty(a.category)),
        Opt(NullIfEmpty(a.pattern_id)), Opt(NullIfEmpty(a.summary)), Opt(NullIfEmpty(a.matched_line)),
        Opt(NullIfEmpty(a.log_excerpt)));
    if (r.affected_rows() == 1) {
      NoteChanged(r[0][0].as<std::string>());
      return Status::Ok();
    }
    RETURN_IF_ERROR(SelectAttemptIn(tx, a.id).status());
    return FailedPreconditionError("load attempt " + std::to_string(a.id) + " is already finished");
  });
}

Status PgBackend::ReclassifyAttemptRow(AttemptId id, AttemptOutcome outcome, CompatStatus status_after) {
  return Write("reclassifying a load attempt", [&](Tx& tx) -> Status {
    ASSIGN_OR_RETURN(const AttemptRecord current, SelectAttemptIn(tx, id));
    if (current.open()) {
      return FailedPreconditionError("load attempt " + std::to_string(id) + " is still in progress");
    }
    NoteChanged(current.model_name);
    tx.exec_params("UPDATE load_attempts SET outcome = $2, status_after = $3 WHERE id = $1", int64_t{id},
                   S(ToString(outcome)), S(status_after));
    return Status::Ok();
  });
}

Status PgBackend::InsertEnvironmentRow(std::string_view fingerprint, std::string_view components) {
  return Write("recording an environment", [&](Tx& tx) -> Status {
    tx.exec_params("INSERT INTO environments (fingerprint, components, first_seen_at) VALUES ($1, $2, $3) "
                   "ON CONFLICT (fingerprint) DO NOTHING",
                   S(fingerprint), S(components), NowIso8601());
    return Status::Ok();
  });
}

Result<std::optional<std::string>> PgBackend::SelectEnvironment(std::string_view fingerprint) {
  return Read("reading an environment", [&](Tx& tx) -> Result<std::optional<std::string>> {
    const auto r = tx.exec_params("SELECT components FROM environments WHERE fingerprint = $1", S(fingerprint));
    if (r.empty()) return std::optional<std::string>();
    return std::optional<std::string>(r[0][0].as<std::string>());
  });
}

// The environment state is each node's own (SPEC §14: a dead GPU is one machine's).
Status PgBackend::WriteEnvironmentStateRow(const EnvironmentStateRecord& st, bool streak_now) {
  return Write("recording the environment state", [&](Tx& tx) -> Status {
    tx.exec_params(
        "INSERT INTO environment_state (id, state, reason, since, devices_missing, streak_after_attempt, "
        "good_devices, updated_at, node_id) VALUES (1, $1, $2, $3, $4, CASE WHEN $5 THEN (SELECT COALESCE(MAX(id), 0) "
        "FROM load_attempts WHERE finished_at IS NOT NULL) ELSE $6 END, $7, $8, $9) "
        "ON CONFLICT (node_id) DO UPDATE SET state = EXCLUDED.state, reason = EXCLUDED.reason, "
        "since = EXCLUDED.since, "
        "devices_missing = EXCLUDED.devices_missing, streak_after_attempt = EXCLUDED.streak_after_attempt, "
        "good_devices = EXCLUDED.good_devices, updated_at = EXCLUDED.updated_at",
        std::string(st.failing ? "failing" : "ok"), Opt(st.reason), Opt(st.since), st.devices_missing, streak_now,
        int64_t{st.streak_after}, st.good_devices, NowIso8601(), scope.node_id);
    return Status::Ok();
  });
}

Result<std::optional<EnvironmentStateRecord>> PgBackend::SelectEnvironmentState() {
  return Read("reading the environment state", [&](Tx& tx) -> Result<std::optional<EnvironmentStateRecord>> {
    const auto r = tx.exec("SELECT state, reason, since, devices_missing, streak_after_attempt, good_devices "
                           "FROM environment_state WHERE node_id = " + tx.quote(scope.node_id));
    if (r.empty()) return std::optional<EnvironmentStateRecord>();
    EnvironmentStateRecord st;
    st.failing = r[0][0].as<std::string>() == "failing";
    if (!r[0][1].is_null()) st.reason = r[0][1].as<std::string>();
    if (!r[0][2].is_null()) st.since = r[0][2].as<std::string>();
    st.devices_missing = r[0][3].as<bool>();
    st.streak_after = r[0][4].as<int64_t>();
    st.good_devices = r[0][5].as<std::string>();
    return std::optional<EnvironmentStateRecord>(std::move(st));
  });
}

Result<std::map<std::string, std::string>> PgBackend::SelectLastFinishedByOutcome(AttemptOutcome outcome) {
  return Read("listing the last attempts by outcome", [&](Tx& tx) -> Result<std::map<std::string, std::string>> {
    const auto r = tx.exec_params("SELECT model_name, MAX(finished_at) FROM load_attempts WHERE outcome = $1 "
                                  "GROUP BY model_name",
                                  S(ToString(outcome)));
    std::map<std::string, std::string> out;
    for (const auto& row : r) out[row[0].as<std::string>()] = row[1].as<std::string>();
    return out;
  });
}

Result<std::vector<AttemptRecord>> PgBackend::SelectRecentLoadOutcomes(AttemptId after, int limit) {
  return Read("listing recent load outcomes", [&](Tx& tx) -> Result<std::vector<AttemptRecord>> {
    const std::optional<std::string> lim =
        limit > 0 ? std::optional<std::string>(std::to_string(limit)) : std::nullopt;  // NULL: all
    return ReadAll<AttemptRecord>(
        tx.exec_params(kSelectAttempt +
                           " WHERE id > $1 AND finished_at IS NOT NULL AND outcome IN ('success', 'failed', "
                           "'crashed', 'timeout', 'environment_failure', 'crashed_while_serving', "
                           "'hung_while_serving') "
                           "AND ($3 = '' OR node_id = $3) ORDER BY id DESC LIMIT $2::bigint",
                       int64_t{after}, Opt(lim), scope.node_id),
        PgReadAttempt);
  });
}

}  // namespace mw::registry_internal
