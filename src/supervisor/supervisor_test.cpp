// Supervisor with real processes: command engines and a fake worker
// (mw-fake-engine speaking the protocol on fd 3).
#include "supervisor/supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "supervisor/load_session.h"
#include "supervisor/runtime_dir.h"
#include "supervisor/test_support.h"

namespace mw {
namespace {

using std::chrono::milliseconds;
using testing_support::FakeEngine;

LoadRequest Command(std::vector<std::string> engine_args) {
  LoadRequest r;
  r.model_name = "m1";
  r.model_path = "/models/m1.gguf";
  r.engine = EngineKind::kCommand;
  r.argv = {FakeEngine()};
  r.argv.insert(r.argv.end(), engine_args.begin(), engine_args.end());
  return r;
}

// A llama.cpp load whose "worker" is mw-fake-engine running `script`.
LoadRequest FakeWorker(const std::vector<std::string>& script) {
  std::string joined;
  for (const std::string& a : script) joined += a + "\n";
  ::setenv("MW_FAKE_ENGINE_SCRIPT", joined.c_str(), 1);
  LoadRequest r;
  r.model_name = "w1";
  r.model_path = "/models/w1.gguf";
  r.engine = EngineKind::kLlamaCpp;
  r.load_config_json = R"({"n_ctx":512})";
  return r;
}

SupervisorOptions Options() {
  SupervisorOptions o;
  o.worker_path = FakeEngine();
  // Long enough that an engine which exits at once is seen exiting even on a
  // loaded machine; short enough to keep the settle tests quick.
  o.command_settle = milliseconds(1000);
  o.worker_stop.polite_grace = milliseconds(3000);
  o.command_stop.term_grace = milliseconds(3000);
  return o;
}

TEST(SupervisorTest, CommandReadyViaPatternWithSubstitutionAndConfigEnv) {
  Supervisor sup(Options());
  LoadRequest r = Command({"--print", "model={model_name} path={model_path} port={port}", "--env",
                           "MODELWARDEN_LOAD_CONFIG", "--ready-line", "server listening", "--then", "ready"});
  r.load_config_json = R"({"argv":["x"],"ready_pattern":"listening"})";
  r.ready_pattern = "listen(ing)?";
  int started_pid = 0;
  LoadObserver obs;
  obs.on_started = [&](int pid) { started_pid = pid; };
  auto report = sup.Load(r, obs);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->outcome, LoadOutcome::kSuccess) << report->error_message << "\n" << report->log_tail;
  EXPECT_EQ(report->pid, started_pid);
  EXPECT_GT(report->endpoint.port, 0);
  EXPECT_NE(report->log_tail.find("model=m1 path=/models/m1.gguf port=" + std::to_string(report->endpoint.port)),
            std::string::npos);
  EXPECT_NE(report->log_tail.find(R"(MODELWARDEN_LOAD_CONFIG={"argv":["x"],"ready_pattern":"listening"})"),
            std::string::npos);
  EXPECT_TRUE(sup.IsLoaded("m1"));
  ASSERT_EQ(sup.Loaded().size(), 1u);
  EXPECT_EQ(sup.Loaded()[0].pid, report->pid);
  EXPECT_EQ(sup.Load(r).status().code(), StatusCode::kAlreadyExists);

