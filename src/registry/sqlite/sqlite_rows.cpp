#include "registry/sqlite/sqlite_rows.h"

#include "common/time_util.h"

namespace mw::registry_internal {
namespace {

std::string Sql(const char* head, const char* columns, const char* tail) {
  return std::string(head) + columns + tail;
}

// The schema's CHECKs guarantee valid names; a bad value here means the file
// was edited by hand, which we report rather than guess.
Result<CompatStatus> StatusColumn(const Stmt& s, int col) {
  const std::string text = s.Text(col);
  if (auto v = ParseCompatStatus(text)) return *v;
  return DataLossError("registry holds an unknown compatibility status '" + text + "'");
}

Result<ModelRecord> ReadModel(const Stmt& s) {
  ModelRecord m;
  m.model_name = s.Text(0);
  m.hf_path = s.OptText(1);
  m.cache_location = s.Text(2);
  m.file_path = s.OptText(3);
  m.engine = s.Text(4);
  ASSIGN_OR_RETURN(m.compatibility_status, StatusColumn(s, 5));
  m.compatibility_notes = s.OptText(6);
  m.load_config = s.Text(7);
  m.total_loads = s.Int(8);
  m.total_failures = s.Int(9);
  m.created_at = s.Text(10);
  m.updated_at = s.Text(11);
  m.last_loaded_at = s.OptText(12);
  m.last_failed_at = s.OptText(13);
  m.verdict_fingerprint = s.OptText(14);
  return m;
}

Result<AttemptRecord> ReadAttempt(const Stmt& s) {
  AttemptRecord a;
  a.id = s.Int(0);
  a.model_name = s.Text(1);
  a.started_at = s.Text(2);
  a.finished_at = s.OptText(3);
  if (!s.IsNull(4)) {
    const std::string text = s.Text(4);
    auto outcome = ParseAttemptOutcome(text);
    if (!outcome) return DataLossError("registry holds an unknown attempt outcome '" + text + "'");
    a.outcome = *outcome;
  }
  a.forced = s.Int(5) != 0;
  ASSIGN_OR_RETURN(a.status_before, StatusColumn(s, 6));
  if (!s.IsNull(7)) {
    ASSIGN_OR_RETURN(a.status_after, StatusColumn(s, 7));
  }
  a.load_config = s.Text(8);
  a.exit_code = s.OptInt(9);
  a.signal = s.OptText(10);
  a.category = s.OptText(11);
  a.pattern_id = s.OptText(12);
  a.summary = s.OptText(13);
  a.matched_line = s.OptText(14);
  a.log_excerpt = s.OptText(15);
  a.duration_ms = s.OptInt(16);
  a.hardware_fingerprint = s.OptText(17);
  a.node_id = s.OptText(18);
  a.environment_class = s.OptText(19);
  return a;
}

template <typename Record, typename Reader>
Result<std::vector<Record>> ReadAll(Stmt& s, Reader read) {
  std::vector<Record> out;
  while (true) {
    ASSIGN_OR_RETURN(const bool row, s.Step());
    if (!row) return out;
    ASSIGN_OR_RETURN(Record r, read(s));
    out.push_back(std::move(r));
  }
}

}  // namespace

Result<std::vector<AttemptRecord>> ReadAttempts(Stmt& s) { return ReadAll<AttemptRecord>(s, ReadAttempt); }

Status ValidateLoadConfig(Db& db, std::string_view json_text) {
  ASSIGN_OR_RETURN(Stmt s,
                   db.Prepare("SELECT json_valid(?1), CASE WHEN json_valid(?1) THEN json_type(?1) END"));
  s.Bind(1, json_text);
  ASSIGN_OR_RETURN(const bool row, s.Step());
  if (!row || s.Int(0) == 0)
    return InvalidArgumentError("load_config is not valid JSON: it must be a JSON object");
  const std::string type = s.Text(1);
  if (type != "object") return InvalidArgumentError("load_config must be a JSON object, not " + type);
  return Status::Ok();
}

Result<ModelRecord> SelectModel(Db& db, std::string_view name) {
  RETURN_IF_ERROR(ValidateModelName(name));
  static const std::string sql = Sql("SELECT ", kModelColumns, " FROM models WHERE model_name = ?1");
  ASSIGN_OR_RETURN(Stmt s, db.Prepare(sql.c_str()));
  s.Bind(1, name);
  ASSIGN_OR_RETURN(const bool row, s.Step());
  if (!row) return NotFoundError("model " + Quoted(name) + " is not registered");
  return ReadModel(s);
}

Result<std::vector<ModelRecord>> SelectModels(Db& db, std::optional<CompatStatus> status) {
  static const std::string all = Sql("SELECT ", kModelColumns, " FROM models ORDER BY model_name");
  static const std::string by_status =
      Sql("SELECT ", kModelColumns, " FROM models WHERE compatibility_status = ?1 ORDER BY model_name");
  ASSIGN_OR_RETURN(Stmt s, db.Prepare(status ? by_status.c_str() : all.c_str()));
  if (status) s.Bind(1, ToString(*status));
  return ReadAll<ModelRecord>(s, ReadModel);
}

Result<int64_t> CountModels(Db& db, CompatStatus status) {
  ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT count(*) FROM models WHERE compatibility_status = ?1"));
  s.Bind(1, ToString(status));
  ASSIGN_OR_RETURN(const bool row, s.Step());
  return row ? s.Int(0) : 0;
}

Result<StatusCounts> CountAllStatuses(Db& db) {
  StatusCounts counts;
  for (CompatStatus st : kAllCompatStatuses) counts[st] = 0;
  ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT compatibility_status, count(*) FROM models GROUP BY 1"));
  while (true) {
    ASSIGN_OR_RETURN(const bool row, s.Step());
    if (!row) return counts;
    ASSIGN_OR_RETURN(const CompatStatus st, StatusColumn(s, 0));
    counts[st] = s.Int(1);
  }
}

Status InsertModel(Db& db, const ModelRecord& m) {
  RETURN_IF_ERROR(ValidateNewModel(m));
  RETURN_IF_ERROR(ValidateLoadConfig(db, m.load_config));
  const std::string now = NowIso8601();
  ASSIGN_OR_RETURN(Stmt s,
                   db.Prepare("INSERT INTO models (model_name, hf_path, cache_location, file_path, engine, "
                              "compatibility_status, compatibility_notes, load_config, created_at, "
                              "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)"));
  s.Bind(1, m.model_name);
  s.Bind(2, NullIfEmpty(m.hf_path));
  s.Bind(3, m.cache_location);
  s.Bind(4, NullIfEmpty(m.file_path));
  s.Bind(5, m.engine);
  s.Bind(6, ToString(m.compatibility_status));
  s.Bind(7, NullIfEmpty(m.compatibility_notes));
  s.Bind(8, m.load_config);
  s.Bind(9, now);
  Status st = s.Run();
  if (st.code() == StatusCode::kAlreadyExists) {
    return AlreadyExistsError("model " + Quoted(m.model_name) + " is already registered");
  }
  return st;
}

Status UpdateModelRow(Db& db, std::string_view name, const ModelUpdate& u) {
  RETURN_IF_ERROR(ValidateUpdate(u));
  if (u.load_config) RETURN_IF_ERROR(ValidateLoadConfig(db, *u.load_config));
  ASSIGN_OR_RETURN(const ModelRecord current, SelectModel(db, name));
  if (u.compatibility_status) RETURN_IF_ERROR(CheckNotTesting(current, "change its status"));
  // One static statement: each column has a "was it given" flag.
  ASSIGN_OR_RETURN(Stmt s,
                   db.Prepare("UPDATE models SET "
                              "compatibility_status = CASE WHEN ?2 THEN ?3 ELSE compatibility_status END, "
                              "compatibility_notes = CASE WHEN ?4 THEN ?5 ELSE compatibility_notes END, "
                              "load_config = CASE WHEN ?6 THEN ?7 ELSE load_config END, "
                              "hf_path = CASE WHEN ?8 THEN ?9 ELSE hf_path END, "
                              "file_path = CASE WHEN ?10 THEN ?11 ELSE file_path END, "
                              "cache_location = CASE WHEN ?12 THEN ?13 ELSE cache_location END, "
                              "engine = CASE WHEN ?14 THEN ?15 ELSE engine END, "
                              "updated_at = ?16 WHERE model_name = ?1"));
  s.Bind(1, name);
  auto flag = [&s](int index, bool given) { s.Bind(index, int64_t{given ? 1 : 0}); };
  flag(2, u.compatibility_status.has_value());
  s.Bind(3, u.compatibility_status
                ? std::optional<std::string>(std::string(ToString(*u.compatibility_status)))
                : std::nullopt);
  flag(4, u.compatibility_notes.has_value());
  s.Bind(5, NullIfEmpty(u.compatibility_notes));
  flag(6, u.load_config.has_value());
  s.Bind(7, u.load_config);
  flag(8, u.hf_path.has_value());
  s.Bind(9, NullIfEmpty(u.hf_path));
  flag(10, u.file_path.has_value());
  s.Bind(11, NullIfEmpty(u.file_path));
  flag(12, u.cache_location.has_value());
  s.Bind(13, u.cache_location);
  flag(14, u.engine.has_value());
  s.Bind(15, u.engine);
  s.Bind(16, NowIso8601());
  return s.Run();
}

Status WriteModelStateRow(Db& db, const ModelRecord& m) {
  ASSIGN_OR_RETURN(Stmt s,
                   db.Prepare("UPDATE models SET compatibility_status = ?2, compatibility_notes = ?3, "
                              "total_loads = ?4, total_failures = ?5, last_loaded_at = ?6, "
                              "last_failed_at = ?7, updated_at = ?8, verdict_fingerprint = ?9 "
                              "WHERE model_name = ?1"));
  s.Bind(1, m.model_name);
  s.Bind(2, ToString(m.compatibility_status));
  s.Bind(3, NullIfEmpty(m.compatibility_notes));
  s.Bind(4, m.total_loads);
  s.Bind(5, m.total_failures);
  s.Bind(6, m.last_loaded_at);
  s.Bind(7, m.last_failed_at);
  s.Bind(8, NowIso8601());
  s.Bind(9, NullIfEmpty(m.verdict_fingerprint));
  RETURN_IF_ERROR(s.Run());
  if (sqlite3_changes(db.conn()) == 0)
    return NotFoundError("model " + Quoted(m.model_name) + " is not registered");
  return Status::Ok();
}

Status DeleteModelRow(Db& db, std::string_view name) {
  ASSIGN_OR_RETURN(const ModelRecord current, SelectModel(db, name));
  RETURN_IF_ERROR(CheckNotTesting(current, "delete it"));
  ASSIGN_OR_RETURN(Stmt s, db.Prepare("DELETE FROM models WHERE model_name = ?1"));
  s.Bind(1, name);
  return s.Run();
}

Result<AttemptRecord> SelectAttempt(Db& db, AttemptId id) {
  static const std::string sql = Sql("SELECT ", kAttemptColumns, " FROM load_attempts WHERE id = ?1");
  ASSIGN_OR_RETURN(Stmt s, db.Prepare(sql.c_str()));
  s.Bind(1, int64_t{id});
  ASSIGN_OR_RETURN(const bool row, s.Step());
  if (!row) return NotFoundError("no load attempt with id " + std::to_string(id));
  return ReadAttempt(s);
}

Result<std::vector<AttemptRecord>> SelectAttemptsOfModel(Db& db, std::string_view name, int limit) {
  RETURN_IF_ERROR(SelectModel(db, name).status());
  static const std::string sql =
      Sql("SELECT ", kAttemptColumns, " FROM load_attempts WHERE model_name = ?1 ORDER BY id DESC LIMIT ?2");
  ASSIGN_OR_RETURN(Stmt s, db.Prepare(sql.c_str()));
  s.Bind(1, name);
  s.Bind(2, int64_t{limit > 0 ? limit : -1});
  return ReadAll<AttemptRecord>(s, ReadAttempt);
}

Result<std::vector<AttemptRecord>> SelectOpenAttempts(Db& db, std::optional<std::string_view> name) {
  static const std::string all =
      Sql("SELECT ", kAttemptColumns, " FROM load_attempts WHERE finished_at IS NULL ORDER BY id");
  static const std::string of_model = Sql("SELECT ", kAttemptColumns,
                                          " FROM load_attempts WHERE finished_at IS NULL AND model_name = ?1 "
                                          "ORDER BY id");
  ASSIGN_OR_RETURN(Stmt s, db.Prepare(name ? of_model.c_str() : all.c_str()));
  if (name) s.Bind(1, *name);
  return ReadAll<AttemptRecord>(s, ReadAttempt);
}

Result<AttemptId> InsertAttemptRow(Db& db, const AttemptRecord& a, const AttemptOwner& owner) {
  RETURN_IF_ERROR(ValidateLoadConfig(db, a.load_config));
  ASSIGN_OR_RETURN(Stmt s,
                   db.Prepare("INSERT INTO load_attempts (model_name, started_at, forced, status_before, "
                              "load_config, hardware_fingerprint, node_id, environment_class) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
  s.Bind(7, owner.node_id);
  s.Bind(8, owner.environment_class);
  s.Bind(1, a.model_name);
  s.Bind(2, a.started_at.empty() ? NowIso8601() : a.started_at);
  s.Bind(3, int64_t{a.forced ? 1 : 0});
  s.Bind(4, ToString(a.status_before));
  s.Bind(5, a.load_config);
  s.Bind(6, NullIfEmpty(a.hardware_fingerprint));
  Status st = s.Run();
  if (st.code() == StatusCode::kAlreadyExists) {
    return AlreadyExistsError("model " + Quoted(a.model_name) + " already has an open load attempt");
  }
  if (st.code() == StatusCode::kInvalidArgument && st.message().find("FOREIGN KEY") != std::string::npos) {
    return NotFoundError("model " + Quoted(a.model_name) + " is not registered");
  }
  RETURN_IF_ERROR(st);
  return sqlite3_last_insert_rowid(db.conn());
}

Status CloseAttemptRow(Db& db, const AttemptRecord& a) {
  RETURN_IF_ERROR(CloseNeedsOutcome(a));
  ASSIGN_OR_RETURN(Stmt s,
                   db.Prepare("UPDATE load_attempts SET finished_at = ?2, outcome = ?3, status_after = ?4, "
                              "exit_code = ?5, signal = ?6, category = ?7, pattern_id = ?8, summary = ?9, "
                              "matched_line = ?10, log_excerpt = ?11, duration_ms = MAX(0, CAST(ROUND("
                              "(julianday(?2) - julianday(started_at)) * 86400000.0) AS INTEGER)) "
                              "WHERE id = ?1 AND finished_at IS NULL"));
  s.Bind(1, int64_t{a.id});
  s.Bind(2, a.finished_at ? *a.finished_at : NowIso8601());
  s.Bind(3, ToString(*a.outcome));
  s.Bind(4, ToString(*a.status_after));
  s.Bind(5, a.exit_code);
  s.Bind(6, NullIfEmpty(a.signal));
  s.Bind(7, NullIfEmpty(a.category));
  s.Bind(8, NullIfEmpty(a.pattern_id));
  s.Bind(9, NullIfEmpty(a.summary));
  s.Bind(10, NullIfEmpty(a.matched_line));
  s.Bind(11, NullIfEmpty(a.log_excerpt));
  RETURN_IF_ERROR(s.Run());
  if (sqlite3_changes(db.conn()) == 1) return Status::Ok();
  RETURN_IF_ERROR(SelectAttempt(db, a.id).status());
  return FailedPreconditionError("load attempt " + std::to_string(a.id) + " is already finished");
}

Status ReclassifyAttemptRow(Db& db, AttemptId id, AttemptOutcome outcome, CompatStatus status_after) {
  ASSIGN_OR_RETURN(const AttemptRecord current, SelectAttempt(db, id));
  if (current.open()) {
    return FailedPreconditionError("load attempt " + std::to_string(id) + " is still in progress");
  }
  ASSIGN_OR_RETURN(Stmt s, db.Prepare("UPDATE load_attempts SET outcome = ?2, status_after = ?3 WHERE id = ?1"));
  s.Bind(1, int64_t{id});
  s.Bind(2, ToString(outcome));
  s.Bind(3, ToString(status_after));
  return s.Run();
}

Status InsertEnvironmentRow(Db& db, std::string_view fingerprint, std::string_view components) {
  ASSIGN_OR_RETURN(Stmt s, db.Prepare("INSERT OR IGNORE INTO environments (fingerprint, components, first_seen_at) "
                                      "VALUES (?1, ?2, ?3)"));
  s.Bind(1, fingerprint);
  s.Bind(2, components);
  s.Bind(3, NowIso8601());
  return s.Run();
}

Result<std::optional<std::string>> SelectEnvironment(Db& db, std::string_view fingerprint) {
  ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT components FROM environments WHERE fingerprint = ?1"));
  s.Bind(1, fingerprint);
  ASSIGN_OR_RETURN(const bool row, s.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(s.Text(0));
}

Status WriteEnvironmentStateRow(Db& db, const EnvironmentStateRecord& st, bool streak_now) {
  ASSIGN_OR_RETURN(
      Stmt s, db.Prepare("INSERT OR REPLACE INTO environment_state (id, state, reason, since, devices_missing, "
                         "streak_after_attempt, good_devices, updated_at) VALUES (1, ?1, ?2, ?3, ?4, "
                         "CASE WHEN ?5 THEN (SELECT COALESCE(MAX(id), 0) FROM load_attempts WHERE finished_at IS NOT NULL) "
                         "ELSE ?6 END, ?7, ?8)"));
  s.Bind(1, std::string_view(st.failing ? "failing" : "ok"));
  s.Bind(2, st.reason);
  s.Bind(3, st.since);
  s.Bind(4, int64_t{st.devices_missing ? 1 : 0});
  s.Bind(5, int64_t{streak_now ? 1 : 0});
  s.Bind(6, int64_t{st.streak_after});
  s.Bind(7, st.good_devices);
  s.Bind(8, NowIso8601());
  return s.Run();
}

Result<std::optional<EnvironmentStateRecord>> SelectEnvironmentState(Db& db) {
  ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT state, reason, since, devices_missing, streak_after_attempt, good_devices "
                                      "FROM environment_state WHERE id = 1"));
  ASSIGN_OR_RETURN(const bool row, s.Step());
  if (!row) return std::optional<EnvironmentStateRecord>();
  EnvironmentStateRecord st;
  st.failing = s.Text(0) == "failing";
  st.reason = s.OptText(1);
  st.since = s.OptText(2);
  st.devices_missing = s.Int(3) != 0;
  st.streak_after = s.Int(4);
  st.good_devices = s.Text(5);
  return std::optional<EnvironmentStateRecord>(std::move(st));
}

Result<std::vector<AttemptRecord>> SelectRecentLoadOutcomes(Db& db, AttemptId after, int limit) {
  static const std::string sql =
      Sql("SELECT ", kAttemptColumns,
          " FROM load_attempts WHERE id > ?1 AND finished_at IS NOT NULL AND outcome IN ('success', 'failed', "
          "'crashed', 'timeout', 'environment_failure', 'crashed_while_serving', "
          "'hung_while_serving') ORDER BY id DESC LIMIT ?2");
  ASSIGN_OR_RETURN(Stmt s, db.Prepare(sql.c_str()));
  s.Bind(1, int64_t{after});
  s.Bind(2, int64_t{limit > 0 ? limit : -1});
  return ReadAll<AttemptRecord>(s, ReadAttempt);
}

}  // namespace mw::registry_internal
