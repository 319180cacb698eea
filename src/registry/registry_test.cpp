// Registry CRUD, validation, transactions and thread-safety, on both
// backends (TEST_P): a real SQLite file in a fresh temp directory, and a
// fresh schema of a private PostgreSQL cluster; the schema is built by the
// migrations.
#include "registry/registry.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <thread>
#include <vector>

#include "support/pg_test_util.h"
#include "support/registry_test_util.h"

namespace mw {
namespace {

using testing_util::RawExec;
using testing_util::RawQuery;
using testing_util::BackendKind;
using testing_util::RegistryTarget;

// The registry of one test, on the backend Kind() names.
class RegistryTestBase : public ::testing::Test {
 protected:
  virtual BackendKind Kind() const = 0;
  void SetUp() override {
    target_ = std::make_unique<RegistryTarget>(Kind());
    std::string skip, error;
    if (!target_->Prepare(&skip, &error)) {
      if (!skip.empty()) GTEST_SKIP() << skip;
      FAIL() << error;
    }
    auto reg = Registry::Open(target_->location());
    ASSERT_TRUE(reg.ok()) << reg.status().ToString();
    reg_ = std::move(reg).value();
  }
  void TearDown() override {
    if (reg_) {
      EXPECT_TRUE(reg_->CheckIntegrity().ok());
    }
  }
  ModelRecord Model(const std::string& name) {
    ModelRecord m;
    m.model_name = name;
    m.file_path = name + ".gguf";
    return m;
  }
  void Reopen() {
    reg_.reset();
    auto reg = Registry::Open(target_->location());
    ASSERT_TRUE(reg.ok()) << reg.status().ToString();
    reg_ = std::move(reg).value();
  }