  auto exit = sup.Unload("m1");
  ASSERT_TRUE(exit.ok());
  EXPECT_FALSE(sup.IsLoaded("m1"));
  EXPECT_TRUE(testing_support::ProcessGone(report->pid));
  EXPECT_EQ(sup.Unload("m1").status().code(), StatusCode::kNotFound);
}

// SPEC §20: placeholders are substituted once; a value is never expanded again.
TEST(SupervisorTest, PlaceholdersAreSubstitutedInOnePass) {
  const supervisor_internal::Placeholders values{"/m/x{port}{model_name}.gguf", "c11{api_key}", 38033, "k{port}"};
  EXPECT_EQ(supervisor_internal::SubstituteArgv(
                {"{model_path}", "--name={model_name}", "-p{port}:{port}", "--key", "{api_key}", "{other}", "{", "{port"},
                values),
            (std::vector<std::string>{"/m/x{port}{model_name}.gguf", "--name=c11{api_key}", "-p38033:38033", "--key",
                                      "k{port}", "{other}", "{", "{port"}));
}

// SPEC §20: a command engine gets a per-load secret ({api_key} and the
// environment) and none of the server's own secrets.
TEST(SupervisorTest, CommandGetsAPerLoadKeyAndNoServerSecrets) {
  ::setenv("MODELWARDEN_API_KEY", "server-secret", 1);
  ::setenv("HF_TOKEN", "hf-secret", 1);
  ::setenv("PGPASSWORD", "pg-secret", 1);
  Supervisor sup(Options());
  LoadRequest r = Command({"--print", "key={api_key}", "--env", "MODELWARDEN_ENGINE_API_KEY", "--env", "LLAMA_API_KEY",
                           "--env", "MODELWARDEN_API_KEY", "--env", "HF_TOKEN", "--env", "PGPASSWORD", "--env",
                           "MINE", "--then", "ready"});
  r.env = {{"MINE", "given"}};
  r.ready_pattern = "ready";
  auto report = sup.Load(r);
  ::unsetenv("MODELWARDEN_API_KEY");
  ::unsetenv("HF_TOKEN");
  ::unsetenv("PGPASSWORD");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->outcome, LoadOutcome::kSuccess) << report->error_message << "\n" << report->log_tail;
  const std::string key = report->endpoint.api_key;
  ASSERT_EQ(key.size(), 64u);
  EXPECT_EQ(key.find_first_not_of("0123456789abcdef"), std::string::npos) << key;
  const std::string& log = report->log_tail;
  EXPECT_NE(log.find("key=" + key), std::string::npos) << log;
  EXPECT_NE(log.find("MODELWARDEN_ENGINE_API_KEY=" + key), std::string::npos) << log;
  EXPECT_NE(log.find("LLAMA_API_KEY=" + key), std::string::npos) << log;
  EXPECT_NE(log.find("MODELWARDEN_API_KEY=<unset>"), std::string::npos) << log;
  EXPECT_NE(log.find("HF_TOKEN=<unset>"), std::string::npos) << log;
  EXPECT_NE(log.find("PGPASSWORD=<unset>"), std::string::npos) << log;
  EXPECT_NE(log.find("MINE=given"), std::string::npos) << log;
  EXPECT_EQ(log.find("secret"), std::string::npos) << log;
  ASSERT_TRUE(sup.Unload("m1").ok());
  // Another load, another key.
  auto again = sup.Load(r);
  ASSERT_TRUE(again.ok() && again->ok());
  EXPECT_NE(again->endpoint.api_key, key);
}

// SPEC §20: a worker is given a socket in a directory only this user can
// enter, and the socket file goes with the session.
TEST(SupervisorTest, WorkerGetsASocketInAPrivateRuntimeDirectory) {
  const std::string dir = testing_support::TempDir() + "/run";
  ::mkdir(dir.c_str(), 0755);
  std::ofstream(dir + "/7.sock") << "stale";
  SupervisorOptions o = Options();
  o.runtime_dir = dir;
  Supervisor sup(o);
  ASSERT_TRUE(sup.PrepareRuntime().ok());
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_NE(::access((dir + "/7.sock").c_str(), F_OK), 0);  // stale: removed at start
  auto report = sup.Load(FakeWorker({"--protocol", R"({"type":"loaded","devices":[],"n_ctx":1,"load_ms":1})", "--then",
                                     "wait-stdin"}));
  ASSERT_TRUE(report.ok() && report->ok()) << (report.ok() ? report->error_message : report.status().ToString());
  EXPECT_EQ(report->endpoint.port, 0);
  EXPECT_EQ(report->endpoint.socket_path.rfind(dir + "/", 0), 0u) << report->endpoint.socket_path;
  std::ofstream(report->endpoint.socket_path) << "";  // stands in for the engine's socket
  ASSERT_TRUE(sup.Unload("w1").ok());
  EXPECT_NE(::access(report->endpoint.socket_path.c_str(), F_OK), 0);
  // A worker whose `loaded` names another socket is not believed.
  auto other = sup.Load(FakeWorker({"--protocol", R"({"type":"loaded","devices":[],"n_ctx":1,"load_ms":1,"socket":"/tmp/x.sock"})",
                                    "--then", "wait-stdin"}));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->outcome, LoadOutcome::kFailed);
  EXPECT_EQ(other->error_code, kLoadErrProtocol);
}

