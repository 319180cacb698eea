// Registry::Open: checks a file before touching it, then sets it up and runs
// the schema migrations. Order matters: every refusal (locked, read-only,
// newer schema, foreign file) happens before the first write, so a file we
// refuse is left byte-for-byte as it was.
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "common/log.h"
#include "registry/registry.h"
#include "registry/sqlite/sqlite_backend.h"
#include "registry/sqlite/sqlite_util.h"

namespace mw {
namespace {

using registry_internal::Db;
using registry_internal::SqliteStatus;

// 'MWRG': marks a file as a modelwarden registry (PRAGMA application_id).
constexpr int kApplicationId = 0x4D575247;

// Ordered migrations: entry i takes the schema from version i to i+1. Never
// edit a shipped entry; append a new one and bump Registry::kSchemaVersion.
constexpr const char* kMigrations[] = {
    // 0 -> 1: the tables of SPEC §3.
    R"sql(
CREATE TABLE models (
  model_name TEXT PRIMARY KEY NOT NULL
    CHECK (length(model_name) BETWEEN 1 AND 128
           AND model_name GLOB '[A-Za-z0-9]*'
           AND model_name NOT GLOB '*[^A-Za-z0-9._-]*'),
  hf_path TEXT,
  cache_location TEXT NOT NULL DEFAULT 'primary' CHECK (length(cache_location) > 0),
  file_path TEXT,
  engine TEXT NOT NULL DEFAULT 'llama.cpp' CHECK (engine IN ('llama.cpp', 'command')),
  compatibility_status TEXT NOT NULL DEFAULT 'unknown'
    CHECK (compatibility_status IN ('unknown', 'compatible', 'incompatible', 'degraded', 'testing')),
  compatibility_notes TEXT,
  load_config TEXT NOT NULL DEFAULT '{}'
    CHECK (json_valid(load_config) AND json_type(load_config) = 'object'),
  total_loads INTEGER NOT NULL DEFAULT 0 CHECK (total_loads >= 0),
  total_failures INTEGER NOT NULL DEFAULT 0 CHECK (total_failures >= 0),
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  last_loaded_at TEXT,
  last_failed_at TEXT
);
CREATE INDEX models_by_status ON models (compatibility_status);

CREATE TABLE load_attempts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  model_name TEXT NOT NULL REFERENCES models (model_name) ON DELETE CASCADE ON UPDATE CASCADE,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  outcome TEXT CHECK (outcome IN ('success', 'failed', 'crashed', 'timeout', 'server_crash', 'cancelled')),
  forced INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1)),
  status_before TEXT NOT NULL
    CHECK (status_before IN ('unknown', 'compatible', 'incompatible', 'degraded', 'testing')),
  status_after TEXT
    CHECK (status_after IN ('unknown', 'compatible', 'incompatible', 'degraded', 'testing')),
  load_config TEXT NOT NULL DEFAULT '{}'
    CHECK (json_valid(load_config) AND json_type(load_config) = 'object'),
  exit_code INTEGER,
  signal TEXT,
  category TEXT,
  pattern_id TEXT,
  summary TEXT,
  matched_line TEXT,
  log_excerpt TEXT,
  duration_ms INTEGER CHECK (duration_ms >= 0),
  hardware_fingerprint TEXT,
  -- closed exactly when it has an outcome and a status after
  CHECK ((finished_at IS NULL) = (outcome IS NULL) AND (finished_at IS NULL) = (status_after IS NULL))
);
CREATE INDEX load_attempts_by_model ON load_attempts (model_name, id);
-- at most one open attempt per model; also finds open attempts fast
CREATE UNIQUE INDEX load_attempts_open ON load_attempts (model_name) WHERE finished_at IS NULL;
)sql",
    // 1 -> 2: all open attempts in id order (startup cleanup) without
    // scanning the whole history; the index holds only the open ones.
    R"sql(
CREATE INDEX load_attempts_open_by_id ON load_attempts (id) WHERE finished_at IS NULL;
)sql",
    // 2 -> 3: outcome 'crashed_while_serving' (SPEC §10). SQLite cannot
    // change a CHECK in place: the table is rebuilt with the same columns,
    // rows, ids and AUTOINCREMENT counter, inside the migration transaction.
    R"sql(
