// Startup cleanup at scale: 100 000 models, 1 000 of them stuck in testing
// with an open attempt each (as after a crash of an older, unqueued server).
// Each iteration re-creates the stuck state with the registry closed, then
// times StartupCleanup alone, and separately Open + StartupCleanup.
// BM_DurableAttemptCommits: the registry's share of one load (the durable
// `testing` commit and the success record) on SQLite and on PostgreSQL 15
// (a private cluster with fsync on, over its unix socket).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <sstream>

#include "compat/state_machine.h"
#include "registry/pg_test_util.h"
#include "registry/registry_test_util.h"

namespace {

constexpr int kModels = 100000;
constexpr int kStuck = 1000;

void Populate(const std::string& db) {
  { auto reg = mw::Registry::Open(db); }  // schema by the real migrations
  mw::testing_util::RawExec(
      db, "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < " +
              std::to_string(kModels - 1) +
              ") INSERT INTO models (model_name, file_path, total_loads, created_at, updated_at) "
              "SELECT 'model-' || i, 'model-' || i || '.gguf', i % 5, 'x', 'x' FROM n");
}

void MakeStuck(const std::string& db) {
  const int step = kModels / kStuck;
  mw::testing_util::RawExec(db, "BEGIN; UPDATE models SET compatibility_status = 'testing' WHERE rowid % " +
                                    std::to_string(step) +
                                    " = 0; INSERT INTO load_attempts (model_name, started_at, status_before) "
                                    "SELECT model_name, '2026-01-01T00:00:00.000Z', 'unknown' FROM models "
                                    "WHERE compatibility_status = 'testing'; COMMIT");
}

void BM_StartupCleanup(benchmark::State& state) {
  mw::testing_util::TempDir dir;
  const std::string db = dir.File("registry.db");
  Populate(db);
  const bool with_open = state.range(0) != 0;
  for (auto _ : state) {
    state.PauseTiming();
    MakeStuck(db);
    std::unique_ptr<mw::Registry> reg;
    if (!with_open) reg = std::move(mw::Registry::Open(db)).value();
    state.ResumeTiming();
    if (with_open) reg = std::move(mw::Registry::Open(db)).value();
    mw::StateMachine sm(*reg);
    std::ostringstream out;
    auto report = sm.StartupCleanup(out);
    if (!report.ok() || report->marked.size() != static_cast<size_t>(kStuck)) {
      state.SkipWithError("cleanup did not mark every stuck model");
    }
    state.PauseTiming();
    reg.reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_StartupCleanup)
    ->ArgName("with_open")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5);

void BM_DurableAttemptCommits(benchmark::State& state) {
  mw::testing_util::TempDir dir;
  std::string location = dir.File("registry.db");
  std::unique_ptr<mw::testing_util::PgPrivateCluster> cluster;
  if (state.range(0) != 0) {
    setenv("MW_PG_FSYNC", "on", 1);
    cluster = std::make_unique<mw::testing_util::PgPrivateCluster>();
    std::string skip, error;
    if (!cluster->Start(&skip, &error)) {
      state.SkipWithError((skip.empty() ? error : skip).c_str());
      return;
    }
    location = cluster->url();
  }
  auto reg = mw::Registry::Open(location);
  mw::ModelRecord m;
  m.model_name = "m";
  m.file_path = "m.gguf";
  if (!reg.ok() || !(*reg)->AddModel(m).ok()) {
    state.SkipWithError("cannot open the registry");
    return;
  }
  mw::StateMachine sm(**reg);
  for (auto _ : state) {
    auto id = sm.BeginAttempt("m", false, "cpu:bench");
    if (!id.ok() || !sm.FinishSuccess(*id).ok()) {
      state.SkipWithError("attempt failed");
      return;
    }
  }
}
BENCHMARK(BM_DurableAttemptCommits)
    ->ArgName("postgresql")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(200);

}  // namespace

BENCHMARK_MAIN();