TEST(SupervisorTest, RuntimeDirectoryTooLongForASocketFallsBackToAPrivateTemporaryOne) {
  auto dir = PrepareRuntimeDir(testing_support::TempDir() + "/" + std::string(100, 'd'));
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  EXPECT_TRUE(dir->temporary);
  EXPECT_LT(dir->path.size() + 1 + kRuntimeNameRoom, 108u);
  struct stat st {};
  ASSERT_EQ(::stat(dir->path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  RemoveRuntimeDir(*dir);
  EXPECT_NE(::access(dir->path.c_str(), F_OK), 0);
}

TEST(SupervisorTest, CommandReadyViaHealthPath) {
  Supervisor sup(Options());
  LoadRequest r = Command({"--sleep-ms", "150", "--port", "{port}", "--serve-health", "--then", "hang"});
  r.health_path = "/health";
  auto report = sup.Load(r);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->outcome, LoadOutcome::kSuccess) << report->error_message;
}

TEST(SupervisorTest, CommandWithoutReadinessSignIsReadyAfterSettling) {
  Supervisor sup(Options());
  auto report = sup.Load(Command({"--then", "hang"}));
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->outcome, LoadOutcome::kSuccess);
  // ...but one that exits at once is not.
  LoadRequest quick = Command({"--then", "exit0"});
  quick.model_name = "m2";
  auto failed = sup.Load(quick);
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->outcome, LoadOutcome::kFailed);
  EXPECT_EQ(failed->error_code, kLoadErrExited);
}

struct CrashCase {
  const char* action;
  LoadOutcome outcome;
  std::optional<int> exit_code;
  std::optional<std::string> signal;
};

TEST(SupervisorTest, FailureLineThenCrashOrExit) {
  Supervisor sup(Options());
  for (const CrashCase& c : {CrashCase{"abort", LoadOutcome::kCrashed, std::nullopt, "SIGABRT"},
                             CrashCase{"segv", LoadOutcome::kCrashed, std::nullopt, "SIGSEGV"},
                             CrashCase{"sigkill-self", LoadOutcome::kCrashed, std::nullopt, "SIGKILL"},
                             CrashCase{"exit1", LoadOutcome::kFailed, 1, std::nullopt}}) {
    LoadRequest r = Command({"--print", "loading tensors", "--stderr", "CUDA error: out of memory", "--then", c.action});
    r.ready_pattern = "never printed";
    auto report = sup.Load(r);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_EQ(report->outcome, c.outcome) << c.action;
    EXPECT_EQ(report->exit_code(), c.exit_code) << c.action;
    EXPECT_EQ(report->signal_name(), c.signal) << c.action;
    EXPECT_EQ(report->error_code, kLoadErrExited);
    EXPECT_NE(report->log_tail.find("CUDA error: out of memory\n"), std::string::npos) << report->log_tail;
    EXPECT_FALSE(sup.IsLoaded("m1"));  // the name is free again
  }
}

TEST(SupervisorTest, HangPastTheLoadTimeoutIsKilled) {
  Supervisor sup(Options());
  LoadRequest r = Command({"--print", "waiting for device", "--then", "hang"});
  r.ready_pattern = "ready";
  r.load_timeout_s = 1;
  auto report = sup.Load(r);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->outcome, LoadOutcome::kTimeout);
  EXPECT_EQ(report->error_code, kLoadErrTimeout);
  EXPECT_NE(report->log_tail.find("waiting for device"), std::string::npos);
  EXPECT_TRUE(testing_support::ProcessGone(report->pid));
}