CREATE TABLE load_attempts_v3 (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  model_name TEXT NOT NULL REFERENCES models (model_name) ON DELETE CASCADE ON UPDATE CASCADE,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  outcome TEXT CHECK (outcome IN ('success', 'failed', 'crashed', 'timeout', 'server_crash', 'cancelled',
                                  'crashed_while_serving')),
  forced INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1)),
  status_before TEXT NOT NULL
    CHECK (status_before IN ('unknown', 'compatible', 'incompatible', 'degraded', 'testing')),
  status_after TEXT
    CHECK (status_after IN ('unknown', 'compatible', 'incompatible', 'degraded', 'testing')),
  load_config TEXT NOT NULL DEFAULT '{}'
    CHECK (json_valid(load_config) AND json_type(load_config) = 'object'),
  exit_code INTEGER,
  signal TEXT,
  category TEXT,
  pattern_id TEXT,
  summary TEXT,
  matched_line TEXT,
  log_excerpt TEXT,
  duration_ms INTEGER CHECK (duration_ms >= 0),
  hardware_fingerprint TEXT,
  CHECK ((finished_at IS NULL) = (outcome IS NULL) AND (finished_at IS NULL) = (status_after IS NULL))
);
INSERT INTO load_attempts_v3 SELECT * FROM load_attempts;
DELETE FROM sqlite_sequence WHERE name = 'load_attempts_v3';
INSERT INTO sqlite_sequence (name, seq) SELECT 'load_attempts_v3', seq FROM sqlite_sequence WHERE name = 'load_attempts';
DROP TABLE load_attempts;
ALTER TABLE load_attempts_v3 RENAME TO load_attempts;
CREATE INDEX load_attempts_by_model ON load_attempts (model_name, id);
CREATE UNIQUE INDEX load_attempts_open ON load_attempts (model_name) WHERE finished_at IS NULL;
CREATE INDEX load_attempts_open_by_id ON load_attempts (id) WHERE finished_at IS NULL;
)sql",
    // 3 -> 4 (SPEC §11): outcome 'environment_failure' (the table is rebuilt
    // again the same way: every row, id and the AUTOINCREMENT high-water mark
    // are kept); models.verdict_fingerprint (NULL for verdicts made before:
    // their environment is unknown); the components behind each fingerprint,
    // for stale-verdict reasons.
    R"sql(
CREATE TABLE load_attempts_v4 (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  model_name TEXT NOT NULL REFERENCES models (model_name) ON DELETE CASCADE ON UPDATE CASCADE,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  outcome TEXT CHECK (outcome IN ('success', 'failed', 'crashed', 'timeout', 'server_crash', 'cancelled',
                                  'crashed_while_serving', 'environment_failure')),
  forced INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1)),
  status_before TEXT NOT NULL
    CHECK (status_before IN ('unknown', 'compatible', 'incompatible', 'degraded', 'testing')),
  status_after TEXT
    CHECK (status_after IN ('unknown', 'compatible', 'incompatible', 'degraded', 'testing')),
  load_config TEXT NOT NULL DEFAULT '{}'
    CHECK (json_valid(load_config) AND json_type(load_config) = 'object'),
  exit_code INTEGER,
  signal TEXT,
  category TEXT,
  pattern_id TEXT,
  summary TEXT,
  matched_line TEXT,
  log_excerpt TEXT,
  duration_ms INTEGER CHECK (duration_ms >= 0),
  hardware_fingerprint TEXT,
  CHECK ((finished_at IS NULL) = (outcome IS NULL) AND (finished_at IS NULL) = (status_after IS NULL))
);
INSERT INTO load_attempts_v4 SELECT * FROM load_attempts;
DELETE FROM sqlite_sequence WHERE name = 'load_attempts_v4';
INSERT INTO sqlite_sequence (name, seq) SELECT 'load_attempts_v4', seq FROM sqlite_sequence WHERE name = 'load_attempts';
DROP TABLE load_attempts;
ALTER TABLE load_attempts_v4 RENAME TO load_attempts;
CREATE INDEX load_attempts_by_model ON load_attempts (model_name, id);
CREATE UNIQUE INDEX load_attempts_open ON load_attempts (model_name) WHERE finished_at IS NULL;
CREATE INDEX load_attempts_open_by_id ON load_attempts (id) WHERE finished_at IS NULL;
ALTER TABLE models ADD COLUMN verdict_fingerprint TEXT;
CREATE TABLE environments (
  fingerprint TEXT PRIMARY KEY NOT NULL,
  components TEXT NOT NULL,
  first_seen_at TEXT NOT NULL
);
)sql",
    // 4 -> 5 (SPEC §11): the environment state survives a restart. One row;
    // the streak's failed attempts stay in load_attempts (those after
    // streak_after_attempt and the last success count).
    R"sql(
