// Crash torture (issue 7, item 1): the real `modelwarden serve` is started,
// given loads of real models (made by make-test-model, loaded by the real
// modelwarden-worker) and of slow or crashing `command` models, and killed
// with SIGKILL at random moments and at exact commit points, then restarted.
// After every kill and every restart the invariants of SPEC §1/§3/§6 are
// checked on the database file itself and through the API:
//   - PRAGMA integrity_check is ok (on the file exactly as the crash left it);
//   - at most one model is in `testing` (attempts are serialised);
//   - after the restart's startup cleanup: no model in `testing`, no open
//     attempt, each formerly stuck model marked by the 3-loads rule with a
//     `server_crash` attempt, and the SPEC §1.4 lines printed;
//   - total_loads never decreases, equals the number of `success` attempts,
//     and every load the server answered 200 is a durable `success` attempt;
//     every 422 answer is a durable closed failure;
//   - no process the server started (keeper, worker, engine, their children)
//     outlives it;
//   - every kill path was really taken at least once (a model seen in
//     `testing`, a load answered 200, each gdb breakpoint hit; a path whose
//     moment never came gets a few extra rounds, then the test fails). gdb
//     is required (tests/require.h).
// Rounds: MW_TORTURE_ROUNDS (default 9: every kill mode once, ~30 s);
// `make test-torture` runs 200. MW_TORTURE_SEED fixes the random choices.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "gdb_stop.h"
#include "require.h"
#include "server_harness.h"
#include "support/pg_test_util.h"

namespace mw::testing_harness {
namespace {

namespace fs = std::filesystem;

enum class KillMode {
  kRandomDelay,      // any moment 0..2.5 s after the loads were sent
  kWhenTesting,      // as soon as the API shows a model in `testing`
  kAtWorkerStart,    // gdb: stopped at Supervisor::Load, after the durable testing commit, before any spawn
  kWhenLoaded,       // once a load answered 200 (loaded workers must die with the server)
  kDuringStartup,    // 0..40 ms after the spawn: migrations / startup cleanup
  kAtFinishSuccess,  // gdb: worker loaded, success not yet recorded
  kAtBeginAttempt,   // gdb: nothing of the attempt durable yet
};
constexpr KillMode kModeCycle[] = {
    KillMode::kRandomDelay, KillMode::kWhenTesting,    KillMode::kAtWorkerStart,
    KillMode::kWhenLoaded,  KillMode::kDuringStartup,  KillMode::kAtFinishSuccess,
    KillMode::kRandomDelay, KillMode::kAtBeginAttempt, KillMode::kWhenTesting};

const char* ModeName(KillMode mode) {
  switch (mode) {
    case KillMode::kRandomDelay:
      return "random-delay";
    case KillMode::kWhenTesting:
      return "when-testing";
    case KillMode::kAtWorkerStart:
      return "at-worker-start(gdb)";
    case KillMode::kWhenLoaded:
      return "when-loaded";
    case KillMode::kDuringStartup:
      return "during-startup";
    case KillMode::kAtFinishSuccess:
      return "at-finish-success(gdb)";
    case KillMode::kAtBeginAttempt:
      return "at-begin-attempt(gdb)";
  }
  return "?";
}

const char* GdbFunction(KillMode mode) {
  switch (mode) {
    case KillMode::kAtWorkerStart:
      return "mw::Supervisor::Load";
    case KillMode::kAtFinishSuccess:
      return "mw::StateMachine::FinishSuccess";
    case KillMode::kAtBeginAttempt:
      return "mw::StateMachine::BeginAttempt";
    default:
      return nullptr;
  }
}

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

struct LoadCall {
  std::string model;
  bool force = false;
  HttpResult result;
  std::atomic<bool> done{false};
};

class TortureRun {
 public:
  // `registry_url`: a postgresql:// URL to run on PostgreSQL (SPEC §14), "" for SQLite.
  explicit TortureRun(std::string registry_url = "")
      : scratch_("mw-torture"), rng_(Seed()), registry_url_(std::move(registry_url)) {
    data_dir_ = scratch_.path() + "/data";
    fs::create_directories(data_dir_ + "/models");
  }

