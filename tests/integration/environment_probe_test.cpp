// SPEC §11 against the real server: the device probe (a fake probe_command
// that loses a device and gets it back, one that hangs, one that fails, a
// bad one refused at start and on SIGHUP), and the environment state across
// restarts (a streak cut by a restart, a reset before one, failing kept).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <memory>
#include <thread>

#include "harness.h"
#include "raw_http.h"

namespace mw::itest {
namespace {

namespace fs = std::filesystem;

class EnvironmentProbeTest : public ::testing::Test {
 protected:
  fs::path data() const { return dir_.path() / "data"; }
  TempDir dir_;
};

json Environment(Server& s) { return s.Call("GET", "/api/status").body["environment"]; }
json Model(Server& s, const std::string& name) { return s.Call("GET", "/api/models/" + name).body; }
HttpReply Load(Server& s, const std::string& name) {
  return s.Call("POST", "/api/orchestrate/load", json{{"model_name", name}});
}
json GpuFailure(const std::string& name) {
  return CommandModel(name, {"--stderr", "CUDA error: unspecified launch failure", "--then", "abort"});
}

// Polls GET /api/status until `pred(status)`; false after ~20 s (no timing
// is asserted: the probe runs every second here).
template <typename Pred>
bool WaitForStatusBody(Server& s, Pred pred) {
  for (int i = 0; i < 200; ++i) {
    HttpReply r = s.Call("GET", "/api/status");
    if (r.status == 200 && pred(r.body)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

bool HasDevice(const json& status, const std::string& name) {
  for (const json& d : status["devices"]) {
    if (d["name"].get<std::string>().find(name) != std::string::npos) return true;
  }
  return false;
}

std::string ProbeLine(bool with_gpu) {
  json devices = json::array();
  devices.push_back({{"name", "CPU"}, {"kind", "cpu"}, {"memory_free", 1 << 30}, {"memory_total", 1 << 30}});
  if (with_gpu) {
    devices.push_back({{"name", "FAKE0"}, {"description", "Fake GPU"}, {"kind", "gpu"},
                       {"memory_free", 1 << 30}, {"memory_total", 2147483648u}});
  }
  return json{{"type", "probe"}, {"devices", devices}}.dump();
}

// A probe program that prints the line in `answer` (on stdout, or on the
// protocol pipe fd 3 like modelwarden-worker probe).
// The probe script: answers the content of `answer`; each run first adds a
// line to ProbeRunsFile(dir), so a test can wait for probes to have run.
fs::path ProbeRunsFile(const fs::path& dir) { return dir / "probe.runs"; }

int ProbeRuns(const fs::path& dir) {
  std::ifstream in(ProbeRunsFile(dir));
  return static_cast<int>(
      std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n'));
}

fs::path WriteProbe(const fs::path& dir, const fs::path& answer, bool on_fd3) {
  fs::path probe = dir / (on_fd3 ? "probe3.sh" : "probe.sh");
  std::ofstream(probe) << "#!/bin/sh\necho run >> '" << ProbeRunsFile(dir).string() << "'\ncat '"
                       << answer.string() << "'" << (on_fd3 ? " >&3" : "") << "\n";
  fs::permissions(probe, fs::perms::owner_all);
  return probe;
}

void WriteAnswer(const fs::path& answer, const std::string& line) {
  fs::path tmp = answer.string() + ".tmp";
  std::ofstream(tmp) << line << "\n";
  fs::rename(tmp, answer);  // the probe never reads half a file
}

std::string Metrics(Server& s) { return s.Call("GET", "/metrics").raw; }

TEST_F(EnvironmentProbeTest, ProbeThatLosesADeviceSetsFailingWithoutAnyLoadAndItsReturnSetsOk) {
  for (bool on_fd3 : {false, true}) {
    SCOPED_TRACE(on_fd3 ? "probe answers on fd 3" : "probe answers on stdout");
    TempDir dir;
    const fs::path answer = dir.path() / "answer.json";
    WriteAnswer(answer, ProbeLine(true));
    const fs::path probe = WriteProbe(dir.path(), answer, on_fd3);
    Server server(dir.path() / "data",
                  ConfigArgs(dir.path(), "probe_command = [\"" + probe.string() + "\"]\nprobe_interval_s = 1\n"));
    ASSERT_TRUE(server.started()) << server.startup_output();
    ASSERT_TRUE(WaitForStatusBody(server, [](const json& s) { return HasDevice(s, "FAKE0"); }))
        << server.Call("GET", "/api/status").raw;
    EXPECT_EQ(Environment(server)["state"], "ok");
    EXPECT_NE(Environment(server)["components"]["devices"].get<std::string>().find("FAKE0"), std::string::npos);

    // The event stream is open before the device goes.
    RawConnection sse(server.port());
    ASSERT_TRUE(sse.connected());
    ASSERT_TRUE(sse.Send("GET", "/api/events", ""));
    // What the stream has said so far, once it has said `needle` (or 20 s passed).
    auto read_until = [&](const std::string& needle) {
      return sse.ReadUntil(needle, std::chrono::seconds(20)).find(needle) != std::string::npos;
    };
    ASSERT_TRUE(read_until("event: status"));

    // The GPU disappears: failing, with no load at all.
    WriteAnswer(answer, ProbeLine(false));
    ASSERT_TRUE(WaitForStatusBody(server, [](const json& s) { return s["environment"]["state"] == "failing"; }));
    json env = Environment(server);
    EXPECT_NE(env["reason"].get<std::string>().find("FAKE0"), std::string::npos) << env.dump();
    EXPECT_FALSE(env["since"].is_null());
    EXPECT_NE(Metrics(server).find("modelwarden_environment_failing 1"), std::string::npos);
    EXPECT_TRUE(read_until(R"("state":"failing")")) << sse.ReadUntil("", std::chrono::seconds(0));
    ProcessResult status = server.Cli({"status"});
    EXPECT_NE(status.out.find("ENVIRONMENT FAILING"), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("FAKE0"), std::string::npos) << status.out;
    EXPECT_TRUE(server.Call("GET", "/api/models").body["models"].empty());  // nothing was loaded

    // It comes back: ok.
    WriteAnswer(answer, ProbeLine(true));
    ASSERT_TRUE(WaitForStatusBody(server, [](const json& s) { return s["environment"]["state"] == "ok"; }));
    EXPECT_TRUE(Environment(server)["reason"].is_null());
    EXPECT_NE(Metrics(server).find("modelwarden_environment_failing 0"), std::string::npos);
    EXPECT_TRUE(read_until(R"("state":"ok")")) << sse.ReadUntil("", std::chrono::seconds(0));
  }
}

// A device removed on purpose: reset, and the next probe's devices are the good ones.
TEST_F(EnvironmentProbeTest, ResetAcceptsTheDevicesThereAreNow) {
  const fs::path answer = dir_.path() / "answer.json";
  WriteAnswer(answer, ProbeLine(true));
  const fs::path probe = WriteProbe(dir_.path(), answer, false);
  Server server(data(), ConfigArgs(dir_.path(), "probe_command = [\"" + probe.string() + "\"]\nprobe_interval_s = 1\n"));
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_TRUE(WaitForStatusBody(server, [](const json& s) { return HasDevice(s, "FAKE0"); }));
  WriteAnswer(answer, ProbeLine(false));
  ASSERT_TRUE(WaitForStatusBody(server, [](const json& s) { return s["environment"]["state"] == "failing"; }));
  ASSERT_EQ(server.Call("POST", "/api/environment/reset").status, 200);
  // Several probes later it is still ok (the CPU alone is now the good set).
  ASSERT_TRUE(WaitForStatusBody(server, [](const json& s) { return !HasDevice(s, "FAKE0"); }));
  ASSERT_TRUE(server.WaitForStderr("device probe: 1 device(s)"));
  // Two more whole probes (the third has started: the two before it ended)
  // had their chance to disagree.
  const int runs = ProbeRuns(dir_.path());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (ProbeRuns(dir_.path()) < runs + 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GE(ProbeRuns(dir_.path()), runs + 3) << "the probe did not run twice more within 30 s";
  EXPECT_EQ(Environment(server)["state"], "ok") << Environment(server).dump();
}

TEST_F(EnvironmentProbeTest, AHangingOrFailingProbeNeverStopsTheServer) {
  {
    Server server(data(), ConfigArgs(dir_.path(),
                                     "allow_api_commands = true\nprobe_command = [\"sleep\", \"600\"]\n"
                                     "probe_interval_s = 1\n",
                                     "hang.toml"));
    ASSERT_TRUE(server.started()) << server.startup_output();
    HttpReply status = server.Call("GET", "/api/status");
    ASSERT_EQ(status.status, 200);
    EXPECT_EQ(status.body["environment"]["state"], "ok");
    ASSERT_EQ(server.Call("POST", "/api/models", CommandModel("good", {"--then", "ready"})).status, 201);
    EXPECT_EQ(Load(server, "good").status, 200);
    EXPECT_EQ(server.Stop(), 0);  // the hanging probe is killed, not waited for
  }
  {
    Server server(data(), ConfigArgs(dir_.path(), "probe_command = [\"false\"]\nprobe_interval_s = 1\n", "fail.toml"));
    ASSERT_TRUE(server.started()) << server.startup_output();
    ASSERT_TRUE(WaitForStatusBody(server, [](const json& s) {
      return s["devices_error"].get<std::string>().find("device probe failed") != std::string::npos;
    })) << server.Call("GET", "/api/status").raw;
    EXPECT_EQ(Environment(server)["state"], "ok");
    EXPECT_TRUE(server.WaitForStderr("device probe failed"));
  }
}

TEST_F(EnvironmentProbeTest, ABadProbeCommandIsRefusedAtStartAndOnSighup) {
  {
    Server server(data(), ConfigArgs(dir_.path(), "probe_command = [\"/nonexistent/probe\"]\n", "bad.toml"));
    EXPECT_FALSE(server.started());
    EXPECT_TRUE(server.WaitForStderr("probe_command: '/nonexistent/probe' is not an executable file")) << server.Stderr();
  }
  {
    Server server(data(), ConfigArgs(dir_.path(), "probe_interval_s = 0\n", "bad0.toml"));
    EXPECT_FALSE(server.started());
    EXPECT_TRUE(server.WaitForStderr("probe_interval_s must be in [1, 86400]")) << server.Stderr();
  }
  const fs::path config = dir_.path() / "good.toml";
  Server server(data(), ConfigArgs(dir_.path(), "probe_interval_s = 5\n", "good.toml"));
  ASSERT_TRUE(server.started()) << server.startup_output();
  std::ofstream(config, std::ios::trunc) << "probe_command = [\"no-such-probe-program\"]\n";
  ASSERT_EQ(::kill(server.pid(), SIGHUP), 0);
  EXPECT_TRUE(server.WaitForStderr("reload failed")) << server.Stderr();
  EXPECT_NE(server.Stderr().find("no-such-probe-program"), std::string::npos) << server.Stderr();
  std::ofstream(config, std::ios::trunc) << "probe_command = [\"true\"]\nprobe_interval_s = 2\n";
  ASSERT_EQ(::kill(server.pid(), SIGHUP), 0);
  EXPECT_TRUE(server.WaitForStderr("probe_interval_s 5 -> 2")) << server.Stderr();
}

// Restart in the middle of a streak: the 2 failures before it still count
// (they are read back from the attempts), once each.
TEST_F(EnvironmentProbeTest, RestartInTheMiddleOfAStreakLosesNothingAndCountsNothingTwice) {
  {
    Server server(data(), AllowApiCommands(dir_.path()));
    ASSERT_TRUE(server.started()) << server.startup_output();
    for (const char* name : {"m1", "m2", "m3", "m4"}) {
      ASSERT_EQ(server.Call("POST", "/api/models", GpuFailure(name)).status, 201);
    }
    ASSERT_EQ(Load(server, "m1").status, 422);
  }
  {
    Server server(data(), AllowApiCommands(dir_.path()));
    ASSERT_TRUE(server.started()) << server.startup_output();
    ASSERT_EQ(Load(server, "m2").status, 422);
    EXPECT_EQ(Environment(server)["state"], "ok");
  }
  Server server(data(), AllowApiCommands(dir_.path()));  // a second restart: m1 and m2 still count once
  ASSERT_TRUE(server.started()) << server.startup_output();
  EXPECT_EQ(Environment(server)["state"], "ok");
  EXPECT_EQ(Model(server, "m1")["compatibility_status"], "incompatible");
  ASSERT_EQ(Load(server, "m3").status, 422);
  json env = Environment(server);
  ASSERT_EQ(env["state"], "failing") << env.dump();
  const std::string reason = env["reason"].get<std::string>();
  for (const char* name : {"'m1'", "'m2'", "'m3'"}) EXPECT_NE(reason.find(name), std::string::npos) << reason;
  for (const char* name : {"m1", "m2", "m3"}) {
    json m = Model(server, name);
    EXPECT_EQ(m["compatibility_status"], "unknown") << name;
    EXPECT_EQ(m["total_failures"], 0) << name;  // reverted exactly once
    EXPECT_EQ(m["attempts"].size(), 1u) << name;
  }
}

// A reset before a restart still ends the streak after it.
TEST_F(EnvironmentProbeTest, AResetBeforeARestartStillEndsTheStreak) {
  {
    Server server(data(), AllowApiCommands(dir_.path()));
    ASSERT_TRUE(server.started()) << server.startup_output();
    for (const char* name : {"m1", "m2", "m3"}) {
      ASSERT_EQ(server.Call("POST", "/api/models", GpuFailure(name)).status, 201);
    }
    ASSERT_EQ(Load(server, "m1").status, 422);
    ASSERT_EQ(Load(server, "m2").status, 422);
    ASSERT_EQ(server.Call("POST", "/api/environment/reset").status, 200);
  }
  Server server(data(), AllowApiCommands(dir_.path()));
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(Load(server, "m3").status, 422);
  EXPECT_EQ(Environment(server)["state"], "ok");
  EXPECT_EQ(Model(server, "m3")["compatibility_status"], "incompatible");
}

TEST_F(EnvironmentProbeTest, AServerRestartedWhileFailingIsStillFailing) {
  std::string since;
  {
    Server server(data(), AllowApiCommands(dir_.path()));
    ASSERT_TRUE(server.started()) << server.startup_output();
    for (const char* name : {"m1", "m2", "m3", "m4"}) {
      ASSERT_EQ(server.Call("POST", "/api/models", GpuFailure(name)).status, 201);
    }
    ASSERT_EQ(server.Call("POST", "/api/models", CommandModel("good", {"--then", "ready"})).status, 201);
    for (const char* name : {"m1", "m2", "m3"}) ASSERT_EQ(Load(server, name).status, 422);
    ASSERT_EQ(Environment(server)["state"], "failing");
    since = Environment(server)["since"].get<std::string>();
  }
  {
    Server server(data(), AllowApiCommands(dir_.path()));
    ASSERT_TRUE(server.started()) << server.startup_output();
    json env = Environment(server);
    EXPECT_EQ(env["state"], "failing") << env.dump();
    EXPECT_EQ(env["since"], since);
    EXPECT_NE(env["reason"].get<std::string>().find("'m2'"), std::string::npos) << env.dump();
    EXPECT_NE(Metrics(server).find("modelwarden_environment_failing 1"), std::string::npos);
    ProcessResult status = server.Cli({"status"});
    EXPECT_NE(status.out.find("ENVIRONMENT FAILING"), std::string::npos) << status.out;
    // Still failing: a device-level failure blames no model.
    HttpReply fourth = Load(server, "m4");
    EXPECT_EQ(fourth.body["error"]["classification"]["outcome"], "environment_failure") << fourth.raw;
    EXPECT_EQ(Model(server, "m4")["compatibility_status"], "unknown");
    // A success ends it, and that survives a restart too.
    ASSERT_EQ(Load(server, "good").status, 200);
    EXPECT_EQ(Environment(server)["state"], "ok");
  }
  Server server(data(), AllowApiCommands(dir_.path()));
  ASSERT_TRUE(server.started()) << server.startup_output();
  EXPECT_EQ(Environment(server)["state"], "ok");
  EXPECT_NE(Metrics(server).find("modelwarden_environment_failing 0"), std::string::npos);
}

// A device-level crash while serving is a failed attempt too: it counts
// toward a streak, in memory and when read back after a restart.
TEST_F(EnvironmentProbeTest, ADeviceLevelCrashWhileServingCountsTowardTheStreak) {
  for (bool restart : {false, true}) {
    SCOPED_TRACE(restart ? "restart after the crash" : "no restart");
    TempDir dir;
    auto server = std::make_unique<Server>(dir.path() / "data", AllowApiCommands(dir.path()));
    ASSERT_TRUE(server->started()) << server->startup_output();
    ASSERT_EQ(server->Call("POST", "/api/models",
                           CommandModel("s1", {"--print", "ready", "--sleep-ms", "300", "--stderr",
                                               "CUDA error: unspecified launch failure", "--then", "abort"}))
                  .status,
              201);
    for (const char* name : {"m2", "m3"}) ASSERT_EQ(server->Call("POST", "/api/models", GpuFailure(name)).status, 201);
    ASSERT_EQ(Load(*server, "s1").status, 200);
    json m;
    for (int i = 0; i < 200; ++i) {
      m = Model(*server, "s1");
      if (m["attempts"].size() == 2) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_EQ(m["attempts"].size(), 2u) << m.dump();
    EXPECT_EQ(m["attempts"][0]["category"], "gpu_context");
    if (restart) {
      server.reset();
      server = std::make_unique<Server>(dir.path() / "data", AllowApiCommands(dir.path()));
      ASSERT_TRUE(server->started()) << server->startup_output();
    }
    ASSERT_EQ(Load(*server, "m2").status, 422);
    EXPECT_EQ(Environment(*server)["state"], "ok");
    ASSERT_EQ(Load(*server, "m3").status, 422);
    json env = Environment(*server);
    ASSERT_EQ(env["state"], "failing") << env.dump();
    EXPECT_NE(env["reason"].get<std::string>().find("'s1'"), std::string::npos) << env.dump();
  }
}

}  // namespace
}  // namespace mw::itest