CREATE TABLE environment_state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  state TEXT NOT NULL CHECK (state IN ('ok', 'failing')),
  reason TEXT,
  since TEXT,
  devices_missing INTEGER NOT NULL DEFAULT 0 CHECK (devices_missing IN (0, 1)),
  streak_after_attempt INTEGER NOT NULL DEFAULT 0,
  good_devices TEXT NOT NULL DEFAULT '',
  updated_at TEXT NOT NULL
);
)sql",
    // 5 -> 6 (SPEC §14): the server as a node. Each attempt records the node
    // that made it and its environment class (NULL before: a startup
    // cleanup closes those); the node's lease, measured in heartbeat_ms on
    // the database's clock. SQLite keeps one verdict per model (one server
    // per file); PostgreSQL adds one per environment class (pg_schema.cpp).
    R"sql(
ALTER TABLE load_attempts ADD COLUMN node_id TEXT;
ALTER TABLE load_attempts ADD COLUMN environment_class TEXT;
CREATE INDEX load_attempts_open_by_node ON load_attempts (node_id, id) WHERE finished_at IS NULL;
CREATE TABLE nodes (
  node_id TEXT PRIMARY KEY NOT NULL,
  host TEXT NOT NULL,
  environment_class TEXT NOT NULL DEFAULT '',
  lease_s INTEGER NOT NULL CHECK (lease_s > 0),
  epoch INTEGER NOT NULL CHECK (epoch > 0),
  lease_state TEXT NOT NULL CHECK (lease_state IN ('held', 'expired', 'stopped')),
  started_at TEXT NOT NULL,
  heartbeat_at TEXT NOT NULL,
  heartbeat_ms INTEGER NOT NULL,
  loaded_models TEXT NOT NULL DEFAULT '',
  expired_by TEXT
);
)sql",
    // 6 -> 7 (SPEC §19): outcome 'hung_while_serving' (the health watch
    // stopped a loaded engine that answered nothing). The table is rebuilt
    // as in 2 -> 3 (every row, id and the AUTOINCREMENT high-water mark
    // kept), now with 5 -> 6's node_id and environment_class.
    R"sql(
CREATE TABLE load_attempts_v7 (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  model_name TEXT NOT NULL REFERENCES models (model_name) ON DELETE CASCADE ON UPDATE CASCADE,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  outcome TEXT CHECK (outcome IN ('success', 'failed', 'crashed', 'timeout', 'server_crash', 'cancelled',
                                  'crashed_while_serving', 'environment_failure', 'hung_while_serving')),
  forced INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1)),
  status_before TEXT NOT NULL
    CHECK (status_before IN ('unknown', 'compatible', 'incompatible', 'degraded', 'testing')),
  status_after TEXT
    CHECK (status_after IN ('unknown', 'compatible', 'incompatible', 'degraded', 'testing')),
  load_config TEXT NOT NULL DEFAULT '{}'
    CHECK (json_valid(load_config) AND json_type(load_config) = 'object'),
  exit_code INTEGER,
  signal TEXT,
  category TEXT,
  pattern_id TEXT,
  summary TEXT,
  matched_line TEXT,
  log_excerpt TEXT,
  duration_ms INTEGER CHECK (duration_ms >= 0),
  hardware_fingerprint TEXT,
  node_id TEXT,
  environment_class TEXT,
  CHECK ((finished_at IS NULL) = (outcome IS NULL) AND (finished_at IS NULL) = (status_after IS NULL))
);
INSERT INTO load_attempts_v7 SELECT * FROM load_attempts;
DELETE FROM sqlite_sequence WHERE name = 'load_attempts_v7';
INSERT INTO sqlite_sequence (name, seq) SELECT 'load_attempts_v7', seq FROM sqlite_sequence WHERE name = 'load_attempts';
DROP TABLE load_attempts;
ALTER TABLE load_attempts_v7 RENAME TO load_attempts;
CREATE INDEX load_attempts_by_model ON load_attempts (model_name, id);
CREATE UNIQUE INDEX load_attempts_open ON load_attempts (model_name) WHERE finished_at IS NULL;
CREATE INDEX load_attempts_open_by_id ON load_attempts (id) WHERE finished_at IS NULL;
CREATE INDEX load_attempts_open_by_node ON load_attempts (node_id, id) WHERE finished_at IS NULL;
)sql",
    // 7 -> 8 (SPEC §21): the address a node's peers reach it at
    // (server option advertise_url; '' when it has none: never routed to).
    R"sql(