  unsigned seed() const { return seed_; }
  int findings() const { return findings_; }
  int rounds_run() const { return rounds_run_; }
  int gdb_kills() const { return gdb_kills_; }
  int stuck_at_kill() const { return stuck_at_kill_; }
  std::map<std::string, int> mode_counts() const { return mode_counts_; }

  // Starts the first server, registers the model pool.
  void Setup() {
    std::string error;
    std::string model = TestModelPath(&error);
    ASSERT_FALSE(model.empty()) << error;
    for (const char* name : {"real-a", "real-b"}) {
      fs::copy_file(model, data_dir_ + "/models/" + name + ".gguf");
      pool_.push_back(name);
    }
    ASSERT_TRUE(StartServer({}));
    for (const char* name : {"real-a", "real-b"}) {
      auto r =
          RegisterModel(server_->url(), {{"model_name", name}, {"file_path", std::string(name) + ".gguf"}});
      ASSERT_EQ(r.status, 201) << r.raw;
    }
    auto add_command = [&](const std::string& name, const std::vector<std::string>& script) {
      std::vector<std::string> full = {"--print", EngineMark(name)};
      full.insert(full.end(), script.begin(), script.end());
      auto r = RegisterModel(
          server_->url(),
          {{"model_name", name}, {"engine", "command"}, {"load_config", FakeEngineConfig(full)}});
      ASSERT_EQ(r.status, 201) << r.raw;
      pool_.push_back(name);
    };
    add_command("slow-a", {"--sleep-ms", "400", "--ready-line", "fake-engine ready", "--then", "ready"});
    add_command("slow-b", {"--sleep-ms", "1200", "--ready-line", "fake-engine ready", "--then", "ready"});
    add_command("crashy", {"--sleep-ms", "300", "--stderr", "CUDA error: out of memory", "--then", "abort"});
    KillAndCheck("setup");
  }

  // How often each kill path was really taken: the kill came at the moment
  // the mode names (a model seen in `testing`, a load answered 200, the
  // server held at the breakpoint), not after a wait that ran out.
  std::map<KillMode, int> reached() const { return reached_; }