TEST(SupervisorTest, DeathAfterReadyIsReportedAtOnce) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<UnexpectedExit> death;
  SupervisorOptions o = Options();
  Supervisor* sup_ptr = nullptr;
  o.on_unexpected_exit = [&](const UnexpectedExit& e) {
    EXPECT_FALSE(sup_ptr->IsLoaded(e.model_name));  // already removed when the callback runs
    std::lock_guard<std::mutex> lock(mu);
    death = e;
    cv.notify_all();
  };
  Supervisor sup(o);
  sup_ptr = &sup;
  LoadRequest r = Command({"--print", "ready", "--sleep-ms", "300", "--print", "GGML_ASSERT failed", "--then", "segv"});
  r.ready_pattern = "^ready$";
  auto report = sup.Load(r);
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->outcome, LoadOutcome::kSuccess);
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(20), [&] { return death.has_value(); }));
  EXPECT_EQ(death->model_name, "m1");
  EXPECT_EQ(death->exit.signal, SIGSEGV);
  EXPECT_NE(death->log_tail.find("GGML_ASSERT failed"), std::string::npos);
  EXPECT_FALSE(sup.IsLoaded("m1"));
}

TEST(SupervisorTest, UserStopIsNeverAnUnexpectedExit) {
  std::atomic<int> deaths{0};
  SupervisorOptions o = Options();
  o.on_unexpected_exit = [&](const UnexpectedExit&) { ++deaths; };
  Supervisor sup(o);
  LoadRequest r = Command({"--ignore-sigterm", "--then", "hang"});
  auto report = sup.Load(r);
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->outcome, LoadOutcome::kSuccess);
  auto exit = sup.Unload("m1");  // escalates to SIGKILL
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->signal, SIGKILL);
  EXPECT_EQ(deaths.load(), 0);
}

TEST(SupervisorTest, UnloadDuringLoadCancels) {
  Supervisor sup(Options());
  LoadRequest r = Command({"--print", "slow start", "--then", "hang"});
  r.ready_pattern = "ready";
  std::optional<Result<LoadReport>> result;
  std::thread loader([&] { result = sup.Load(r); });
  while (!sup.LogTail("m1").has_value() || sup.LogTail("m1")->empty()) std::this_thread::yield();
  auto exit = sup.Unload("m1");
  loader.join();
  ASSERT_TRUE(exit.ok());
  ASSERT_TRUE(result && result->ok());
  EXPECT_EQ((*result)->outcome, LoadOutcome::kCancelled);
  EXPECT_FALSE(sup.IsLoaded("m1"));
}

TEST(SupervisorTest, BadRequestsAreStatusErrors) {
  Supervisor sup(Options());
  LoadRequest r = Command({"--then", "hang"});
  r.ready_pattern = "(unclosed";
  EXPECT_EQ(sup.Load(r).status().code(), StatusCode::kInvalidArgument);
  LoadRequest empty = Command({});
  empty.argv.clear();
  EXPECT_EQ(sup.Load(empty).status().code(), StatusCode::kInvalidArgument);
  SupervisorOptions missing = Options();
  missing.worker_path = "/nonexistent/modelwarden-worker";
  Supervisor no_worker(missing);
  EXPECT_EQ(no_worker.Load(FakeWorker({})).status().code(), StatusCode::kFailedPrecondition);
}

TEST(SupervisorTest, UnexecutableCommandIsAFailedAttempt) {
  Supervisor sup(Options());
  LoadRequest r = Command({});
  r.argv = {"/nonexistent/llama-server", "-m", "{model_path}"};
  auto report = sup.Load(r);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->outcome, LoadOutcome::kFailed);
  EXPECT_EQ(report->error_code, kLoadErrExecFailed);
  EXPECT_NE(report->error_message.find("/nonexistent/llama-server"), std::string::npos);
}

