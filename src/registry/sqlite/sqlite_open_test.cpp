// Registry::Open on files it must refuse, each a real file, and each left
// byte-for-byte unchanged: locked by another tool, read-only, newer
// schema, not a database, someone else's database.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "registry/registry.h"
#include "support/registry_test_util.h"

namespace mw {
namespace {

using testing_util::FileExists;
using testing_util::RawExec;
using testing_util::ReadFileBytes;
using testing_util::TempDir;
using testing_util::WriteFileBytes;

// Creates a registry with one model and closes it.
void MakeRegistry(const std::string& path) {
  auto reg = Registry::Open(path);
  ASSERT_TRUE(reg.ok()) << reg.status().ToString();
  ModelRecord m;
  m.model_name = "m";
  ASSERT_TRUE((*reg)->AddModel(m).ok());
}

// A child process that holds `path` open until the parent closes the pipe.
// `how` chooses the holder: a modelwarden Registry, or a plain SQLite
// connection inside BEGIN EXCLUSIVE (any other tool).
class LockHolder {
 public:
  enum class How { kRegistry, kRawExclusive };
  LockHolder(const std::string& path, How how) {
    int ready[2];
    int hold[2];
    if (pipe(ready) != 0 || pipe(hold) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      close(ready[0]);
      close(hold[1]);
      std::unique_ptr<Registry> reg;
      sqlite3* raw = nullptr;
      bool ok = false;
      if (how == How::kRegistry) {
        auto r = Registry::Open(path);
        ok = r.ok();
        if (ok) reg = std::move(r).value();
      } else {
        ok = sqlite3_open(path.c_str(), &raw) == SQLITE_OK &&
             sqlite3_exec(raw, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK;
      }
      const char c = ok ? 'R' : 'E';
      (void)!write(ready[1], &c, 1);
      char buf;
      (void)!read(hold[0], &buf, 1);  // returns 0 when the parent closes
      _exit(0);
    }
    close(ready[1]);
    close(hold[0]);
    hold_fd_ = hold[1];
    char c = 0;
    ready_ = read(ready[0], &c, 1) == 1 && c == 'R';
    close(ready[0]);
  }
  ~LockHolder() {
    if (hold_fd_ >= 0) close(hold_fd_);
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
  }
  bool ready() const { return ready_; }

 private:
  pid_t pid_ = -1;
  int hold_fd_ = -1;
  bool ready_ = false;
};

TEST(RegistryOpen, CreatesParentDirectoriesAndReopens) {
  TempDir dir;
  const std::string path = dir.File("a/b/registry.db");
  MakeRegistry(path);
  auto reg = Registry::Open(path);
  ASSERT_TRUE(reg.ok()) << reg.status().ToString();
  EXPECT_TRUE((*reg)->GetModel("m").ok());
  EXPECT_TRUE((*reg)->CheckIntegrity().ok());
}

// The registry no longer locks the file for its lifetime (one server per
// data directory is the server's own lock, common/pid_lock.h): another
// program reads it while a server has it open (SPEC §13: sqlite3 .dump, backups).
TEST(RegistryOpen, AnotherProcessReadsWhileTheRegistryIsOpen) {
  TempDir dir;
  const std::string path = dir.File("registry.db");
  MakeRegistry(path);
  LockHolder holder(path, LockHolder::How::kRegistry);
  ASSERT_TRUE(holder.ready());
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &reader, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(reader, "SELECT count(*) FROM models", -1, &stmt, nullptr), SQLITE_OK)
      << sqlite3_errmsg(reader);
  EXPECT_EQ(sqlite3_step(stmt), SQLITE_ROW) << sqlite3_errmsg(reader);
  EXPECT_EQ(sqlite3_column_int(stmt, 0), 1);
  sqlite3_finalize(stmt);
  sqlite3_close(reader);
}

TEST(RegistryOpen, LockedByAnotherToolIsUnavailableAndUntouched) {
  TempDir dir;
  const std::string path = dir.File("registry.db");
  MakeRegistry(path);
  const std::string before = ReadFileBytes(path);
  {
    LockHolder holder(path, LockHolder::How::kRawExclusive);
    ASSERT_TRUE(holder.ready());
    auto reg = Registry::Open(path, OpenOptions{.busy_timeout_ms = 100});
    ASSERT_FALSE(reg.ok());
    EXPECT_EQ(reg.status().code(), StatusCode::kUnavailable) << reg.status().ToString();
  }
  EXPECT_EQ(ReadFileBytes(path), before);
  auto reg = Registry::Open(path);  // free again once the holder is gone
  ASSERT_TRUE(reg.ok()) << reg.status().ToString();
  EXPECT_TRUE((*reg)->CheckIntegrity().ok());
}

// Opens `path` in a child process as an unprivileged user (root ignores file
// modes) and returns the StatusCode as its exit status (100+ for test errors).
int OpenAsUnprivilegedUser(const std::string& path) {
  const pid_t pid = fork();
  if (pid < 0) return 200;
  if (pid == 0) {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(100);
    auto reg = Registry::Open(path);
    if (reg.ok()) _exit(101);
    if (reg.status().message().find("read-only") == std::string::npos) {
      fprintf(stderr, "%s\n", reg.status().ToString().c_str());
      _exit(102);
    }
    _exit(static_cast<int>(reg.status().code()));
  }
  int wstatus = 0;
  if (waitpid(pid, &wstatus, 0) != pid || !WIFEXITED(wstatus)) return 201;
  return WEXITSTATUS(wstatus);
}

TEST(RegistryOpen, ReadOnlyFileIsPermissionDeniedAndUntouched) {
  TempDir dir;
  const std::string path = dir.File("registry.db");
  MakeRegistry(path);
  ASSERT_EQ(chmod(path.c_str(), 0444), 0);
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  const std::string before = ReadFileBytes(path);
  EXPECT_EQ(OpenAsUnprivilegedUser(path), static_cast<int>(StatusCode::kPermissionDenied));
  EXPECT_EQ(ReadFileBytes(path), before);
  EXPECT_FALSE(FileExists(path + "-wal"));
}

TEST(RegistryOpen, ReadOnlyDirectoryIsPermissionDeniedAndUntouched) {
  TempDir dir;
  const std::string path = dir.File("registry.db");
  MakeRegistry(path);
  // The file is writable by everyone, but its directory is not: the WAL
  // cannot be created beside it.
  ASSERT_EQ(chmod(path.c_str(), 0666), 0);
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  const std::string before = ReadFileBytes(path);
  if (geteuid() != 0) {
    ASSERT_EQ(chmod(dir.path().c_str(), 0555), 0);
  }
  EXPECT_EQ(OpenAsUnprivilegedUser(path), static_cast<int>(StatusCode::kPermissionDenied));
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  EXPECT_EQ(ReadFileBytes(path), before);
}

TEST(RegistryOpen, NewerSchemaIsFailedPreconditionAndUntouched) {
  TempDir dir;
  const std::string path = dir.File("registry.db");
  MakeRegistry(path);
  ASSERT_EQ(RawExec(path, "PRAGMA user_version = 99"), "");
  const std::string before = ReadFileBytes(path);
  auto reg = Registry::Open(path);
  ASSERT_FALSE(reg.ok());
  EXPECT_EQ(reg.status().code(), StatusCode::kFailedPrecondition) << reg.status().ToString();
  EXPECT_NE(reg.status().message().find("schema version 99"), std::string::npos);
  EXPECT_NE(reg.status().message().find("upgrade modelwarden"), std::string::npos);
  EXPECT_EQ(ReadFileBytes(path), before);
}

TEST(RegistryOpen, NotADatabaseIsDataLossAndUntouched) {
  TempDir dir;
  const std::string path = dir.File("registry.db");
  std::string junk = "this is my thesis, not a database\n";
  for (int i = 0; i < 200; ++i) junk += "line " + std::to_string(i) + "\n";
  WriteFileBytes(path, junk);
  auto reg = Registry::Open(path);
  ASSERT_FALSE(reg.ok());
  EXPECT_EQ(reg.status().code(), StatusCode::kDataLoss) << reg.status().ToString();
  EXPECT_NE(reg.status().message().find("not a modelwarden database"), std::string::npos);
  EXPECT_EQ(ReadFileBytes(path), junk);
  EXPECT_FALSE(FileExists(path + "-wal"));
}

TEST(RegistryOpen, SomeoneElsesDatabaseIsDataLossAndUntouched) {
  TempDir dir;
  const std::string other = dir.File("other.db");
  ASSERT_EQ(RawExec(other, "CREATE TABLE photos (id INTEGER); INSERT INTO photos VALUES (1)"), "");
  const std::string before = ReadFileBytes(other);
  auto reg = Registry::Open(other);
  ASSERT_FALSE(reg.ok());
  EXPECT_EQ(reg.status().code(), StatusCode::kDataLoss) << reg.status().ToString();
  EXPECT_EQ(ReadFileBytes(other), before);

  const std::string tagged = dir.File("tagged.db");
  ASSERT_EQ(RawExec(tagged, "PRAGMA application_id = 1234"), "");
  const std::string tagged_before = ReadFileBytes(tagged);
  EXPECT_EQ(Registry::Open(tagged).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(ReadFileBytes(tagged), tagged_before);
}

TEST(RegistryOpen, EmptyPathIsInvalid) {
  EXPECT_EQ(Registry::Open("").status().code(), StatusCode::kInvalidArgument);
}

// A file written by schema version 2 (before SPEC §10 and §11), as that
// build left it: a model with a closed and a deleted attempt. Migrations 3
// and 4 each rebuild load_attempts (a CHECK cannot be altered in SQLite):
// every row, every value and the AUTOINCREMENT high-water mark must survive,
// and both new outcomes must be accepted afterwards.
TEST(RegistryOpen, SchemaVersion2MigratesWithoutLosingAnything) {
  TempDir dir;
  const std::string path = dir.File("registry.db");
  const char* v2 = R"sql(
CREATE TABLE models (model_name TEXT PRIMARY KEY NOT NULL, hf_path TEXT,
  cache_location TEXT NOT NULL DEFAULT 'primary', file_path TEXT, engine TEXT NOT NULL DEFAULT 'llama.cpp',
  compatibility_status TEXT NOT NULL DEFAULT 'unknown', compatibility_notes TEXT,
  load_config TEXT NOT NULL DEFAULT '{}', total_loads INTEGER NOT NULL DEFAULT 0,
  total_failures INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
  last_loaded_at TEXT, last_failed_at TEXT);
CREATE INDEX models_by_status ON models (compatibility_status);
CREATE TABLE load_attempts (id INTEGER PRIMARY KEY AUTOINCREMENT,
  model_name TEXT NOT NULL REFERENCES models (model_name) ON DELETE CASCADE ON UPDATE CASCADE,
  started_at TEXT NOT NULL, finished_at TEXT,
  outcome TEXT CHECK (outcome IN ('success', 'failed', 'crashed', 'timeout', 'server_crash', 'cancelled')),
  forced INTEGER NOT NULL DEFAULT 0, status_before TEXT NOT NULL, status_after TEXT,
  load_config TEXT NOT NULL DEFAULT '{}', exit_code INTEGER, signal TEXT, category TEXT, pattern_id TEXT,
  summary TEXT, matched_line TEXT, log_excerpt TEXT, duration_ms INTEGER, hardware_fingerprint TEXT);
CREATE INDEX load_attempts_by_model ON load_attempts (model_name, id);
CREATE UNIQUE INDEX load_attempts_open ON load_attempts (model_name) WHERE finished_at IS NULL;
CREATE INDEX load_attempts_open_by_id ON load_attempts (id) WHERE finished_at IS NULL;
INSERT INTO models (model_name, compatibility_status, compatibility_notes, total_loads, total_failures,
  created_at, updated_at) VALUES ('m', 'incompatible', 'Hardware incompatibility detected: x', 1, 1, 't0', 't1');
INSERT INTO load_attempts (model_name, started_at, finished_at, outcome, status_before, status_after,
  exit_code, signal, category, summary, duration_ms, hardware_fingerprint)
  VALUES ('m', 's1', 'f1', 'success', 'unknown', 'compatible', NULL, NULL, NULL, NULL, 5, 'gpu:A'),
         ('m', 's2', 'f2', 'crashed', 'compatible', 'incompatible', 134, 'SIGABRT', 'gpu_context', 'x', 7, 'gpu:A'),
         ('m', 's3', 'f3', 'cancelled', 'incompatible', 'incompatible', NULL, NULL, NULL, NULL, 1, NULL);
DELETE FROM load_attempts WHERE id = 3;
PRAGMA application_id = 1297568327;
PRAGMA user_version = 2;
)sql";
  ASSERT_EQ(RawExec(path, v2), "");
  const std::string rows_before = testing_util::RawQuery(
      path, "SELECT group_concat(id || '|' || outcome || '|' || status_after || '|' || coalesce(signal, '-') || '|' || "
            "coalesce(hardware_fingerprint, '-'), ';') FROM load_attempts");
  {
    auto reg = Registry::Open(path);
    ASSERT_TRUE(reg.ok()) << reg.status().ToString();
    auto m = (*reg)->GetModel("m");
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->compatibility_status, CompatStatus::kIncompatible);
    EXPECT_EQ(m->compatibility_notes.value_or(""), "Hardware incompatibility detected: x");
    EXPECT_FALSE(m->verdict_fingerprint.has_value());
    auto tx = (*reg)->BeginWrite();
    ASSERT_TRUE(tx.ok());
    AttemptRecord a;
    a.model_name = "m";
    a.status_before = CompatStatus::kIncompatible;
    auto id = tx->InsertAttempt(a);
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    EXPECT_EQ(*id, 4) << "the AUTOINCREMENT high-water mark (3, deleted) is kept";
    a.id = *id;
    a.outcome = AttemptOutcome::kEnvironmentFailure;
    a.status_after = CompatStatus::kIncompatible;
    ASSERT_TRUE(tx->CloseAttempt(a).ok());
    AttemptRecord b;
    b.model_name = "m";
    b.status_before = CompatStatus::kIncompatible;
    auto id2 = tx->InsertAttempt(b);
    ASSERT_TRUE(id2.ok()) << id2.status().ToString();
    EXPECT_EQ(*id2, 5);
    b.id = *id2;
    b.outcome = AttemptOutcome::kCrashedWhileServing;
    b.status_after = CompatStatus::kIncompatible;
    ASSERT_TRUE(tx->CloseAttempt(b).ok());
    ASSERT_TRUE(tx->RecordEnvironment("fp1", "llama.cpp=b1\n").ok());
    ASSERT_TRUE(tx->Commit().ok());
    auto env = (*reg)->GetEnvironment("fp1");
    ASSERT_TRUE(env.ok());
    EXPECT_EQ(env->value_or(""), "llama.cpp=b1\n");
  }
  EXPECT_EQ(testing_util::RawQuery(path, "PRAGMA user_version"), std::to_string(Registry::kSchemaVersion));
  EXPECT_EQ(testing_util::RawQuery(
                path, "SELECT group_concat(id || '|' || outcome || '|' || status_after || '|' || "
                      "coalesce(signal, '-') || '|' || coalesce(hardware_fingerprint, '-'), ';') FROM load_attempts "
                      "WHERE id < 4"),
            rows_before);
  EXPECT_EQ(rows_before, "1|success|compatible|-|gpu:A;2|crashed|incompatible|SIGABRT|gpu:A");
  EXPECT_EQ(testing_util::RawQuery(path, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(testing_util::RawQuery(path, "PRAGMA foreign_key_check"), "");
}

}  // namespace
}  // namespace mw

namespace mw {
namespace {

// Schema 2 -> 4 (outcomes crashed_while_serving and environment_failure):
// a version-2 file, made by putting back version 2's CHECK on outcome and
// removing what version 4 added, keeps every attempt, its id and the
// AUTOINCREMENT counter, and then accepts both new outcomes.
TEST(RegistryOpen, MigratesVersion2AttemptsToVersion4) {
  TempDir dir;
  const std::string path = dir.File("registry.db");
  MakeRegistry(path);
  {
    auto reg = Registry::Open(path);
    ASSERT_TRUE(reg.ok()) << reg.status().ToString();
    for (int i = 0; i < 3; ++i) {
      auto tx = (*reg)->BeginWrite();
      ASSERT_TRUE(tx.ok());
      AttemptRecord a;
      a.model_name = "m";
      a.status_before = CompatStatus::kUnknown;
      auto id = tx->InsertAttempt(a);
      ASSERT_TRUE(id.ok()) << id.status().ToString();
      a.id = *id;
      a.outcome = AttemptOutcome::kSuccess;
      a.status_after = CompatStatus::kCompatible;
      ASSERT_TRUE(tx->CloseAttempt(a).ok());
      ASSERT_TRUE(tx->Commit().ok());
    }
  }
  // Back to version 2: the old CHECK, a deleted newest row (the counter stays at 3).
  const std::string v2 = RawExec(path, R"sql(
    PRAGMA foreign_keys = OFF;
    BEGIN;
    DROP INDEX load_attempts_open_by_node;
    ALTER TABLE load_attempts DROP COLUMN node_id;
    ALTER TABLE load_attempts DROP COLUMN environment_class;
    DROP TABLE nodes;
    CREATE TABLE old AS SELECT * FROM load_attempts;
    DELETE FROM old WHERE id = 3;
    DROP TABLE load_attempts;
    CREATE TABLE load_attempts (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      model_name TEXT NOT NULL REFERENCES models (model_name) ON DELETE CASCADE ON UPDATE CASCADE,
      started_at TEXT NOT NULL, finished_at TEXT,
      outcome TEXT CHECK (outcome IN ('success', 'failed', 'crashed', 'timeout', 'server_crash', 'cancelled')),
      forced INTEGER NOT NULL DEFAULT 0, status_before TEXT NOT NULL, status_after TEXT,
      load_config TEXT NOT NULL DEFAULT '{}', exit_code INTEGER, signal TEXT, category TEXT, pattern_id TEXT,
      summary TEXT, matched_line TEXT, log_excerpt TEXT, duration_ms INTEGER, hardware_fingerprint TEXT);
    INSERT INTO load_attempts SELECT * FROM old;
    DROP TABLE old;
    UPDATE sqlite_sequence SET seq = 3 WHERE name = 'load_attempts';
    CREATE INDEX load_attempts_by_model ON load_attempts (model_name, id);
    CREATE UNIQUE INDEX load_attempts_open ON load_attempts (model_name) WHERE finished_at IS NULL;
    CREATE INDEX load_attempts_open_by_id ON load_attempts (id) WHERE finished_at IS NULL;
    ALTER TABLE models DROP COLUMN verdict_fingerprint;
    DROP TABLE environments;
    DROP TABLE environment_state;
    PRAGMA user_version = 2;
    COMMIT;)sql");
  ASSERT_EQ(v2, "");
  ASSERT_NE(RawExec(path, "UPDATE load_attempts SET outcome = 'crashed_while_serving' WHERE id = 1"), "");

  {
    auto reg = Registry::Open(path);
    ASSERT_TRUE(reg.ok()) << reg.status().ToString();
    EXPECT_TRUE((*reg)->CheckIntegrity().ok());
    auto tx = (*reg)->BeginWrite();
    ASSERT_TRUE(tx.ok());
    AttemptRecord a;
    a.model_name = "m";
    a.status_before = CompatStatus::kCompatible;
    auto id = tx->InsertAttempt(a);
    ASSERT_TRUE(id.ok());
    EXPECT_EQ(*id, 4);  // the counter survived: id 3 is not reused
    a.id = *id;
    a.outcome = AttemptOutcome::kCrashedWhileServing;
    a.status_after = CompatStatus::kIncompatible;
    ASSERT_TRUE(tx->CloseAttempt(a).ok());
    AttemptRecord b;
    b.model_name = "m";
    b.status_before = CompatStatus::kIncompatible;
    auto id2 = tx->InsertAttempt(b);
    ASSERT_TRUE(id2.ok());
    b.id = *id2;
    b.outcome = AttemptOutcome::kEnvironmentFailure;
    b.status_after = CompatStatus::kIncompatible;
    ASSERT_TRUE(tx->CloseAttempt(b).ok());
    ASSERT_TRUE(tx->Commit().ok());
  }
  EXPECT_EQ(testing_util::RawQuery(path, "PRAGMA user_version"), std::to_string(Registry::kSchemaVersion));
  EXPECT_EQ(testing_util::RawQuery(path, "SELECT group_concat(id || ':' || outcome, ',') FROM load_attempts"),
            "1:success,2:success,4:crashed_while_serving,5:environment_failure");
}

// Schema 3 -> 4: a file written by main's version 3 (load_attempts rebuilt
// for crashed_while_serving, no verdict_fingerprint, no environments table),
// with a crash-while-serving attempt and a deleted newest attempt, keeps
// every row, value and the AUTOINCREMENT counter; afterwards it takes
// environment_failure, a verdict fingerprint and environment components.
TEST(RegistryOpen, MigratesVersion3WithoutLosingAnything) {
  TempDir dir;
  const std::string path = dir.File("registry.db");
  const char* v3 = R"sql(
CREATE TABLE models (model_name TEXT PRIMARY KEY NOT NULL, hf_path TEXT,
  cache_location TEXT NOT NULL DEFAULT 'primary', file_path TEXT, engine TEXT NOT NULL DEFAULT 'llama.cpp',
  compatibility_status TEXT NOT NULL DEFAULT 'unknown', compatibility_notes TEXT,
  load_config TEXT NOT NULL DEFAULT '{}', total_loads INTEGER NOT NULL DEFAULT 0,
  total_failures INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
  last_loaded_at TEXT, last_failed_at TEXT);
CREATE INDEX models_by_status ON models (compatibility_status);
CREATE TABLE load_attempts (
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
  exit_code INTEGER, signal TEXT, category TEXT, pattern_id TEXT, summary TEXT, matched_line TEXT,
  log_excerpt TEXT, duration_ms INTEGER CHECK (duration_ms >= 0), hardware_fingerprint TEXT,
  CHECK ((finished_at IS NULL) = (outcome IS NULL) AND (finished_at IS NULL) = (status_after IS NULL))
);
CREATE INDEX load_attempts_by_model ON load_attempts (model_name, id);
CREATE UNIQUE INDEX load_attempts_open ON load_attempts (model_name) WHERE finished_at IS NULL;
CREATE INDEX load_attempts_open_by_id ON load_attempts (id) WHERE finished_at IS NULL;
INSERT INTO models (model_name, compatibility_status, compatibility_notes, total_loads, total_failures,
  created_at, updated_at, last_failed_at)
  VALUES ('m', 'degraded', 'Engine crashed while serving: y', 3, 1, 't0', 't1', 't2');
INSERT INTO load_attempts (model_name, started_at, finished_at, outcome, status_before, status_after,
  exit_code, signal, category, summary, log_excerpt, duration_ms, hardware_fingerprint)
  VALUES ('m', 's1', 'f1', 'success', 'unknown', 'compatible', NULL, NULL, NULL, NULL, NULL, 5, 'gpu:A'),
         ('m', 's2', 'f2', 'crashed_while_serving', 'compatible', 'degraded', NULL, 'SIGSEGV', 'segfault', 'y',
          'log', NULL, NULL),
         ('m', 's3', 'f3', 'cancelled', 'degraded', 'degraded', NULL, NULL, NULL, NULL, NULL, 1, NULL);
DELETE FROM load_attempts WHERE id = 3;
PRAGMA application_id = 1297568327;
PRAGMA user_version = 3;
)sql";
  ASSERT_EQ(RawExec(path, v3), "");
  const char* all_rows =
      "SELECT group_concat(id || '|' || model_name || '|' || started_at || '|' || finished_at || '|' || outcome || "
      "'|' || status_before || '|' || status_after || '|' || coalesce(signal, '-') || '|' || coalesce(category, '-') "
      "|| '|' || coalesce(summary, '-') || '|' || coalesce(log_excerpt, '-') || '|' || "
      "coalesce(hardware_fingerprint, '-'), ';') FROM load_attempts WHERE id < 4";
  const std::string rows_before = testing_util::RawQuery(path, all_rows);
  EXPECT_EQ(rows_before,
            "1|m|s1|f1|success|unknown|compatible|-|-|-|-|gpu:A;"
            "2|m|s2|f2|crashed_while_serving|compatible|degraded|SIGSEGV|segfault|y|log|-");
  {
    auto reg = Registry::Open(path);
    ASSERT_TRUE(reg.ok()) << reg.status().ToString();
    EXPECT_TRUE((*reg)->CheckIntegrity().ok());
    auto m = (*reg)->GetModel("m");
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->compatibility_status, CompatStatus::kDegraded);
    EXPECT_EQ(m->compatibility_notes.value_or(""), "Engine crashed while serving: y");
    EXPECT_EQ(m->total_loads, 3);
    EXPECT_EQ(m->total_failures, 1);
    EXPECT_FALSE(m->verdict_fingerprint.has_value());
    auto tx = (*reg)->BeginWrite();
    ASSERT_TRUE(tx.ok());
    AttemptRecord a;
    a.model_name = "m";
    a.status_before = CompatStatus::kDegraded;
    auto id = tx->InsertAttempt(a);
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    EXPECT_EQ(*id, 4) << "the AUTOINCREMENT high-water mark (3, deleted) is kept";
    a.id = *id;
    a.outcome = AttemptOutcome::kEnvironmentFailure;
    a.status_after = CompatStatus::kDegraded;
    ASSERT_TRUE(tx->CloseAttempt(a).ok());
    ASSERT_TRUE(tx->RecordEnvironment("fp1", "llama.cpp=b1\n").ok());
    ASSERT_TRUE(tx->Commit().ok());
    auto env = (*reg)->GetEnvironment("fp1");
    ASSERT_TRUE(env.ok());
    EXPECT_EQ(env->value_or(""), "llama.cpp=b1\n");
  }
  EXPECT_EQ(testing_util::RawQuery(path, "PRAGMA user_version"), std::to_string(Registry::kSchemaVersion));
  EXPECT_EQ(testing_util::RawQuery(path, all_rows), rows_before);
  EXPECT_EQ(testing_util::RawQuery(path, "SELECT outcome FROM load_attempts WHERE id = 4"), "environment_failure");
  EXPECT_EQ(testing_util::RawQuery(path, "SELECT count(*) FROM models WHERE verdict_fingerprint IS NULL"), "1");
  EXPECT_EQ(testing_util::RawQuery(path, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(testing_util::RawQuery(path, "PRAGMA foreign_key_check"), "");
}

}  // namespace
}  // namespace mw