  // One round of `mode` (gdb modes need gdb: the test requires it).
  void Round(int round, KillMode mode) {
    const std::string what = "round " + std::to_string(round) + " (" + ModeName(mode) + ")";
    if (verbose_) std::cout << "[torture] " << what << std::endl;
    SCOPED_TRACE(what);
    ++rounds_run_;
    ++mode_counts_[ModeName(mode)];
    if (mode == KillMode::kDuringStartup) {
      std::string error;
      server_ = ServerProcess::Spawn(Options(), &error);
      ASSERT_TRUE(server_) << error;
      SleepMs(std::uniform_int_distribution<int>(0, 40)(rng_));
      ++reached_[mode];
      KillAndCheck(what);
      return;
    }
    if (!StartServer(what)) return;
    if (const char* function = GdbFunction(mode)) {
      GdbRound(what, function, mode);
      return;
    }
    const std::string url = server_->url();
    // A completed load and unload first, so that successes (and with them
    // the 3-loads rule of the startup cleanup) keep coming.
    {
      LoadCall warm;
      warm.model = std::uniform_int_distribution<int>(0, 1)(rng_) == 0 ? "real-a" : "real-b";
      warm.force = true;
      warm.result =
          Http(url, "POST", "/api/orchestrate/load", {{"model_name", warm.model}, {"force_load", true}});
      RecordAnswer(what, warm);
      if (warm.result.status == 200) {
        auto unload = Http(url, "POST", "/api/orchestrate/unload", {{"model_name", warm.model}});
        Expect(unload.status == 200,
               what + ": unload of " + warm.model + ": " + std::to_string(unload.status) + " " + unload.raw);
      }
    }
    std::vector<std::unique_ptr<LoadCall>> calls;
    std::vector<std::thread> threads;
    const int n = std::uniform_int_distribution<int>(1, 4)(rng_);
    for (int i = 0; i < n; ++i) {
      auto call = std::make_unique<LoadCall>();
      call->model = pool_[std::uniform_int_distribution<size_t>(0, pool_.size() - 1)(rng_)];
      call->force = std::uniform_int_distribution<int>(0, 9)(rng_) < 8;
      calls.push_back(std::move(call));
    }
    for (auto& call : calls) {
      LoadCall* c = call.get();
      threads.emplace_back([c, url] {
        c->result =
            Http(url, "POST", "/api/orchestrate/load", {{"model_name", c->model}, {"force_load", c->force}});
        c->done = true;
      });
    }
    bool reached = false;
    switch (mode) {
      case KillMode::kRandomDelay:
        SleepMs(std::uniform_int_distribution<int>(0, 2500)(rng_));
        reached = true;
        break;
      case KillMode::kWhenTesting:
        reached = PollUntil(
            [&] {
              auto r = Http(url, "GET", "/api/models");
              for (const auto& m : r.body["models"]) {
                if (m.value("compatibility_status", "") == "testing") return true;
              }
              return false;
            },
            milliseconds(5000));
        SleepMs(std::uniform_int_distribution<int>(0, 3)(rng_));
        break;
      case KillMode::kWhenLoaded: {
        bool any_loaded = false;
        PollUntil(
            [&] {
              bool all_done = true;
              for (auto& c : calls) {
                all_done = all_done && c->done;
                any_loaded = any_loaded || (c->done && c->result.status == 200);
              }
              return any_loaded || all_done;
            },
            milliseconds(6000));
        reached = any_loaded;
        break;
      }
      default:
        break;
    }
    if (reached) ++reached_[mode];
    KillAndCheck(what);
    for (auto& t : threads) t.join();
    for (auto& call : calls) RecordAnswer(what, *call);
    CheckAnswersDurable(what);
  }

  // The last restart: everything clean after a graceful stop too.
  void Finish() {
    if (!StartServer("final")) return;
    int status = server_->Stop();
    Expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "final: graceful stop exit status " + std::to_string(status));
    std::string survivors = WaitNoProcessesMarked(scratch_.path());
    Expect(survivors.empty(), "final: processes left after a graceful stop:\n" + survivors);
    RegistrySnapshot snap = Snapshot();
    Expect(snap.ok(), "final: registry " + snap.error + " integrity=" + snap.integrity);
    Expect(snap.CountStatus("testing") == 0 && snap.CountOpenAttempts() == 0,
           "final: testing/open attempts left");
    CheckTotals("final", snap);
    std::map<std::string, int> outcomes;
    for (const auto& a : snap.attempts) ++outcomes[a.outcome];
    std::cout << "[torture] attempts recorded:";
    for (const auto& [outcome, n] : outcomes) std::cout << " " << outcome << "=" << n;
    std::cout << "; kills that left a model in testing: " << stuck_at_kill_ << "; load answers:";
    for (const auto& [code, n] : answers_)
      std::cout << " " << (code == 0 ? "none(killed)" : std::to_string(code)) << "=" << n;
    std::cout << std::endl;
  }

 private:
  unsigned Seed() {
    seed_ = static_cast<unsigned>(
        EnvInt("MW_TORTURE_SEED", static_cast<int>(std::random_device{}() & 0x7fffffff)));
    return seed_;
  }

  // The registry as the last kill left it: a copy of the SQLite file, or
  // the PostgreSQL rows (committed transactions only, by definition).
  RegistrySnapshot Snapshot() {
    return registry_url_.empty() ? ReadRegistryCopy(data_dir_, scratch_.path()) : ReadRegistryPostgres(registry_url_);
  }

