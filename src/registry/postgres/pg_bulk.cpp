// PgBackend::WriteStatesAndCloseAttemptRows: many verdicts and attempt
// closes in two statements (unnest over array parameters), so that the
// startup cleanup of thousands of stuck models costs two round trips, not
// two per model. libpqxx 6.4 has no array parameters: the arrays are sent
// as PostgreSQL array literals (text), every element quoted.
#include "common/time_util.h"
#include "registry/postgres/pg_backend.h"

namespace mw::registry_internal {
namespace {

using Column = std::vector<std::optional<std::string>>;

// {"a","b\"c",NULL}
std::string ArrayLiteral(const Column& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    if (!values[i]) {
      out += "NULL";
      continue;
    }
    out += '"';
    for (char c : *values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::optional<std::string> Text(const std::optional<std::string>& v) { return NullIfEmpty(v); }
std::optional<std::string> Number(int64_t v) { return std::to_string(v); }
std::optional<std::string> Number(const std::optional<int64_t>& v) {
  return v ? std::optional<std::string>(std::to_string(*v)) : std::nullopt;
}

}  // namespace

Status PgBackend::WriteStatesAndCloseAttemptRows(const std::vector<ModelRecord>& models,
                                                 const std::vector<AttemptRecord>& attempts) {
  for (const AttemptRecord& a : attempts) RETURN_IF_ERROR(CloseNeedsOutcome(a));
  const std::string now = NowIso8601();
  if (!models.empty()) {
    Column name, cls, status, notes, loads, failures, loaded_at, failed_at, fingerprint;
    for (const ModelRecord& m : models) {
      NoteChanged(m.model_name);
      name.push_back(m.model_name);
      cls.push_back(m.environment_class);
      status.push_back(std::string(ToString(m.compatibility_status)));
      notes.push_back(Text(m.compatibility_notes));
      loads.push_back(Number(m.total_loads));
      failures.push_back(Number(m.total_failures));
      loaded_at.push_back(m.last_loaded_at);
      failed_at.push_back(m.last_failed_at);
      fingerprint.push_back(Text(m.verdict_fingerprint));
    }
    Status st = Write("writing models' states", [&](pqxx::transaction_base& tx) -> Status {
      tx.exec_params(
          "INSERT INTO model_verdicts (model_name, environment_class, compatibility_status, compatibility_notes, "
          "total_loads, total_failures, last_loaded_at, last_failed_at, verdict_fingerprint, updated_at) "
          "SELECT n, c, s, nt, tl, tf, ll, lf, vf, $10 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
          "$5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[]) AS u(n, c, s, nt, tl, tf, ll, lf, vf) "
          "ON CONFLICT (model_name, environment_class) DO UPDATE SET "
          "compatibility_status = EXCLUDED.compatibility_status, compatibility_notes = EXCLUDED.compatibility_notes, "
          "total_loads = EXCLUDED.total_loads, total_failures = EXCLUDED.total_failures, "
          "last_loaded_at = EXCLUDED.last_loaded_at, last_failed_at = EXCLUDED.last_failed_at, "
          "verdict_fingerprint = EXCLUDED.verdict_fingerprint, updated_at = EXCLUDED.updated_at",
          ArrayLiteral(name), ArrayLiteral(cls), ArrayLiteral(status), ArrayLiteral(notes), ArrayLiteral(loads),
          ArrayLiteral(failures), ArrayLiteral(loaded_at), ArrayLiteral(failed_at), ArrayLiteral(fingerprint), now);
      return Status::Ok();
    });
    if (st.code() == StatusCode::kInvalidArgument && st.message().find("FOREIGN KEY") != std::string::npos) {
      return NotFoundError("a model whose state was written is not registered");
    }
    RETURN_IF_ERROR(st);
  }
  if (attempts.empty()) return Status::Ok();
  Column id, finished, outcome, after, exit_code, signal, category, pattern, summary, matched, excerpt;
  for (const AttemptRecord& a : attempts) {
    id.push_back(Number(a.id));
    finished.push_back(a.finished_at ? *a.finished_at : now);
    outcome.push_back(std::string(ToString(*a.outcome)));
    after.push_back(std::string(ToString(*a.status_after)));
    exit_code.push_back(Number(a.exit_code));
    signal.push_back(Text(a.signal));
    category.push_back(Text(a.category));
    pattern.push_back(Text(a.pattern_id));
    summary.push_back(Text(a.summary));
    matched.push_back(Text(a.matched_line));
    excerpt.push_back(Text(a.log_excerpt));
  }
  return Write("closing load attempts", [&](pqxx::transaction_base& tx) -> Status {
    const auto r = tx.exec_params(
        "UPDATE load_attempts a SET finished_at = u.f, outcome = u.o, status_after = u.s, exit_code = u.ec, "
        "signal = u.sg, category = u.ca, pattern_id = u.p, summary = u.su, matched_line = u.ml, log_excerpt = u.le, "
        "duration_ms = GREATEST(0, round(extract(epoch FROM (u.f::timestamptz - a.started_at::timestamptz)) * "
        "1000))::bigint FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], "
        "$7::text[], $8::text[], $9::text[], $10::text[], $11::text[]) AS u(id, f, o, s, ec, sg, ca, p, su, ml, le) "
        "WHERE a.id = u.id AND a.finished_at IS NULL RETURNING a.model_name",
        ArrayLiteral(id), ArrayLiteral(finished), ArrayLiteral(outcome), ArrayLiteral(after), ArrayLiteral(exit_code),
        ArrayLiteral(signal), ArrayLiteral(category), ArrayLiteral(pattern), ArrayLiteral(summary),
        ArrayLiteral(matched), ArrayLiteral(excerpt));
    for (const auto& row : r) NoteChanged(row[0].as<std::string>());
    if (r.affected_rows() != attempts.size()) {
      return FailedPreconditionError("closing " + std::to_string(attempts.size()) + " load attempts: " +
                                     std::to_string(attempts.size() - r.affected_rows()) +
                                     " were already finished or are gone");
    }
    return Status::Ok();
  });
}

}  // namespace mw::registry_internal
