// SPEC §19 with §6: the server SIGKILLed while it is stopping a hung engine
// (a real worker, SIGSTOPped, judged by the health watch) leaves no process
// behind: mw-keeper kills the engine's group when the server's lifeline
// closes, stopped or not. The stop of a stopped engine sends SIGTERM and
// then SIGKILL at once, so gdb holds the server where the stop begins
// (ChildProcess::Stop) to kill it there, the engine still alive.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gdb_stop.h"
#include "require.h"
#include "server_harness.h"

namespace mw::testing_harness {
namespace {

namespace fs = std::filesystem;

// The marked process running modelwarden-worker with a model (the engine:
// it has a GGUF mapped), 0 if none. Not the pre-started worker beside it,
// which waits for a model (SPEC §16); the engine may be an earlier one.
pid_t MarkedWorker(const std::string& marker) {
  for (pid_t pid : ProcessesMarked(marker)) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
    std::string argv0;
    std::getline(in, argv0, '\0');
    if (argv0.find("modelwarden-worker") == std::string::npos) continue;
    std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
    for (std::string line; std::getline(maps, line);) {
      if (line.find(".gguf") != std::string::npos) return pid;
    }
  }
  return 0;
}

TEST(TortureTest, ServerKilledWhileStoppingAHungEngineLeavesNoOrphan) {
  ScratchDir scratch("mw-hang-kill");
  std::string error;
  const std::string model = TestModelPath(&error);
  ASSERT_FALSE(model.empty()) << error;
  const std::string data_dir = scratch.path() + "/data";
  fs::create_directories(data_dir + "/models");
  fs::copy_file(model, data_dir + "/models/tiny.gguf");
  const std::string config_path = scratch.path() + "/config.toml";
  std::ofstream(config_path) << "keep_alive = \"-1\"\nhealth_interval_s = 1\nhang_timeout_s = 2\n";
  ServerOptions options;
  options.data_dir = data_dir;
  options.marker = scratch.path();
  options.log_path = scratch.path() + "/server.log";
  options.extra_args = {"--config", config_path};
  auto server = ServerProcess::Spawn(options, &error);
  ASSERT_TRUE(server) << error;
  ASSERT_TRUE(server->WaitListening()) << server->Log();
  HttpResult registered = Http(server->url(), "POST", "/api/models",
                               Json{{"model_name", "tiny"}, {"file_path", "tiny.gguf"},
                                    {"load_config", {{"n_threads", 1}, {"n_ctx", 512}}}});
  ASSERT_EQ(registered.status, 201) << registered.raw;
  HttpResult loaded = Http(server->url(), "POST", "/api/orchestrate/load", Json{{"model_name", "tiny"}});
  ASSERT_EQ(loaded.status, 200) << loaded.raw;
  const pid_t worker = MarkedWorker(scratch.path());
  ASSERT_GT(worker, 0) << DescribeProcesses(ProcessesMarked(scratch.path()));

  MW_REQUIRE(GdbStop::Available(), "gdb (Debian package 'gdb'; scripts/bootstrap installs it) to hold the stop");
  GdbStop gdb;
  ASSERT_TRUE(gdb.Attach(server->pid(), "mw::ChildProcess::Stop", scratch.path() + "/gdb.log", &error)) << error;
  ASSERT_EQ(::kill(worker, SIGSTOP), 0);
  // The watch judged it and the supervisor is stopping it: held there.
  ASSERT_TRUE(gdb.WaitHit(milliseconds(60000))) << server->Log();
  const std::string log = server->Log();
  EXPECT_NE(log.find("hung: alive but did not answer"), std::string::npos) << log;
  EXPECT_EQ(::kill(worker, 0), 0) << "the engine should still be alive (and stopped)";
  server->Signal(SIGKILL);
  gdb.Detach();
  server->KillAndWait(SIGKILL);
  const std::string survivors = WaitNoProcessesMarked(scratch.path());
  EXPECT_TRUE(survivors.empty()) << "processes outlived the server (SIGKILL):\n" << survivors;
  for (pid_t pid : ProcessesMarked(scratch.path())) ::kill(pid, SIGKILL);  // leave nothing behind
}

}  // namespace
}  // namespace mw::testing_harness