  // What the engine of `model` prints, so that it can be found in /proc:
  // with this run's scratch directory in it, because another run (the other
  // backend's, under ctest -j) registers engines of the same names.
  std::string EngineMark(const std::string& model) const { return "engine-of-" + model + "@" + scratch_.path(); }

  void Expect(bool ok, const std::string& message) {
    if (ok) return;
    ++findings_;
    ADD_FAILURE() << message;
  }

  ServerOptions Options() {
    ++starts_;
    ServerOptions options;
    options.data_dir = data_dir_;
    options.marker = scratch_.path();
    options.log_path = scratch_.path() + "/server-" + std::to_string(starts_) + ".log";
    // The models are mw-fake-engine scripts registered with an argv through
    // the API, which the server runs only when told to (SPEC §9.1).
    const std::string config_path = scratch_.path() + "/config.toml";
    std::ofstream config(config_path);
    config << "allow_api_commands = true\n";
    if (!registry_url_.empty()) config << "registry = \"" << registry_url_ << "\"\n";
    options.extra_args = {"--config", config_path};
    return options;
  }

  // Starts the server and checks what its startup cleanup did with the
  // state the last kill left (last_snapshot_).
  bool StartServer(const std::string& what) {
    std::string error;
    server_ = ServerProcess::Spawn(Options(), &error);
    if (!server_) {
      Expect(false, what + ": " + error);
      return false;
    }
    if (!server_->WaitListening()) {
      Expect(false, what + ": the server did not start:\n" + server_->Log());
      return false;
    }
    const std::string log = server_->Log();
    Expect(log.find("\u2705 Compatibility status cleanup completed") != std::string::npos,
           what + ": no cleanup line in:\n" + log);
    if (!last_snapshot_) return true;
    const RegistrySnapshot& before = *last_snapshot_;
    std::vector<std::string> stuck;
    for (const auto& [name, row] : before.models) {
      if (row.status == "testing") stuck.push_back(name);
    }
    if (!stuck.empty()) {
      Expect(log.find("Found " + std::to_string(stuck.size()) +
                      " model(s) stuck in 'testing' status from previous crash") != std::string::npos,
             what + ": startup did not report the stuck model(s):\n" + log);
    }
    // The file after cleanup (the server is idle: nothing writes now).
    RegistrySnapshot after = Snapshot();
    Expect(after.ok(), what + ": registry after restart: " + after.error + " integrity=" + after.integrity);
    Expect(after.CountStatus("testing") == 0, what + ": a model is still testing after startup cleanup");
    Expect(after.CountOpenAttempts() == 0, what + ": an attempt is still open after startup cleanup");
    for (const std::string& name : stuck) {
      const int64_t loads = before.models.at(name).total_loads;
      const std::string expected = loads >= 3 ? "degraded" : "incompatible";
      Expect(after.models[name].status == expected, what + ": '" + name + "' stuck with " +
                                                        std::to_string(loads) + " loads became " +
                                                        after.models[name].status + ", expected " + expected);
      Expect(log.find("Marked '" + name + "' as " + expected + " (crashed during test)") != std::string::npos,
             what + ": no 'Marked' line for " + name + ":\n" + log);
      Expect(!after.attempts.empty() &&
                 after.CountOutcome(name, "server_crash") > before.CountOutcome(name, "server_crash"),
             what + ": no server_crash attempt for " + name);
    }
    CheckTotals(what + " after restart", after);
    auto models = Http(server_->url(), "GET", "/api/models");
    Expect(models.status == 200, what + ": GET /api/models after restart: " + models.raw);
    for (const auto& m : models.body["models"]) {
      Expect(m.value("compatibility_status", "") != "testing", what + ": API shows testing after restart");
      Expect(!m.value("loaded", false), what + ": API shows a model loaded right after a restart");
    }
    return true;
  }

