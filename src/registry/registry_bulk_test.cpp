// WriteMode::kBulk (the startup cleanup's transaction), Registry::Checkpoint
// and the schema 1 -> 2 migration (an index of the open attempts), on real
// SQLite files. The database file's bytes show whether a commit checkpointed:
// in WAL mode a commit writes only the WAL; a checkpoint writes the file.
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>

#include "registry/registry.h"
#include "support/registry_test_util.h"

namespace mw {
namespace {

using testing_util::RawExec;
using testing_util::RawQuery;
using testing_util::ReadFileBytes;
using testing_util::TempDir;

// More models than wal_autocheckpoint's 1000 pages: with 3000-byte notes
// each row fills its own page, so one transaction writes > 1000 WAL frames.
constexpr int kModels = 1200;
constexpr size_t kNotesBytes = 3000;

// Creates the registry (schema from the real migrations) and bulk-inserts
// kModels models with raw SQL, checkpointed into the file.
std::string MakeRegistry(const TempDir& dir) {
  const std::string path = dir.File("registry.db");
  EXPECT_TRUE(Registry::Open(path).ok());
  EXPECT_EQ(RawExec(path,
                    "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < " +
                        std::to_string(kModels) +
                        ") INSERT INTO models (model_name, file_path, created_at, updated_at) "
                        "SELECT printf('m%05d', i), 'm.gguf', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z' "
                        "FROM k; PRAGMA wal_checkpoint(TRUNCATE);"),
            "");
  return path;
}

// Sets every model's notes to kNotesBytes of `fill` in one transaction;
// rolls it back instead of committing unless `commit`.
Status SetAllNotes(Registry& reg, WriteMode mode, char fill, bool commit) {
  ASSIGN_OR_RETURN(Transaction tx, reg.BeginWrite(mode));
  ASSIGN_OR_RETURN(std::vector<ModelRecord> models, tx.ListModelsWithStatus(CompatStatus::kUnknown));
  if (models.size() != kModels) return InternalError("expected every model to be unknown");
  for (ModelRecord& m : models) {
    m.compatibility_notes = std::string(kNotesBytes, fill);
    RETURN_IF_ERROR(tx.WriteModelState(m));
  }
  if (!commit) return Status::Ok();
  return tx.Commit();
}

void ExpectAllNotes(Registry& reg, char fill) {
  auto models = reg.ListModels();
  ASSERT_TRUE(models.ok()) << models.status().ToString();
  ASSERT_EQ(models->size(), static_cast<size_t>(kModels));
  for (const ModelRecord& m : *models) {
    ASSERT_EQ(m.compatibility_notes, std::string(kNotesBytes, fill)) << m.model_name;
  }
}

TEST(RegistryBulk, CommitLeavesTheCheckpointToCheckpoint) {
  TempDir dir;
  const std::string path = MakeRegistry(dir);
  auto reg = Registry::Open(path);
  ASSERT_TRUE(reg.ok()) << reg.status().ToString();
  const std::string before = ReadFileBytes(path);

  ASSERT_TRUE(SetAllNotes(**reg, WriteMode::kBulk, 'a', true).ok());
  EXPECT_EQ(ReadFileBytes(path), before) << "the bulk commit checkpointed the WAL into the file";
  ExpectAllNotes(**reg, 'a');

  auto copied = (*reg)->Checkpoint();
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_GT(*copied, 1000);
  const std::string checkpointed = ReadFileBytes(path);
  EXPECT_NE(checkpointed, before);

  // The automatic checkpoint is back on for ordinary transactions.
  ASSERT_TRUE(SetAllNotes(**reg, WriteMode::kNormal, 'b', true).ok());
  EXPECT_NE(ReadFileBytes(path), checkpointed) << "an ordinary commit past 1000 frames did not checkpoint";
  ExpectAllNotes(**reg, 'b');
  EXPECT_TRUE((*reg)->CheckIntegrity().ok());
}

TEST(RegistryBulk, RollbackRestoresTheSettingsToo) {
  TempDir dir;
  const std::string path = MakeRegistry(dir);
  auto reg = Registry::Open(path);
  ASSERT_TRUE(reg.ok()) << reg.status().ToString();
  const std::string before = ReadFileBytes(path);

  ASSERT_TRUE(SetAllNotes(**reg, WriteMode::kBulk, 'a', false).ok());  // rolled back
  auto models = (*reg)->ListModels();
  ASSERT_TRUE(models.ok());
  EXPECT_FALSE(models->front().compatibility_notes.has_value());

  ASSERT_TRUE(SetAllNotes(**reg, WriteMode::kNormal, 'b', true).ok());
  EXPECT_NE(ReadFileBytes(path), before) << "automatic checkpoint still off after a rolled-back bulk transaction";
  ExpectAllNotes(**reg, 'b');
  EXPECT_TRUE((*reg)->CheckIntegrity().ok());
}

TEST(RegistryBulk, CommitSurvivesSigkillBeforeTheCheckpoint) {
  TempDir dir;
  const std::string path = MakeRegistry(dir);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: no gtest assertions; commit, then die without closing.
    auto reg = Registry::Open(path);
    if (!reg.ok()) _exit(1);
    if (!SetAllNotes(**reg, WriteMode::kBulk, 'c', true).ok()) _exit(2);
    kill(getpid(), SIGKILL);
    _exit(3);
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << "child status " << wstatus;

  auto reg = Registry::Open(path);
  ASSERT_TRUE(reg.ok()) << reg.status().ToString();
  ExpectAllNotes(**reg, 'c');
  EXPECT_TRUE((*reg)->CheckIntegrity().ok());
}

// EXPLAIN QUERY PLAN's details, one per line.
std::string QueryPlan(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string plan;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &stmt, nullptr) == SQLITE_OK) {
      while (sqlite3_step(stmt) == SQLITE_ROW) {
        plan += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3));
        plan += "\n";
      }
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return plan;
}