ALTER TABLE nodes ADD COLUMN advertise_url TEXT NOT NULL DEFAULT '';
)sql",
};
static_assert(std::size(kMigrations) == Registry::kSchemaVersion, "one migration per schema version");

// Reads one integer PRAGMA (or query) without writing anything.
Result<int64_t> QueryInt(Db& db, const char* sql, std::string_view what) {
  ASSIGN_OR_RETURN(auto stmt, db.Prepare(sql));
  ASSIGN_OR_RETURN(const bool row, stmt.Step());
  if (!row) return InternalError(std::string(what) + ": no result");
  return stmt.Int(0);
}

// What each refusal says: the file, the problem, and what to do.
Status Explain(const Status& st, const std::string& path) {
  const std::string file = "registry database '" + path + "'";
  // Storage errors (read-only, disk full) already name the file and say what to do.
  if (st.message().find("'" + path + "'") != std::string::npos) return st;
  switch (st.code()) {
    case StatusCode::kUnavailable:
      return UnavailableError(file +
                              " is locked by another process (is another modelwarden server running on it?); "
                              "stop that process or use a different data directory [" +
                              st.message() + "]");
    case StatusCode::kPermissionDenied:
      return PermissionDeniedError(file +
                                   " is read-only or its directory is not writable; fix the permissions "
                                   "(the server needs to write the file and create '" +
                                   path + "-wal' beside it) or use a different data directory [" +
                                   st.message() + "]");
    case StatusCode::kDataLoss:
      return DataLossError(file +
                           " is not a modelwarden database or is corrupt; it was left untouched: move it "
                           "away or use a different data directory [" +
                           st.message() + "]");
    default:
      return st.WithContext(file);
  }
}

// Refuses a file that is not ours or is too new. Reads only.
Status CheckFileIsOurs(Db& db, int64_t version) {
  ASSIGN_OR_RETURN(const int64_t app_id, QueryInt(db, "PRAGMA application_id", "reading application_id"));
  if (app_id != 0 && app_id != kApplicationId) {
    return DataLossError("the file belongs to another application (application_id " + std::to_string(app_id) +
                         ")");
  }
  if (version > Registry::kSchemaVersion) {
    return FailedPreconditionError(
        "registry database '" + db.path() + "' has schema version " + std::to_string(version) +
        ", newer than this modelwarden supports (" + std::to_string(Registry::kSchemaVersion) +
        "); it was left untouched: upgrade modelwarden or use a different data directory");
  }
  if (version == 0) {
    // A fresh file has no tables; anything else with version 0 is someone else's.
    ASSIGN_OR_RETURN(const int64_t tables,
                     QueryInt(db, "SELECT count(*) FROM sqlite_schema", "reading the schema"));
    if (tables != 0) return DataLossError("an SQLite database with other tables, not a modelwarden registry");
  }
  return Status::Ok();
}

Status Migrate(Db& db, int64_t from) {
  // BEGIN EXCLUSIVE: no other connection writes (or, with a rollback
  // journal, reads) while the schema may change; a file another program
  // holds in a write transaction is refused here (kUnavailable) before any change.
  RETURN_IF_ERROR(db.Exec("BEGIN EXCLUSIVE", "starting the migration transaction"));
  for (int64_t v = from; v < Registry::kSchemaVersion; ++v) {
    Status st = db.Exec(kMigrations[v], "migrating the schema");
    if (!st.ok()) {
      (void)db.Exec("ROLLBACK", "rolling back the migration");
      return st.WithContext("schema version " + std::to_string(v) + " -> " + std::to_string(v + 1));
    }
  }
  if (from < Registry::kSchemaVersion) {
    const std::string pragmas = "PRAGMA application_id = " + std::to_string(kApplicationId) +
                                "; PRAGMA user_version = " + std::to_string(Registry::kSchemaVersion);
    Status st = db.Exec(pragmas.c_str(), "recording the schema version");
    if (!st.ok()) {
      (void)db.Exec("ROLLBACK", "rolling back the migration");
      return st;
    }
  }
  // COMMIT POINT: the migrated schema and its version become durable together.
  Status st = db.Exec("COMMIT", "committing the migration");
  if (!st.ok()) (void)db.Exec("ROLLBACK", "rolling back the migration");
  if (st.ok() && from < Registry::kSchemaVersion) {
    MW_LOG(kInfo, "registry") << "migrated " << db.path() << " from schema version " << from << " to "
                              << Registry::kSchemaVersion;
  }
  return st;
}