  // SIGKILLs the server, then checks for orphans and the file as left.
  // `gdb`, if set, holds the server stopped: it must let go before the
  // server can be reaped.
  void KillAndCheck(const std::string& what, GdbStop* gdb = nullptr) {
    const size_t alive_before = ProcessesMarked(scratch_.path()).size();
    if (server_) server_->Signal(SIGKILL);
    if (gdb != nullptr) gdb->Detach();
    if (server_) server_->KillAndWait(SIGKILL);
    std::string survivors = WaitNoProcessesMarked(scratch_.path());
    Expect(survivors.empty(), what + ": processes outlived the server (SIGKILL):\n" + survivors);
    for (pid_t pid : ProcessesMarked(scratch_.path())) ::kill(pid, SIGKILL);  // keep the next rounds clean
    RegistrySnapshot snap = Snapshot();
    if (!snap.error.empty() && snap.error.rfind("no registry.db", 0) == 0) return;
    Expect(snap.ok(), what + ": registry after SIGKILL: " + snap.error + " integrity=" + snap.integrity);
    Expect(snap.CountStatus("testing") <= 1, what + ": more than one model in testing");
    Expect(snap.CountOpenAttempts() <= 1, what + ": more than one open attempt");
    for (const auto& a : snap.attempts) {
      if (a.open) {
        Expect(snap.models.count(a.model_name) && snap.models.at(a.model_name).status == "testing",
               what + ": open attempt " + std::to_string(a.id) + " of a model not in testing");
      }
    }
    CheckTotals(what + " after SIGKILL", snap);
    if (verbose_) {
      std::cout << "[torture]   killed with " << alive_before
                << " process(es) of the server alive; file left with " << snap.CountStatus("testing")
                << " testing, " << snap.CountOpenAttempts() << " open attempt(s), " << snap.attempts.size()
                << " attempts in all" << std::endl;
    }
    stuck_at_kill_ += snap.CountStatus("testing");
    last_snapshot_ = snap;
  }

  void CheckTotals(const std::string& what, const RegistrySnapshot& snap) {
    for (const auto& [name, row] : snap.models) {
      int64_t& max_loads = max_total_loads_[name];
      Expect(row.total_loads >= max_loads, what + ": total_loads of " + name + " went from " +
                                               std::to_string(max_loads) + " to " +
                                               std::to_string(row.total_loads));
      max_loads = std::max(max_loads, row.total_loads);
      Expect(row.total_loads == snap.CountOutcome(name, "success"),
             what + ": total_loads of " + name + " is " + std::to_string(row.total_loads) + " but " +
                 std::to_string(snap.CountOutcome(name, "success")) + " attempts succeeded");
    }
  }

  void RecordAnswer(const std::string& what, const LoadCall& call) {
    const HttpResult& r = call.result;
    ++answers_[r.status];
    if (r.status == 0) return;  // the server died under the request
    if (r.status == 200) {
      if (r.body.value("already_loaded", false)) return;
      if (r.body.contains("attempt_id") && r.body["attempt_id"].is_number_integer()) {
        acked_success_[r.body["attempt_id"].get<int64_t>()] = call.model;
      } else {
        Expect(false, what + ": 200 without attempt_id: " + r.raw);
      }
      return;
    }
    if (r.status == 422) {
      const Json& error = r.body["error"];
      if (error.contains("attempt_id") && error["attempt_id"].is_number_integer()) {
        acked_failure_[error["attempt_id"].get<int64_t>()] = error["classification"].value("outcome", "");
      }
      return;
    }
    if (r.status == 409 && r.body["error"].value("code", "") == "model_incompatible" && !call.force) return;
    Expect(false, what + ": unexpected answer to the load of " + call.model + " (force=" +
                      std::to_string(call.force) + "): " + std::to_string(r.status) + " " + r.raw);
  }