  std::unique_ptr<RegistryTarget> target_;
  std::unique_ptr<Registry> reg_;
};

class RegistryTest : public RegistryTestBase, public ::testing::WithParamInterface<BackendKind> {
 protected:
  BackendKind Kind() const override { return GetParam(); }
};
INSTANTIATE_TEST_SUITE_P(Backends, RegistryTest, ::testing::ValuesIn(testing_util::kAllBackends),
                         testing_util::BackendNamer());

class SqliteRegistryTest : public RegistryTestBase {
 protected:
  BackendKind Kind() const override { return BackendKind::kSqlite; }
};

TEST(RegistryTypes, StatusAndOutcomeNamesRoundTrip) {
  for (CompatStatus s : kAllCompatStatuses) EXPECT_EQ(ParseCompatStatus(ToString(s)), s);
  EXPECT_EQ(ToString(CompatStatus::kDegraded), "degraded");
  EXPECT_FALSE(ParseCompatStatus("Compatible").has_value());
  EXPECT_FALSE(ParseCompatStatus("").has_value());
  for (auto o : {AttemptOutcome::kSuccess, AttemptOutcome::kFailed, AttemptOutcome::kCrashed,
                 AttemptOutcome::kTimeout, AttemptOutcome::kServerCrash, AttemptOutcome::kCancelled,
                 AttemptOutcome::kEnvironmentFailure}) {
    EXPECT_EQ(ParseAttemptOutcome(ToString(o)), o);
  }
  EXPECT_EQ(ToString(AttemptOutcome::kServerCrash), "server_crash");
  EXPECT_EQ(ToString(AttemptOutcome::kEnvironmentFailure), "environment_failure");
  EXPECT_FALSE(ParseAttemptOutcome("crash").has_value());
}

TEST(RegistryTypes, ModelNameRule) {
  for (const char* ok : {"a", "Z9", "phi-3.mini_4k", "0abc"}) EXPECT_TRUE(IsValidModelName(ok)) << ok;
  EXPECT_TRUE(IsValidModelName(std::string(128, 'a')));
  for (const char* bad : {"", "-a", ".a", "_a", "..", "a/b", "a b", "a\\b", "a%2f", "é", "a\n"}) {
    EXPECT_FALSE(IsValidModelName(bad)) << bad;
  }
  EXPECT_FALSE(IsValidModelName(std::string(129, 'a')));
}

// SQLite's page cache of the registry's connection is bounded at 1 MiB
// (sqlite_open.cpp), not its 2 MiB default: load_attempts only grows, and a
// server's RSS grew with the attempts' pages as they were read (the 30-minute
// soak, docs/reliability.md). Reading 40 000 attempts (~10 MB of table)
// grows SQLite's own memory by the cap, not by the table.
TEST_F(SqliteRegistryTest, PageCacheStaysBoundedAsAttemptsGrow) {
  ASSERT_TRUE(reg_->AddModel(Model("m")).ok());
  const std::string db = reg_->path();
  ASSERT_EQ(RawExec(db,
           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000) "
           "INSERT INTO load_attempts (model_name, started_at, finished_at, outcome, status_before, status_after, "
           "log_excerpt) SELECT 'm', '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z', 'success', 'unknown', "
           "'compatible', hex(randomblob(100)) FROM n"), "");
  const int64_t before = sqlite3_memory_used();
  auto attempts = reg_->ListAttempts("m", 40000);  // every page of the table
  ASSERT_TRUE(attempts.ok()) << attempts.status().ToString();
  ASSERT_EQ(attempts->size(), 40000u);
  const int64_t grown = sqlite3_memory_used() - before;
  EXPECT_LT(grown, 1536 * 1024) << "SQLite's memory grew by " << grown << " bytes";
  ASSERT_GT(grown, 512 * 1024) << "the cache was not filled: nothing for the next check to see";
  // serve gives the cached pages back every 30 s: memory does not stay at the
  // cache's size once the reads are over.
  reg_->ReleaseCachedPages();
  const int64_t kept = sqlite3_memory_used() - before;
  EXPECT_LT(kept, 128 * 1024) << "SQLite still holds " << kept << " bytes more than before the reads";
}

TEST_F(SqliteRegistryTest, SchemaHasSpecColumnsAndVersion) {
  const std::string db = reg_->path();
  reg_.reset();
  EXPECT_EQ(RawQuery(db, "PRAGMA user_version"), std::to_string(Registry::kSchemaVersion));
  EXPECT_EQ(RawQuery(db, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(RawQuery(db, "SELECT group_concat(name, ',') FROM pragma_table_info('models')"),
            "model_name,hf_path,cache_location,file_path,engine,compatibility_status,compatibility_notes,"
            "load_config,total_loads,total_failures,created_at,updated_at,last_loaded_at,last_failed_at,"
            "verdict_fingerprint");
  EXPECT_EQ(RawQuery(db, "SELECT group_concat(name, ',') FROM pragma_table_info('load_attempts')"),
            "id,model_name,started_at,finished_at,outcome,forced,status_before,status_after,load_config,"
            "exit_code,signal,category,pattern_id,summary,matched_line,log_excerpt,duration_ms,"
            "hardware_fingerprint,node_id,environment_class");
  EXPECT_EQ(RawQuery(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'models_by_status'"), "1");
  Reopen();
}

TEST_F(SqliteRegistryTest, SchemaChecksRejectBadValuesWrittenBehindOurBack) {
  const std::string db = reg_->path();
  reg_.reset();
  const std::string cols = "INSERT INTO models (model_name, created_at, updated_at, ";
  EXPECT_EQ(RawExec(db, "INSERT INTO models (model_name, created_at, updated_at) VALUES ('ok', 'x', 'x')"),
            "");
  EXPECT_NE(RawExec(db, cols + "compatibility_status) VALUES ('a', 'x', 'x', 'broken')"), "");
  EXPECT_NE(RawExec(db, cols + "engine) VALUES ('a', 'x', 'x', 'vllm')"), "");
  EXPECT_NE(RawExec(db, cols + "load_config) VALUES ('a', 'x', 'x', '[1]')"), "");
  EXPECT_NE(RawExec(db, cols + "load_config) VALUES ('a', 'x', 'x', '{bad')"), "");
  EXPECT_NE(RawExec(db, "INSERT INTO models (model_name, created_at, updated_at) VALUES ('../x', 'x', 'x')"),
            "");
  EXPECT_NE(RawExec(db,
                    "INSERT INTO load_attempts (model_name, started_at, status_before, outcome) "
                    "VALUES ('ok', 'x', 'unknown', 'exploded')"),
            "");
  Reopen();
}

TEST_P(RegistryTest, AddAndGetKeepAllFieldsAndDefaults) {
  ModelRecord m = Model("phi-mini");
  m.hf_path = "microsoft/phi-mini";
  m.load_config = R"({"n_gpu_layers": 10})";
  m.compatibility_notes = "imported";
  auto added = reg_->AddModel(m);
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  EXPECT_EQ(added->model_name, "phi-mini");
  EXPECT_EQ(added->hf_path, "microsoft/phi-mini");
  EXPECT_EQ(added->cache_location, "primary");
  EXPECT_EQ(added->file_path, "phi-mini.gguf");
  EXPECT_EQ(added->engine, "llama.cpp");
  EXPECT_EQ(added->compatibility_status, CompatStatus::kUnknown);
  EXPECT_EQ(added->compatibility_notes, "imported");
  EXPECT_EQ(added->load_config, R"({"n_gpu_layers": 10})");
  EXPECT_EQ(added->total_loads, 0);
  EXPECT_EQ(added->total_failures, 0);
  EXPECT_FALSE(added->created_at.empty());
  EXPECT_EQ(added->created_at, added->updated_at);
  EXPECT_FALSE(added->last_loaded_at.has_value());

  Reopen();
  auto got = reg_->GetModel("phi-mini");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->hf_path, "microsoft/phi-mini");
  EXPECT_EQ(got->created_at, added->created_at);
}

TEST_P(RegistryTest, AddRejectsBadInputAndDuplicates) {
  ASSERT_TRUE(reg_->AddModel(Model("m1")).ok());
  EXPECT_EQ(reg_->AddModel(Model("m1")).status().code(), StatusCode::kAlreadyExists);

  ModelRecord bad = Model("../etc");
  EXPECT_EQ(reg_->AddModel(bad).status().code(), StatusCode::kInvalidArgument);
  bad = Model("m2");
  bad.engine = "vllm";
  EXPECT_EQ(reg_->AddModel(bad).status().code(), StatusCode::kInvalidArgument);
  bad = Model("m2");
  bad.compatibility_status = CompatStatus::kTesting;
  EXPECT_EQ(reg_->AddModel(bad).status().code(), StatusCode::kInvalidArgument);
  for (const char* config : {"[]", "\"x\"", "3", "{", "", "null", "{\"a\":}"}) {
    bad = Model("m2");
    bad.load_config = config;
    auto st = reg_->AddModel(bad).status();
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << config;
    EXPECT_NE(st.message().find("JSON object"), std::string::npos) << st.message();
  }
  bad = Model("m2");
  bad.cache_location = "";
  EXPECT_EQ(reg_->AddModel(bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(reg_->GetModel("m2").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(reg_->GetModel("a/b").status().code(), StatusCode::kInvalidArgument);
  ModelRecord command = Model("cmd");
  command.engine = "command";
  command.file_path.reset();
  command.load_config = R"({"argv": ["/bin/true"]})";
  EXPECT_TRUE(reg_->AddModel(command).ok());
}

TEST_P(RegistryTest, UpdateIsPartialAndValidated) {
  ASSERT_TRUE(reg_->AddModel(Model("m")).ok());
  ModelUpdate u;
  u.compatibility_notes = "driver 550 needed";
  auto r = reg_->UpdateModel("m", u);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->compatibility_notes, "driver 550 needed");
  EXPECT_EQ(r->compatibility_status, CompatStatus::kUnknown);
  EXPECT_EQ(r->file_path, "m.gguf");

  u = {};
  u.compatibility_status = CompatStatus::kIncompatible;
  u.load_config = R"({"flash_attn": false})";
  r = reg_->UpdateModel("m", u);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->compatibility_status, CompatStatus::kIncompatible);
  EXPECT_EQ(r->load_config, R"({"flash_attn": false})");
  EXPECT_EQ(r->compatibility_notes, "driver 550 needed");

  u = {};
  u.compatibility_notes = "";  // clears
  u.hf_path = "org/name";
  r = reg_->UpdateModel("m", u);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->compatibility_notes.has_value());
  EXPECT_EQ(r->hf_path, "org/name");

  u = {};
  u.compatibility_status = CompatStatus::kTesting;
  EXPECT_EQ(reg_->UpdateModel("m", u).status().code(), StatusCode::kInvalidArgument);
  u = {};
  u.load_config = "[1,2]";
  EXPECT_EQ(reg_->UpdateModel("m", u).status().code(), StatusCode::kInvalidArgument);
  u = {};
  u.engine = "other";
  EXPECT_EQ(reg_->UpdateModel("m", u).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(reg_->UpdateModel("nope", ModelUpdate{}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(reg_->GetModel("m")->load_config, R"({"flash_attn": false})");
}

// Opens an attempt through a transaction, as compat/ does.
AttemptId OpenAttempt(Registry& reg, const std::string& name) {
  auto tx = reg.BeginWrite();
  EXPECT_TRUE(tx.ok());
  auto model = tx->GetModel(name);
  EXPECT_TRUE(model.ok());
  AttemptRecord a;
  a.model_name = name;
  a.status_before = model->compatibility_status;
  a.load_config = model->load_config;
  a.hardware_fingerprint = "cpu-test";
  auto id = tx->InsertAttempt(a);
  EXPECT_TRUE(id.ok()) << id.status().ToString();
  model->compatibility_status = CompatStatus::kTesting;
  EXPECT_TRUE(tx->WriteModelState(*model).ok());
  EXPECT_TRUE(tx->Commit().ok());
  return id.value_or(0);
}

TEST_P(RegistryTest, AttemptsOpenCloseListAndOneOpenPerModel) {
  ModelRecord m = Model("m");
  m.load_config = R"({"n_ctx": 512})";
  ASSERT_TRUE(reg_->AddModel(m).ok());
  const AttemptId id = OpenAttempt(*reg_, "m");
  ASSERT_GT(id, 0);
  {
    auto tx = reg_->BeginWrite();
    ASSERT_TRUE(tx.ok());
    AttemptRecord dup;
    dup.model_name = "m";
    EXPECT_EQ(tx->InsertAttempt(dup).status().code(), StatusCode::kAlreadyExists);
    AttemptRecord ghost;
    ghost.model_name = "ghost";
    EXPECT_EQ(tx->InsertAttempt(ghost).status().code(), StatusCode::kNotFound);
    auto open = tx->GetOpenAttempt("m");
    ASSERT_TRUE(open.ok());
    ASSERT_TRUE(open->has_value());
    EXPECT_EQ((*open)->id, id);
    EXPECT_EQ((*open)->load_config, R"({"n_ctx": 512})");
    EXPECT_TRUE((*open)->open());

    AttemptRecord close = **open;
    close.outcome = AttemptOutcome::kCrashed;
    close.status_after = CompatStatus::kIncompatible;
    close.signal = "SIGSEGV";
    close.exit_code = 139;
    close.log_excerpt = "boom";
    EXPECT_TRUE(tx->CloseAttempt(close).ok());
    EXPECT_EQ(tx->CloseAttempt(close).code(), StatusCode::kFailedPrecondition);
    close.id = 999;
    EXPECT_EQ(tx->CloseAttempt(close).code(), StatusCode::kNotFound);
    ASSERT_TRUE(tx->Commit().ok());
  }
  auto a = reg_->GetAttempt(id);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->outcome, AttemptOutcome::kCrashed);
  EXPECT_EQ(a->status_after, CompatStatus::kIncompatible);
  EXPECT_EQ(a->status_before, CompatStatus::kUnknown);
  EXPECT_EQ(a->signal, "SIGSEGV");
  EXPECT_EQ(a->exit_code, 139);
  EXPECT_EQ(a->hardware_fingerprint, "cpu-test");
  ASSERT_TRUE(a->duration_ms.has_value());
  EXPECT_GE(*a->duration_ms, 0);
  EXPECT_FALSE(a->open());

  const AttemptId id2 = OpenAttempt(*reg_, "m");
  auto list = reg_->ListAttempts("m", 10);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, id2);  // newest first
  EXPECT_EQ((*list)[1].id, id);
  EXPECT_EQ(reg_->ListAttempts("m", 1)->size(), 1u);
  EXPECT_EQ(reg_->ListAttempts("ghost", 1).status().code(), StatusCode::kNotFound);
}

// Schema version 5 (SPEC §11): the environment state row, and the load
// outcomes a failure streak is read back from after a restart.
TEST_P(RegistryTest, EnvironmentStateAndRecentLoadOutcomes) {
  auto none = reg_->GetEnvironmentState();
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(reg_->AddModel(Model("m")).ok());
  auto close = [&](AttemptOutcome outcome, const char* category) {
    const AttemptId id = OpenAttempt(*reg_, "m");
    auto tx = reg_->BeginWrite();
    EXPECT_TRUE(tx.ok());
    AttemptRecord a = *tx->GetAttempt(id);
    a.outcome = outcome;
    a.status_after = CompatStatus::kUnknown;
    a.category = category;
    EXPECT_TRUE(tx->CloseAttempt(a).ok());
    EXPECT_TRUE(tx->Commit().ok());
    return id;
  };
  const AttemptId ok1 = close(AttemptOutcome::kSuccess, "none");
  const AttemptId f1 = close(AttemptOutcome::kCrashed, "gpu_context");
  close(AttemptOutcome::kCancelled, "none");    // neither a success nor a failure
  close(AttemptOutcome::kServerCrash, "none");  // the server's crash, not the model's
  const AttemptId f2 = close(AttemptOutcome::kEnvironmentFailure, "device_unavailable");
  const AttemptId open = OpenAttempt(*reg_, "m");  // open: not an outcome yet
  auto recent = reg_->ListRecentLoadOutcomes(0, 10);
  ASSERT_TRUE(recent.ok()) << recent.status().ToString();
  ASSERT_EQ(recent->size(), 3u);
  EXPECT_EQ((*recent)[0].id, f2);  // newest first
  EXPECT_EQ((*recent)[1].id, f1);
  EXPECT_EQ((*recent)[2].id, ok1);
  EXPECT_EQ(reg_->ListRecentLoadOutcomes(f1, 10)->size(), 1u);
  EXPECT_EQ(reg_->ListRecentLoadOutcomes(0, 2)->size(), 2u);

  EnvironmentStateRecord st;
  st.failing = true;
  st.reason = "gone";
  st.since = "2026-12-03T11:00:00.000Z";
  st.devices_missing = true;
  st.streak_after = 7;
  st.good_devices = "cpu CPU\ngpu CUDA0\n";
  {
    auto tx = reg_->BeginWrite();
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(tx->WriteEnvironmentState(st).ok());
    ASSERT_TRUE(tx->Commit().ok());
  }
  Reopen();
  auto back = reg_->GetEnvironmentState();
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_TRUE((*back)->failing);
  EXPECT_EQ((*back)->reason, "gone");
  EXPECT_EQ((*back)->since, st.since);
  EXPECT_TRUE((*back)->devices_missing);
  EXPECT_EQ((*back)->streak_after, 7);
  EXPECT_EQ((*back)->good_devices, st.good_devices);
  // streak_now: the newest closed attempt (the open one is not closed).
  st = EnvironmentStateRecord{};
  {
    auto tx = reg_->BeginWrite();
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(tx->WriteEnvironmentState(st, /*streak_now=*/true).ok());
    ASSERT_TRUE(tx->Commit().ok());
  }
  back = reg_->GetEnvironmentState();
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_FALSE((*back)->failing);
  EXPECT_FALSE((*back)->reason.has_value());
  EXPECT_EQ((*back)->streak_after, f2);
  EXPECT_LT(f2, open);
}

TEST_P(RegistryTest, DeleteCascadesAttemptsAndRefusesWhileTesting) {
  ASSERT_TRUE(reg_->AddModel(Model("m")).ok());
  const AttemptId id = OpenAttempt(*reg_, "m");
  EXPECT_EQ(reg_->DeleteModel("m").code(), StatusCode::kFailedPrecondition);
  ModelUpdate u;
  u.compatibility_status = CompatStatus::kCompatible;
  EXPECT_EQ(reg_->UpdateModel("m", u).status().code(), StatusCode::kFailedPrecondition);
  {
    auto tx = reg_->BeginWrite();
    ASSERT_TRUE(tx.ok());
    auto model = tx->GetModel("m");
    model->compatibility_status = CompatStatus::kCompatible;
    ASSERT_TRUE(tx->WriteModelState(*model).ok());
    ASSERT_TRUE(tx->Commit().ok());
  }
  EXPECT_TRUE(reg_->DeleteModel("m").ok());
  EXPECT_EQ(reg_->GetAttempt(id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(reg_->DeleteModel("m").code(), StatusCode::kNotFound);
}

TEST_P(RegistryTest, ListAndCountByStatus) {
  for (const char* n : {"c", "a", "b"}) ASSERT_TRUE(reg_->AddModel(Model(n)).ok());
  ModelUpdate u;
  u.compatibility_status = CompatStatus::kDegraded;
  ASSERT_TRUE(reg_->UpdateModel("b", u).ok());
  auto all = reg_->ListModels();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].model_name, "a");
  EXPECT_EQ((*all)[2].model_name, "c");
  auto counts = reg_->CountByStatus();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->size(), 5u);
  EXPECT_EQ(counts->at(CompatStatus::kUnknown), 2);
  EXPECT_EQ(counts->at(CompatStatus::kDegraded), 1);
  EXPECT_EQ(counts->at(CompatStatus::kTesting), 0);
}

TEST_P(RegistryTest, TransactionRollsBackUnlessCommitted) {
  ASSERT_TRUE(reg_->AddModel(Model("m")).ok());
  {
    auto tx = reg_->BeginWrite();
    ASSERT_TRUE(tx.ok());
    auto model = tx->GetModel("m");
    model->compatibility_status = CompatStatus::kTesting;
    model->total_loads = 7;
    ASSERT_TRUE(tx->WriteModelState(*model).ok());
    // A Registry call on this thread would deadlock: it is refused instead.
    EXPECT_EQ(reg_->GetModel("m").status().code(), StatusCode::kInternal);
  }  // destroyed without Commit
  auto m = reg_->GetModel("m");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->compatibility_status, CompatStatus::kUnknown);
  EXPECT_EQ(m->total_loads, 0);

  auto tx = reg_->BeginWrite();
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE(tx->Commit().ok());
  EXPECT_EQ(tx->GetModel("m").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(tx->Commit().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(reg_->GetModel("m").ok());
}

TEST_P(RegistryTest, ConcurrentWritersAndReadersAreSerialised) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < kPerThread; ++i) {
        EXPECT_TRUE(reg_->AddModel(Model("t" + std::to_string(t) + "-" + std::to_string(i))).ok());
        EXPECT_TRUE(reg_->ListModels().ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(reg_->ListModels()->size(), static_cast<size_t>(kThreads * kPerThread));
}

}  // namespace
}  // namespace mw

namespace mw {
namespace {

NodeRecord Node(const std::string& id, int64_t lease_s) {
  NodeRecord n;
  n.node_id = id;
  n.host = "host-" + id;
  n.lease_s = lease_s;
  return n;
}

// SPEC §14 on both backends: a node whose lease ran out and was taken by
// another writes nothing more (every write transaction checks the lease),
// its heartbeat says so, and a new join (a new epoch) lets it write again.
// The taking is conditional: a lease taken once is not taken twice.
TEST_P(RegistryTest, ALeaseTakenAfterItExpiredRefusesTheOldNodesWritesUntilItJoinsAgain) {
  auto other = Registry::Open(target_->location());
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  auto a = reg_->JoinFleet(Node("a", 1));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->epoch, 1);
  EXPECT_EQ(a->lease_state, "held");
  ASSERT_TRUE((*other)->JoinFleet(Node("b", 30)).ok());
  ASSERT_TRUE(reg_->AddModel(Model("m")).ok());

  std::this_thread::sleep_for(std::chrono::milliseconds(1300));  // a's lease (1 s) runs out
  {
    auto tx = (*other)->BeginWrite();
    ASSERT_TRUE(tx.ok()) << tx.status().ToString();
    auto expired = tx->ListExpiredNodes();
    ASSERT_TRUE(expired.ok());
    ASSERT_EQ(expired->size(), 1u);
    EXPECT_EQ(expired->front().node_id, "a");
    EXPECT_FALSE(expired->front().live());
    EXPECT_EQ(tx->MarkNodeExpired("a").value_or(false), true);
    EXPECT_EQ(tx->MarkNodeExpired("a").value_or(true), false);  // once
    ASSERT_TRUE(tx->Commit().ok());
  }
  auto write = reg_->BeginWrite();
  ASSERT_FALSE(write.ok());
  EXPECT_EQ(write.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(write.status().message().find("lost its lease"), std::string::npos) << write.status().message();
  EXPECT_EQ(reg_->AddModel(Model("n")).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(reg_->Heartbeat({}).code(), StatusCode::kFailedPrecondition);

  reg_->SetAdvertiseUrl("http://10.0.0.1:8080");  // SPEC §21: kept across the rejoin, written by the heartbeat
  auto again = reg_->JoinFleet(Node("a", 1));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->epoch, 2);
  EXPECT_TRUE(reg_->Heartbeat({"m"}).ok());
  EXPECT_TRUE(reg_->AddModel(Model("n")).ok());
  auto nodes = (*other)->ListNodes();
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 2u);
  EXPECT_EQ((*nodes)[0].node_id, "a");
  EXPECT_EQ((*nodes)[0].lease_state, "held");
  EXPECT_EQ((*nodes)[0].loaded_models, std::vector<std::string>{"m"});
  EXPECT_EQ((*nodes)[0].advertise_url, "http://10.0.0.1:8080");
  EXPECT_EQ((*nodes)[1].advertise_url, "");
  EXPECT_TRUE((*nodes)[1].live());
  ASSERT_TRUE(reg_->LeaveFleet().ok());
  nodes = (*other)->ListNodes();
  ASSERT_TRUE(nodes.ok());
  EXPECT_EQ((*nodes)[0].lease_state, "stopped");
}

// Attempts record the node and its class; this node's open attempts are
// its own (and those of no node), not another node's.
TEST_P(RegistryTest, AttemptsRecordTheirNodeAndClass) {
  auto other = Registry::Open(target_->location());
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(reg_->JoinFleet(Node("a", 30)).ok());
  reg_->SetEnvironmentClass("class-1");
  ASSERT_TRUE((*other)->JoinFleet(Node("b", 30)).ok());
  (*other)->SetEnvironmentClass("class-1");
  ASSERT_TRUE(reg_->AddModel(Model("m")).ok());
  ASSERT_TRUE(reg_->AddModel(Model("n")).ok());
  const AttemptId id = OpenAttempt(*reg_, "m");
  OpenAttempt(**other, "n");
  auto got = reg_->GetAttempt(id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->node_id, "a");
  EXPECT_EQ(got->environment_class, "class-1");
  auto tx = reg_->BeginWrite();
  ASSERT_TRUE(tx.ok());
  auto own = tx->ListOwnOpenAttempts();
  ASSERT_TRUE(own.ok());
  ASSERT_EQ(own->size(), 1u);
  EXPECT_EQ(own->front().model_name, "m");
  auto of_b = tx->ListOpenAttemptsOfNode("b");
  ASSERT_TRUE(of_b.ok());
  ASSERT_EQ(of_b->size(), 1u);
  EXPECT_EQ(of_b->front().model_name, "n");
}

// The batch write of the startup cleanup keeps every text as it is (on
// PostgreSQL it travels in array literals: quotes, backslashes, braces,
// commas and NULL must survive) and refuses an attempt already closed.
TEST_P(RegistryTest, BatchedStatesAndClosesKeepEveryTextAndRefuseAClosedAttempt) {
  const std::string awkward = "say \"hi\", {x} \\ NULL, é\nline two";
  std::vector<ModelRecord> models;
  std::vector<AttemptRecord> attempts;
  for (const char* name : {"a", "b"}) {
    ASSERT_TRUE(reg_->AddModel(Model(name)).ok());
    const AttemptId id = OpenAttempt(*reg_, name);
    ModelRecord m = reg_->GetModel(name).value();
    m.compatibility_status = CompatStatus::kIncompatible;
    m.compatibility_notes = awkward;
    m.total_failures = 1;
    m.last_failed_at = "2026-12-03T00:00:00.000Z";
    models.push_back(m);
    AttemptRecord a = reg_->GetAttempt(id).value();
    a.outcome = AttemptOutcome::kServerCrash;
    a.status_after = CompatStatus::kIncompatible;
    a.summary = awkward;
    attempts.push_back(a);
  }
  models[1].compatibility_notes.reset();
  {
    auto tx = reg_->BeginWrite(WriteMode::kBulk);
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(tx->WriteStatesAndCloseAttempts(models, attempts).ok());
    ASSERT_TRUE(tx->Commit().ok());
  }
  EXPECT_EQ(reg_->GetModel("a")->compatibility_notes, awkward);
  EXPECT_EQ(reg_->GetModel("b")->compatibility_notes, std::nullopt);
  EXPECT_EQ(reg_->GetModel("b")->compatibility_status, CompatStatus::kIncompatible);
  const AttemptRecord closed = reg_->GetAttempt(attempts[0].id).value();
  EXPECT_EQ(closed.summary, awkward);
  EXPECT_EQ(closed.outcome, AttemptOutcome::kServerCrash);
  EXPECT_FALSE(closed.open());
  EXPECT_GE(closed.duration_ms.value_or(-1), 0);
  auto tx = reg_->BeginWrite();
  ASSERT_TRUE(tx.ok());
  EXPECT_EQ(tx->WriteStatesAndCloseAttempts({}, attempts).code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace mw