TEST(RegistryMigration, VersionOneGetsTheOpenAttemptsIndex) {
  TempDir dir;
  const std::string path = dir.File("registry.db");
  ASSERT_TRUE(Registry::Open(path).ok());
  // Back to exactly what migration 1 left, with a history: 3 closed attempts
  // and one open one.
  ASSERT_EQ(RawExec(path,
                    "DROP INDEX load_attempts_open_by_id; ALTER TABLE models DROP COLUMN verdict_fingerprint;"
                    "DROP INDEX load_attempts_open_by_node; ALTER TABLE load_attempts DROP COLUMN node_id;"
                    "ALTER TABLE load_attempts DROP COLUMN environment_class; DROP TABLE nodes;"
                    "DROP TABLE environments; DROP TABLE environment_state; PRAGMA user_version = 1;"
                    "INSERT INTO models (model_name, created_at, updated_at, compatibility_status) "
                    "VALUES ('m', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'testing');"
                    "INSERT INTO load_attempts (model_name, started_at, finished_at, outcome, status_before, "
                    "status_after) VALUES ('m', '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z', 'success', "
                    "'unknown', 'compatible'), ('m', '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z', "
                    "'failed', 'compatible', 'incompatible'), ('m', '2026-01-01T00:00:00Z', "
                    "'2026-01-01T00:00:01Z', 'cancelled', 'unknown', 'unknown');"
                    "INSERT INTO load_attempts (model_name, started_at, status_before) "
                    "VALUES ('m', '2026-01-02T00:00:00Z', 'unknown');"),
            "");
  {
    auto reg = Registry::Open(path);
    ASSERT_TRUE(reg.ok()) << reg.status().ToString();
    auto tx = (*reg)->BeginWrite();
    ASSERT_TRUE(tx.ok());
    auto open = tx->ListOpenAttempts();
    ASSERT_TRUE(open.ok()) << open.status().ToString();
    ASSERT_EQ(open->size(), 1u);
    EXPECT_EQ(open->front().id, 4);
    EXPECT_EQ(open->front().started_at, "2026-01-02T00:00:00Z");
  }
  EXPECT_EQ(RawQuery(path, "PRAGMA user_version"), std::to_string(Registry::kSchemaVersion));
  EXPECT_EQ(RawQuery(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'load_attempts_open_by_id'"), "1");
  // The startup cleanup's query reads the open attempts from the index, in
  // id order, instead of scanning every attempt ever recorded.
  const std::string plan =
      QueryPlan(path, "SELECT * FROM load_attempts WHERE finished_at IS NULL ORDER BY id");
  EXPECT_NE(plan.find("load_attempts_open_by_id"), std::string::npos) << plan;
  EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << plan;
  EXPECT_EQ(RawQuery(path, "PRAGMA integrity_check"), "ok");
}

}  // namespace
}  // namespace mw