  // Every answer the server gave must be on disk: no acknowledged outcome lost.
  void CheckAnswersDurable(const std::string& what) {
    if (!last_snapshot_) return;
    std::map<int64_t, const AttemptRow*> by_id;
    for (const auto& a : last_snapshot_->attempts) by_id[a.id] = &a;
    for (const auto& [id, model] : acked_success_) {
      auto it = by_id.find(id);
      Expect(it != by_id.end() && it->second->outcome == "success" && it->second->model_name == model,
             what + ": attempt " + std::to_string(id) + " of " + model +
                 " was answered 200 but is not a durable success");
    }
    for (const auto& [id, outcome] : acked_failure_) {
      auto it = by_id.find(id);
      Expect(it != by_id.end() && !it->second->open && it->second->outcome == outcome,
             what + ": attempt " + std::to_string(id) + " was answered 422 (" + outcome +
                 ") but is not durable");
    }
  }

  void GdbRound(const std::string& what, const char* function, KillMode mode) {
    // The model: a slow command model (its engine is easy to find by name).
    const std::string model = mode == KillMode::kAtFinishSuccess ? "slow-a" : pool_[2 + (rounds_run_ % 2)];
    GdbStop gdb;
    std::string error;
    if (!gdb.Attach(server_->pid(), function, scratch_.path() + "/gdb.log", &error)) {
      Expect(false, what + ": " + error);
      KillAndCheck(what, &gdb);
      return;
    }
    const std::string url = server_->url();
    LoadCall call;
    call.model = model;
    call.force = true;
    std::thread thread([&] {
      call.result = Http(url, "POST", "/api/orchestrate/load", {{"model_name", model}, {"force_load", true}});
      call.done = true;
    });
    const bool hit = gdb.WaitHit(milliseconds(30000));
    Expect(hit, what + ": the server never reached " + function);
    const bool engine_running = !ProcessesMarked(EngineMark(model)).empty();
    if (mode == KillMode::kAtFinishSuccess) {
      Expect(engine_running, what + ": at FinishSuccess the engine of " + model + " should be running");
    } else {
      Expect(!engine_running, what + ": at " + function + " no engine of " + model + " may exist yet");
    }
    KillAndCheck(what, &gdb);
    thread.join();
    if (!hit || !last_snapshot_) return;
    ++reached_[mode];
    const RegistrySnapshot& snap = *last_snapshot_;
    const ModelRow& row = snap.models.at(model);
    if (mode == KillMode::kAtBeginAttempt) {
      // Killed before the commit point: nothing of this attempt is on disk.
      Expect(row.status != "testing" && snap.CountOpenAttempts() == 0,
             what + ": killed before BeginAttempt, yet " + model + " is " + row.status);
    } else {
      // Killed after the commit point "testing mark": it must be on disk.
      Expect(row.status == "testing" && snap.CountOpenAttempts() == 1,
             what + ": killed after the durable testing commit, yet " + model + " is " + row.status +
                 " with " + std::to_string(snap.CountOpenAttempts()) + " open attempt(s)");
    }
    ++gdb_kills_;
  }