TEST(SupervisorTest, WorkerProgressThenLoaded) {
  Supervisor sup(Options());
  LoadRequest r = FakeWorker({"--protocol", R"({"type":"progress","progress":0.25})", "--protocol",
                              R"({"type":"progress","progress":1})", "--protocol",
                              R"({"type":"loaded","devices":[{"name":"CPU","kind":"cpu","memory_used":1234}],"n_ctx":512,"load_ms":42})",
                              "--then", "wait-stdin"});
  std::vector<double> progress;
  LoadObserver obs;
  obs.on_progress = [&](double p) { progress.push_back(p); };
  auto report = sup.Load(r, obs);
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->outcome, LoadOutcome::kSuccess) << report->error_message << report->log_tail;
  ASSERT_EQ(report->devices.size(), 1u);
  EXPECT_EQ(report->devices[0].memory_used, 1234u);
  EXPECT_EQ(report->n_ctx, 512);
  EXPECT_EQ(report->load_ms, 42);
  EXPECT_FALSE(progress.empty());
  EXPECT_DOUBLE_EQ(progress.back(), 1.0);
  auto exit = sup.Unload("w1");  // "stop" on stdin: a clean exit 0
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->success()) << exit->Describe();
}

// SPEC §16: with prestart_worker a llama.cpp load goes to the worker started
// ahead (the fake says so in its log, with its pid), its log is that
// process's own, and a new one is started for the next load.
TEST(SupervisorTest, PreStartedWorkerTakesTheLoadAndIsReplaced) {
  SupervisorOptions options = Options();
  options.prestart_worker = true;
  Supervisor sup(options);
  LoadRequest r = FakeWorker({"--stderr", "fake: loading", "--protocol",
                              R"({"type":"loaded","devices":[],"n_ctx":512,"load_ms":1})", "--then", "wait-stdin"});
  ASSERT_TRUE(sup.PrepareRuntime().ok());
  int previous = 0;
  for (const char* name : {"w1", "w2"}) {
    r.model_name = name;
    auto report = sup.Load(r);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    ASSERT_EQ(report->outcome, LoadOutcome::kSuccess) << report->error_message << report->log_tail;
    EXPECT_EQ(report->log_tail.rfind("fake worker: pre-started pid " + std::to_string(report->pid) + "\n", 0), 0u)
        << report->log_tail;
    EXPECT_NE(report->log_tail.find("fake: loading"), std::string::npos) << report->log_tail;
    EXPECT_NE(report->pid, previous);
    previous = report->pid;
  }
  sup.Shutdown();
  EXPECT_TRUE(testing_support::ProcessGone(previous));
}

TEST(SupervisorTest, WorkerErrorMessageIsTheReason) {
  Supervisor sup(Options());
  auto report = sup.Load(FakeWorker({"--stderr", "gguf_init_from_file: invalid magic", "--protocol",
                                     R"({"type":"error","code":"invalid_model","message":"not a GGUF file"})",
                                     "--then", "exit1"}));
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->outcome, LoadOutcome::kFailed);
  EXPECT_EQ(report->error_code, "invalid_model");
  EXPECT_EQ(report->error_message, "not a GGUF file");
  EXPECT_EQ(report->exit_code(), 1);
  EXPECT_NE(report->log_tail.find("invalid magic"), std::string::npos);
}

TEST(SupervisorTest, GarbageOrClosedProtocolFailsTheLoad) {
  Supervisor sup(Options());
  auto garbage = sup.Load(FakeWorker({"--then", "garbage-protocol"}));
  ASSERT_TRUE(garbage.ok());
  EXPECT_EQ(garbage->outcome, LoadOutcome::kFailed);
  EXPECT_EQ(garbage->error_code, kLoadErrProtocol);
  EXPECT_TRUE(testing_support::ProcessGone(garbage->pid));

  auto closed = sup.Load(FakeWorker({"--then", "close-protocol"}));
  ASSERT_TRUE(closed.ok());
  EXPECT_EQ(closed->outcome, LoadOutcome::kFailed);
  EXPECT_EQ(closed->error_code, kLoadErrProtocolClosed);
  EXPECT_TRUE(testing_support::ProcessGone(closed->pid));

  // A worker that crashes closes fd 3 too: that is a crash, not a protocol failure.
  auto crash = sup.Load(FakeWorker({"--stderr", "GGML_ASSERT(x) failed", "--then", "abort"}));
  ASSERT_TRUE(crash.ok());
  EXPECT_EQ(crash->outcome, LoadOutcome::kCrashed);
  EXPECT_EQ(crash->signal_name(), "SIGABRT");
}