// Whether this process may write the file (if it exists) and its directory.
bool Writable(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  if (access(dir.empty() ? "." : dir.c_str(), W_OK) != 0) return false;
  return access(path.c_str(), F_OK) != 0 || access(path.c_str(), W_OK) == 0;
}

Status Setup(Db& db, const OpenOptions& options) {
  sqlite3_busy_timeout(db.conn(), options.busy_timeout_ms);
  // SQLite silently falls back to read-only for a file it cannot write.
  if (sqlite3_db_readonly(db.conn(), "main") == 1) {
    return PermissionDeniedError("SQLite opened the file read-only");
  }
  // First read of the file: fails with NOTADB on a foreign file, BUSY when
  // another process holds it, and an I/O error when the WAL of a read-only
  // directory cannot be opened.
  auto version_or = QueryInt(db, "PRAGMA user_version", "reading the schema version");
  if (!version_or.ok()) {
    if (version_or.status().code() != StatusCode::kDataLoss && !Writable(db.path())) {
      return PermissionDeniedError("the file or its directory is read-only [" +
                                   version_or.status().message() + "]");
    }
    return version_or.status();
  }
  const int64_t version = *version_or;
  RETURN_IF_ERROR(CheckFileIsOurs(db, version));
  // From here on the file is ours and may be written.
  {
    ASSIGN_OR_RETURN(auto stmt, db.Prepare("PRAGMA journal_mode = WAL"));
    ASSIGN_OR_RETURN(const bool row, stmt.Step());
    if (!row || stmt.Text(0) != "wal") {
      return PermissionDeniedError("could not switch to WAL journal mode (got '" + (row ? stmt.Text(0) : "") +
                                   "')");
    }
  }
  // FULL: a commit fsyncs the WAL before returning, so a returned commit
  // survives power loss; the state machine's commit points rely on this.
  RETURN_IF_ERROR(db.Exec("PRAGMA synchronous = FULL", "setting synchronous=FULL"));
  RETURN_IF_ERROR(db.Exec("PRAGMA foreign_keys = ON", "enabling foreign keys"));
  // SQLite's page cache, per connection: 1 MiB (negative = KiB), not the
  // 2 MiB default. A server's working set is its models' rows, their indexes
  // and their latest attempts; load_attempts only grows, and the cache filled
  // with its pages as it did (the 30-minute soak: ~72 KiB a minute of the
  // server's RSS, SQLite's own sqlite3_memory_used()). Pages beyond it are
  // read again from the OS page cache. Bulk transactions raise it for their
  // own duration (SqliteBackend::Begin).
  RETURN_IF_ERROR(db.Exec("PRAGMA cache_size = -1024", "setting the page cache size"));
  return Migrate(db, version);
}

Status EnsureParentDirectory(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) return Status::Ok();
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (!ec) return Status::Ok();
  const std::string msg = "cannot create the directory '" + parent.string() + "' of registry database '" +
                          path + "': " + ec.message();
  if (ec == std::errc::permission_denied || ec == std::errc::read_only_file_system) {
    return PermissionDeniedError(msg);
  }
  return InternalError(msg);
}

}  // namespace

namespace registry_internal {

Result<std::unique_ptr<Backend>> OpenSqlite(const std::string& path, const OpenOptions& options) {
  if (path.empty()) return InvalidArgumentError("registry database path is empty");
  RETURN_IF_ERROR(EnsureParentDirectory(path));
  sqlite3* conn = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  const int rc = sqlite3_open_v2(path.c_str(), &conn, flags, nullptr);
  // Db owns conn from here, even when open failed (close_v2 accepts it).
  auto db = std::make_unique<Db>(conn, path);
  if (rc != SQLITE_OK) return Explain(SqliteStatus(conn, rc, "opening"), path);
  Status st = Setup(*db, options);
  if (!st.ok()) return Explain(st, path);
  return std::unique_ptr<Backend>(new SqliteBackend(std::move(db)));
}

}  // namespace registry_internal
}  // namespace mw
