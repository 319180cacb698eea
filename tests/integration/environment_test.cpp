// SPEC §11 against the real server with fake engines: device_unavailable
// keeps the status; 3 different models failing at the device level make the
// environment `failing` and revert their verdicts; recovery by a success and
// by reset; a changed engine binary makes a verdict stale and retest loads it.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "harness.h"
#include "raw_http.h"

namespace mw::itest {
namespace {

class EnvironmentTest : public ::testing::Test {
 protected:
  std::filesystem::path data() const { return dir_.path() / "data"; }
  TempDir dir_;
};

json Model(Server& s, const std::string& name) { return s.Call("GET", "/api/models/" + name).body; }
json Environment(Server& s) { return s.Call("GET", "/api/status").body["environment"]; }

// A command model whose engine prints a device-level error and aborts.
json GpuFailure(const std::string& name, const std::string& line = "CUDA error: unspecified launch failure") {
  return CommandModel(name, {"--stderr", line, "--then", "abort"});
}

HttpReply Load(Server& s, const std::string& name) {
  return s.Call("POST", "/api/orchestrate/load", json{{"model_name", name}});
}

TEST_F(EnvironmentTest, StatusShowsTheEnvironment) {
  Server server(data());
  ASSERT_TRUE(server.started()) << server.startup_output();
  json env = Environment(server);
  EXPECT_EQ(env["state"], "ok");
  EXPECT_TRUE(env["reason"].is_null());
  EXPECT_TRUE(env["since"].is_null());
  EXPECT_EQ(env["fingerprint"].get<std::string>().size(), 16u) << env.dump();
  EXPECT_TRUE(env["components"].contains("llama.cpp")) << env.dump();
  EXPECT_TRUE(env["components"].contains("modelwarden")) << env.dump();
  EXPECT_EQ(env["retest_stale"], "ask");
}

TEST_F(EnvironmentTest, DeviceUnavailableNeverChangesTheStatus) {
  Server server(data(), AllowApiCommands(dir_.path()));
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(server.Call("POST", "/api/models", GpuFailure("nodev", "CUDA error: no CUDA-capable device is detected"))
                .status,
            201);
  HttpReply r = Load(server, "nodev");
  ASSERT_EQ(r.status, 422) << r.raw;
  EXPECT_EQ(r.body["error"]["classification"]["category"], "device_unavailable");
  EXPECT_EQ(r.body["error"]["classification"]["outcome"], "environment_failure");
  json m = Model(server, "nodev");
  EXPECT_EQ(m["compatibility_status"], "unknown") << m.dump();
  EXPECT_EQ(m["total_failures"], 0);
  EXPECT_TRUE(m["verdict_fingerprint"].is_null());
  EXPECT_EQ(m["attempts"][0]["outcome"], "environment_failure");
  EXPECT_EQ(m["attempts"][0]["status_after"], "unknown");
  EXPECT_EQ(Environment(server)["state"], "ok");  // one model is no streak
}

TEST_F(EnvironmentTest, ThreeModelsFailingAtTheDeviceLevelIsTheEnvironment) {
  Server server(data(), AllowApiCommands(dir_.path()));
  ASSERT_TRUE(server.started()) << server.startup_output();
  for (const char* name : {"m1", "m2", "m3", "m4", "m5"}) {
    ASSERT_EQ(server.Call("POST", "/api/models", GpuFailure(name)).status, 201);
  }
  ASSERT_EQ(server.Call("POST", "/api/models", CommandModel("good", {"--then", "ready"})).status, 201);

  // The event stream says when the environment changes.
  RawConnection sse(server.port());
  ASSERT_TRUE(sse.connected());
  ASSERT_TRUE(sse.Send("GET", "/api/events", ""));
  // What the stream has said so far, once it has said `needle` (or 20 s passed).
  auto read_until = [&](const std::string& needle) {
    return sse.ReadUntil(needle, std::chrono::seconds(20)).find(needle) != std::string::npos;
  };
  EXPECT_TRUE(read_until("event: status"));

  ASSERT_EQ(Load(server, "m1").status, 422);
  ASSERT_EQ(Load(server, "m2").status, 422);
  EXPECT_EQ(Model(server, "m1")["compatibility_status"], "incompatible");
  EXPECT_EQ(Model(server, "m2")["compatibility_status"], "incompatible");
  EXPECT_EQ(Environment(server)["state"], "ok");
  HttpReply third = Load(server, "m3");
  ASSERT_EQ(third.status, 422) << third.raw;

  json env = Environment(server);
  ASSERT_EQ(env["state"], "failing") << env.dump();
  const std::string reason = env["reason"].get<std::string>();
  for (const char* name : {"'m1'", "'m2'", "'m3'", "gpu_context"}) {
    EXPECT_NE(reason.find(name), std::string::npos) << reason;
  }
  EXPECT_FALSE(env["since"].is_null());
  EXPECT_TRUE(read_until("event: environment"));
  EXPECT_TRUE(read_until(R"("state":"failing")")) << sse.ReadUntil("", std::chrono::seconds(0));
  for (const char* name : {"m1", "m2", "m3"}) {
    json m = Model(server, name);
    EXPECT_EQ(m["compatibility_status"], "unknown") << name << " " << m.dump();
    EXPECT_NE(m["compatibility_notes"].get<std::string>().find("the environment failed"), std::string::npos) << name;
    EXPECT_NE(m["compatibility_notes"].get<std::string>().find("CUDA error"), std::string::npos) << name;
    EXPECT_EQ(m["attempts"][0]["outcome"], "environment_failure") << name;
  }
  // The CLI prints the banner.
  ProcessResult status = server.Cli({"status"});
  EXPECT_NE(status.out.find("ENVIRONMENT FAILING"), std::string::npos) << status.out;
  // ... in the CLI's words (SPEC §18): the command, not the API path.
  EXPECT_NE(status.out.find("`modelwarden environment reset`"), std::string::npos) << status.out;
  EXPECT_EQ(status.out.find("POST /api"), std::string::npos) << status.out;

  // While failing, a device-level failure blames no model.
  HttpReply fourth = Load(server, "m4");
  ASSERT_EQ(fourth.status, 422);
  EXPECT_EQ(fourth.body["error"]["classification"]["outcome"], "environment_failure");
  EXPECT_EQ(Model(server, "m4")["compatibility_status"], "unknown");

  // A successful load: ok again; then a lone device-level failure is blamed normally.
  ASSERT_EQ(Load(server, "good").status, 200);
  EXPECT_EQ(Environment(server)["state"], "ok");
  ASSERT_EQ(Load(server, "m5").status, 422);
  EXPECT_EQ(Model(server, "m5")["compatibility_status"], "incompatible");

  // A new streak (m5 counts as its first failure), then recovery by reset.
  ASSERT_EQ(Load(server, "m1").status, 422);
  ASSERT_EQ(Load(server, "m2").status, 422);
  ASSERT_EQ(Environment(server)["state"], "failing");
  EXPECT_EQ(Model(server, "m5")["compatibility_status"], "unknown");
  ProcessResult reset = server.Cli({"environment", "reset"});
  ASSERT_EQ(reset.exit_code, 0) << reset.err;
  EXPECT_EQ(reset.out, "Environment: ok\n");
  EXPECT_EQ(Environment(server)["state"], "ok");
}

TEST_F(EnvironmentTest, ChangedEngineBinaryMakesTheVerdictStaleAndRetestLoadsIt) {
  Server server(data(), AllowApiCommands(dir_.path()));
  ASSERT_TRUE(server.started()) << server.startup_output();
  const std::filesystem::path engine = dir_.path() / "engine.sh";
  std::ofstream(engine) << "#!/bin/sh\necho 'GGML_ASSERT(ggml_nelements(a) == ne0) failed' >&2\nexit 1\n";
  std::filesystem::permissions(engine, std::filesystem::perms::owner_all);
  json body{{"model_name", "eng"},
            {"engine", "command"},
            {"load_config", {{"argv", json::array({engine.string()})}, {"ready_pattern", "ready"}}}};
  ASSERT_EQ(server.Call("POST", "/api/models", body).status, 201);
  ASSERT_EQ(Load(server, "eng").status, 422);
  json m = Model(server, "eng");
  ASSERT_EQ(m["compatibility_status"], "incompatible");
  EXPECT_FALSE(m["verdict_fingerprint"].is_null());
  EXPECT_EQ(m["verdict_stale"], false);
  EXPECT_TRUE(m["verdict_stale_reason"].is_null());
  EXPECT_EQ(server.Call("GET", "/api/models").body["models"][0]["verdict_stale"], false);  // the list is cached

  // The engine is updated on disk (another size): the verdict is stale, in
  // the model and in the (cached) list.
  std::ofstream(engine, std::ios::trunc) << "#!/bin/sh\necho ready\nexec sleep 600\n";
  m = Model(server, "eng");
  EXPECT_EQ(server.Call("GET", "/api/models").body["models"][0]["verdict_stale"], true);
  EXPECT_EQ(m["verdict_stale"], true) << m.dump();
  EXPECT_NE(m["verdict_stale_reason"].get<std::string>().find("engine_binary changed"), std::string::npos)
      << m.dump();
  ProcessResult list = server.Cli({"models", "list"});
  EXPECT_NE(list.out.find("incompatible (stale)"), std::string::npos) << list.out;
  // retest_stale = "ask": still refused until retested.
  EXPECT_EQ(Load(server, "eng").status, 409);

  HttpReply retest = server.Call("POST", "/api/models/eng/retest");
  ASSERT_EQ(retest.status, 200) << retest.raw;
  m = Model(server, "eng");
  EXPECT_EQ(m["compatibility_status"], "compatible");
  EXPECT_EQ(m["verdict_stale"], false);
  // SPEC §18: a success after a retest starts the notes afresh; the old
  // ones (with the retest's line) stay in the attempt history.
  EXPECT_EQ(m["compatibility_notes"], "") << m.dump();
  EXPECT_NE(m["attempts"][0]["summary"].get<std::string>().find("Retest (verdict stale: engine_binary changed"),
            std::string::npos)
      << m.dump();
  EXPECT_EQ(server.Call("POST", "/api/models/ghost/retest").status, 404);
  EXPECT_EQ(server.Call("POST", "/api/models/eng/retest").status, 409);  // loaded: it works
}

// retest_stale = "auto": a stale incompatible verdict gets one unforced
// attempt when loaded, instead of a 409.
TEST_F(EnvironmentTest, AutoRetestLoadsAStaleIncompatibleModel) {
  Server server(data(), ConfigArgs(dir_.path(), "allow_api_commands = true\nretest_stale = \"auto\"\n", "auto.toml"));
  ASSERT_TRUE(server.started()) << server.startup_output();
  EXPECT_EQ(Environment(server)["retest_stale"], "auto");
  const std::filesystem::path engine = dir_.path() / "engine.sh";
  std::ofstream(engine) << "#!/bin/sh\necho 'GGML_ASSERT(ggml_nelements(a) == ne0) failed' >&2\nexit 1\n";
  std::filesystem::permissions(engine, std::filesystem::perms::owner_all);
  json body{{"model_name", "eng"},
            {"engine", "command"},
            {"load_config", {{"argv", json::array({engine.string()})}, {"ready_pattern", "ready"}}}};
  ASSERT_EQ(server.Call("POST", "/api/models", body).status, 201);
  ASSERT_EQ(Load(server, "eng").status, 422);
  EXPECT_EQ(Load(server, "eng").status, 409);  // not stale: refused as usual
  std::ofstream(engine, std::ios::trunc) << "#!/bin/sh\necho ready\nexec sleep 600\n";
  HttpReply r = Load(server, "eng");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(Model(server, "eng")["compatibility_status"], "compatible");
}

}  // namespace
}  // namespace mw::itest