TEST(SupervisorTest, ShutdownStopsEverythingAndRefusesNewLoads) {
  Supervisor sup(Options());
  LoadRequest a = Command({"--then", "hang"});
  LoadRequest b = Command({"--then", "hang"});
  b.model_name = "m2";
  ASSERT_EQ(sup.Load(a)->outcome, LoadOutcome::kSuccess);
  ASSERT_EQ(sup.Load(b)->outcome, LoadOutcome::kSuccess);
  std::vector<int> pids;
  for (const LoadedModel& m : sup.Loaded()) pids.push_back(m.pid);
  ASSERT_EQ(pids.size(), 2u);
  sup.Shutdown();
  EXPECT_TRUE(sup.Loaded().empty());
  for (int pid : pids) EXPECT_TRUE(testing_support::ProcessGone(pid));
  LoadRequest c = Command({"--then", "hang"});
  c.model_name = "m3";
  EXPECT_EQ(sup.Load(c).status().code(), StatusCode::kUnavailable);
}

TEST(SupervisorTest, RunWorkerCommandReturnsTheAnswer) {
  Supervisor sup(Options());
  ::setenv("MW_FAKE_ENGINE_SCRIPT",
           "--protocol\n{\"type\":\"probe\",\"devices\":[{\"name\":\"CPU\",\"kind\":\"cpu\",\"memory_free\":1,\"memory_total\":2}]}\n",
           1);
  auto answer = sup.RunWorkerCommand({"load"}, milliseconds(20000));
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  ASSERT_TRUE(std::holds_alternative<protocol::ProbeMessage>(*answer));
  EXPECT_EQ(std::get<protocol::ProbeMessage>(*answer).devices.size(), 1u);

  ::setenv("MW_FAKE_ENGINE_SCRIPT", "--stderr\nno backend\n--then\nexit1\n", 1);
  auto none = sup.RunWorkerCommand({"load"}, milliseconds(20000));
  EXPECT_EQ(none.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(none.status().message().find("no backend"), std::string::npos);
}

// The configured probe command (SPEC §11): any program; its answer on the
// protocol pipe, or as a line on stdout; a hang is killed after the timeout,
// and at once by Shutdown().
TEST(SupervisorTest, RunOneShotRunsAnyProgram) {
  Supervisor sup(Options());
  const std::string line =
      R"({"type":"probe","devices":[{"name":"GPU0","kind":"gpu","memory_free":1,"memory_total":2}]})";
  auto on_stdout = sup.RunOneShot({"/bin/sh", "-c", "echo starting; echo '" + line + "'; echo done >&2"},
                                  milliseconds(20000), "probe");
  ASSERT_TRUE(on_stdout.ok()) << on_stdout.status().ToString();
  ASSERT_TRUE(std::holds_alternative<protocol::ProbeMessage>(*on_stdout));
  EXPECT_EQ(std::get<protocol::ProbeMessage>(*on_stdout).devices.at(0).name, "GPU0");
  auto on_fd3 = sup.RunOneShot({"sh", "-c", "echo '" + line + "' >&3"}, milliseconds(20000), "probe");
  ASSERT_TRUE(on_fd3.ok()) << on_fd3.status().ToString();
  EXPECT_TRUE(std::holds_alternative<protocol::ProbeMessage>(*on_fd3));

  auto silent = sup.RunOneShot({"sh", "-c", "echo not json; exit 3"}, milliseconds(20000), "my probe");
  EXPECT_EQ(silent.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(silent.status().message().find("my probe gave no answer"), std::string::npos) << silent.status().ToString();
  EXPECT_NE(silent.status().message().find("not json"), std::string::npos);

  auto hang = sup.RunOneShot({"sleep", "600"}, milliseconds(300), "my probe");
  EXPECT_EQ(hang.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(sup.RunOneShot({}, milliseconds(300), "x").status().code(), StatusCode::kInvalidArgument);

  std::thread stopper([&] {
    std::this_thread::sleep_for(milliseconds(300));
    sup.Shutdown();
  });
  auto stopped = sup.RunOneShot({"sleep", "600"}, milliseconds(600000), "my probe");
  stopper.join();
  EXPECT_EQ(stopped.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(stopped.status().message().find("shutting down"), std::string::npos);
}

}  // namespace
}  // namespace mw