  ScratchDir scratch_;
  unsigned seed_ = 0;
  std::mt19937 rng_;
  std::string registry_url_;
  std::string data_dir_;
  std::vector<std::string> pool_;
  std::unique_ptr<ServerProcess> server_;
  std::optional<RegistrySnapshot> last_snapshot_;
  std::map<std::string, int64_t> max_total_loads_;
  std::map<int64_t, std::string> acked_success_;  // attempt id -> model
  std::map<int64_t, std::string> acked_failure_;  // attempt id -> outcome
  std::map<std::string, int> mode_counts_;
  std::map<KillMode, int> reached_;
  int starts_ = 0;
  int findings_ = 0;
  int rounds_run_ = 0;
  int gdb_kills_ = 0;
  int stuck_at_kill_ = 0;
  std::map<int, int> answers_;  // HTTP status of load answers (0: none, the server was killed)
  bool verbose_ = EnvInt("MW_TORTURE_VERBOSE", 0) != 0;
};

// Each kill path must have been taken at least once: a mode whose moment
// never came (no model seen in `testing` within the wait, no load answered
// 200) gets extra rounds, at most kExtraRoundsPerMode each, then fails.
constexpr int kExtraRoundsPerMode = 4;

void RunTorture(const std::string& registry_url) {
  const int rounds = EnvInt("MW_TORTURE_ROUNDS", 9);
  TortureRun run(registry_url);
  std::cout << "[torture] seed " << run.seed() << " (MW_TORTURE_SEED to replay), rounds " << rounds
            << std::endl;
  run.Setup();
  if (::testing::Test::HasFatalFailure()) return;
  std::set<KillMode> scheduled;
  int round = 0;
  for (; round < rounds; ++round) {
    const KillMode mode = kModeCycle[round % std::size(kModeCycle)];
    scheduled.insert(mode);
    run.Round(round, mode);
    if (::testing::Test::HasFatalFailure()) break;
  }
  for (KillMode mode : scheduled) {
    for (int extra = 0; extra < kExtraRoundsPerMode && run.reached()[mode] == 0; ++extra, ++round) {
      if (::testing::Test::HasFatalFailure()) break;
      std::cout << "[torture] " << ModeName(mode) << " not reached yet: one more round" << std::endl;
      run.Round(round, mode);
    }
  }
  run.Finish();
  std::cout << "[torture] rounds run: " << run.rounds_run() << ", failures found: " << run.findings()
            << " (modes:";
  for (const auto& [mode, n] : run.mode_counts()) std::cout << " " << mode << "=" << n;
  std::cout << "; reached:";
  for (const auto& [mode, n] : run.reached()) std::cout << " " << ModeName(mode) << "=" << n;
  std::cout << "), exact commit-point kills: " << run.gdb_kills() << std::endl;
  if (::testing::Test::HasFatalFailure()) return;
  int gdb_modes = 0;
  for (KillMode mode : scheduled) {
    EXPECT_GE(run.reached()[mode], 1)
        << "the kill path " << ModeName(mode) << " was never taken in " << run.rounds_run() << " rounds";
    if (GdbFunction(mode) != nullptr) ++gdb_modes;
  }
  EXPECT_GE(run.gdb_kills(), gdb_modes) << "each gdb breakpoint must have held the server once";
  // A kill at Supervisor::Load (after the durable `testing` commit) leaves
  // the model stuck in `testing`: the startup cleanup must have had work.
  if (scheduled.count(KillMode::kAtWorkerStart) != 0) {
    EXPECT_GE(run.stuck_at_kill(), 1) << "no kill left a model in testing";
  }
}

// The commit-point rounds hold the server with gdb.
constexpr char kGdbPackage[] =
    "gdb (Debian package 'gdb'; scripts/bootstrap installs it) for the commit-point rounds";

TEST(TortureTest, ServerKilledAtRandomMomentsAndCommitPoints) {
  MW_REQUIRE(GdbStop::Available(), kGdbPackage);
  RunTorture("");
}

// The same rounds with the registry in PostgreSQL (SPEC §14): the durable
// `testing` commit, the worker start and the success record are committed
// PostgreSQL transactions, and the restart's cleanup settles this node's
// attempts.
TEST(TortureTest, ServerKilledAtRandomMomentsAndCommitPointsOnPostgreSQL) {
  MW_REQUIRE(GdbStop::Available(), kGdbPackage);
  std::string skip, error;
  auto pg = testing_util::PgTestSchema::Create(&skip, &error);
  if (!pg) {
    if (!skip.empty()) GTEST_SKIP() << skip;
    FAIL() << error;
  }
  RunTorture(pg->url());
}

}  // namespace
}  // namespace mw::testing_harness
