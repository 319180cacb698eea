// Startup cleanup at scale: 100 000 models, 1 000 of them stuck in testing
// with an open attempt each (as after a crash of an older, unqueued server).
// Each iteration re-creates the stuck state with the registry closed, then
// times StartupCleanup alone, and separately Open + StartupCleanup.
// BM_DurableAttemptCommits: the registry's share of one load (the durable
// `testing` commit and the success record) on SQLite and on PostgreSQL 15
// (a private cluster with fsync on, over its unix socket).
// BM_ReadModels: the registry's share of GET /api/models when the server
// builds the list (ListModels, 1 000 models) and of GET /api/models/{name}
// (GetModelDetail: the model, 20 attempts, the verdicts), on SQLite and on PostgreSQL (same cluster
// kind). One connection per server on PostgreSQL: these round trips are
// what a request waits for.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <sstream>

#include "compat/state_machine.h"
#include "support/pg_test_util.h"
#include "support/registry_test_util.h"

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

// SQLite file, or a private PostgreSQL cluster with fsync on (arg != 0).
struct BenchRegistry {
  mw::testing_util::TempDir dir;
  std::unique_ptr<mw::testing_util::PgPrivateCluster> cluster;
  std::unique_ptr<mw::Registry> reg;
  std::string error;

  explicit BenchRegistry(bool postgresql) {
    std::string location = dir.File("registry.db");
    if (postgresql) {
      setenv("MW_PG_FSYNC", "on", 1);
      cluster = std::make_unique<mw::testing_util::PgPrivateCluster>();
      std::string skip;
      if (!cluster->Start(&skip, &error)) {
        if (error.empty()) error = skip;
        return;
      }
      location = cluster->url();
    }
    auto opened = mw::Registry::Open(location);
    if (!opened.ok()) {
      error = "cannot open the registry";
      return;
    }
    reg = std::move(opened).value();
  }
};

void BM_DurableAttemptCommits(benchmark::State& state) {
  BenchRegistry b(state.range(0) != 0);
  if (!b.reg) return state.SkipWithError(b.error.c_str());
  mw::ModelRecord m;
  m.model_name = "m";
  m.file_path = "m.gguf";
  if (!b.reg->AddModel(m).ok()) return state.SkipWithError("cannot add a model");
  mw::StateMachine sm(*b.reg);
  for (auto _ : state) {
    auto id = sm.BeginAttempt("m", false, "cpu:bench");
    if (!id.ok() || !sm.FinishSuccess(*id).ok()) return state.SkipWithError("attempt failed");
  }
}
BENCHMARK(BM_DurableAttemptCommits)
    ->ArgName("postgresql")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(200);

void BM_ReadModels(benchmark::State& state) {
  BenchRegistry b(state.range(0) != 0);
  if (!b.reg) return state.SkipWithError(b.error.c_str());
  constexpr int kListed = 1000;
  for (int i = 0; i < kListed; ++i) {
    mw::ModelRecord m;
    m.model_name = "bench-model-" + std::to_string(i);
    m.file_path = m.model_name + ".gguf";
    m.load_config = R"({"n_ctx":4096,"flash_attn":"auto","n_gpu_layers":-1})";
    if (!b.reg->AddModel(m).ok()) return state.SkipWithError("cannot add the models");
  }
  const bool list = state.range(1) == 0;
  int n = 0;
  for (auto _ : state) {
    if (list) {
      auto all = b.reg->ListModels();
      if (!all.ok() || all->size() != static_cast<size_t>(kListed)) return state.SkipWithError("list failed");
    } else {
      const std::string name = "bench-model-" + std::to_string(n++ % kListed);
      if (!b.reg->GetModelDetail(name, 20).ok()) {
        return state.SkipWithError("read failed");
      }
    }
  }
}
// Fixed iterations: a run of the function pays an initdb and 1 000 commits.
BENCHMARK(BM_ReadModels)
    ->ArgNames({"postgresql", "detail"})
    ->Args({0, 0})
    ->Args({1, 0})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(100);
BENCHMARK(BM_ReadModels)
    ->ArgNames({"postgresql", "detail"})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(2000);

}  // namespace

BENCHMARK_MAIN();
