// SPEC §14 with several real servers on one private PostgreSQL registry:
// what one registers all see; a crash verdict is shared within an
// environment class and not across (each node's class comes from a fake
// probe_command naming its GPU); a node killed mid-load has its attempt
// closed by exactly one live node once its lease expired, with the SPEC §1.4
// lines, and finds nothing to clean when it comes back; a node whose
// heartbeat stops (SIGSTOP: a partition as the database sees it) loses its
// lease, and when it resumes it records nothing as if it still held it.
#include <signal.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "harness.h"
#include "pg_schema_fixture.h"

namespace mw::itest {
namespace {

namespace fs = std::filesystem;

class FleetNodesTest : public PgSchemaTest {
 protected:
  // A server `node` on this test's schema; `gpu` (when set) names the fake
  // GPU its probe reports, which makes its environment class.
  std::unique_ptr<Server> Start(const std::string& node, const std::string& gpu = "", int lease_s = 30) {
    const fs::path dir = dir_.path() / node;
    fs::create_directories(dir);
    std::string toml = "allow_api_commands = true\nregistry = \"" + pg_->url() + "\"\nlease_s = " +
                       std::to_string(lease_s) + "\n";
    if (!gpu.empty()) {
      const fs::path probe = dir / "probe.sh";
      std::ofstream(probe) << "#!/bin/sh\necho '{\"type\":\"probe\",\"devices\":[{\"name\":\"CPU\",\"kind\":\"cpu\","
                              "\"memory_free\":1073741824,\"memory_total\":1073741824},{\"name\":\""
                           << gpu
                           << "\",\"kind\":\"gpu\",\"memory_free\":1073741824,\"memory_total\":2147483648}]}'\n";
      fs::permissions(probe, fs::perms::owner_all);
      toml += "probe_command = [\"" + probe.string() + "\"]\n";
    }
    auto server = std::make_unique<Server>(dir / "data", ConfigArgs(dir, toml));
    EXPECT_TRUE(server->started()) << server->startup_output();
    return server;
  }

  std::string NodeId(const std::string& node) {
    std::ifstream in(dir_.path() / node / "data" / "node_id");
    std::string id;
    std::getline(in, id);
    return id;
  }

  std::string Status(Server& s, const std::string& model) {
    return s.Call("GET", "/api/models/" + model).body.value("compatibility_status", "");
  }
};

json CrashingModel(const std::string& name) {
  return CommandModel(name, {"--print", "CreateContext failed (hipErrorNoDevice)", "--then", "abort"});
}

TEST_F(FleetNodesTest, WhatOneRegistersAllSeeAndACrashVerdictHoldsWithinItsClassOnly) {
  auto a = Start("a", "FAKE-GPU-A");
  auto b = Start("b", "FAKE-GPU-A");
  auto c = Start("c", "FAKE-GPU-B");
  ASSERT_TRUE(a->started() && b->started() && c->started());
  // Each server has answered a list before: no cached list may hide what another registers.
  for (Server* s : {a.get(), b.get(), c.get()}) EXPECT_EQ(s->Call("GET", "/api/models").status, 200);
  ASSERT_EQ(a->Call("POST", "/api/models", CrashingModel("rocm")).status, 201);
  for (Server* s : {b.get(), c.get()}) {
    json list = s->Call("GET", "/api/models").body;
    const json& models = list.is_array() ? list : list["models"];
    ASSERT_EQ(models.size(), 1u) << list.dump();
    EXPECT_EQ(models[0]["model_name"], "rocm");
    HttpReply r = s->Call("GET", "/api/models/rocm");
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["compatibility_status"], "unknown");
  }

  HttpReply crashed = a->Call("POST", "/api/orchestrate/load", R"({"model_name":"rocm"})");
  ASSERT_EQ(crashed.status, 422) << crashed.raw;
  EXPECT_EQ(Status(*a, "rocm"), "incompatible");
  // Same class: known bad before anyone loads it there.
  EXPECT_EQ(Status(*b, "rocm"), "incompatible");
  json listed = b->Call("GET", "/api/models").body;
  EXPECT_EQ((listed.is_array() ? listed : listed["models"])[0]["compatibility_status"], "incompatible") << listed.dump();
  HttpReply refused = b->Call("POST", "/api/orchestrate/load", R"({"model_name":"rocm"})");
  EXPECT_EQ(refused.status, 409) << refused.raw;
  EXPECT_NE(refused.raw.find("hipErrorNoDevice"), std::string::npos) << refused.raw;
  // Another class: unknown here, the other class's verdict kept beside it.
  EXPECT_EQ(Status(*c, "rocm"), "unknown");
  EXPECT_EQ(pg_->Query("SELECT count(*) FROM model_verdicts WHERE model_name = 'rocm'"), "1");
  EXPECT_EQ(pg_->Query("SELECT string_agg(DISTINCT node_id, ',') FROM load_attempts WHERE model_name = 'rocm'"),
            NodeId("a"));
  // c's own attempt makes its own class's verdict.
  EXPECT_EQ(c->Call("POST", "/api/orchestrate/load", R"({"model_name":"rocm"})").status, 422);
  EXPECT_EQ(pg_->Query("SELECT count(*) FROM model_verdicts WHERE model_name = 'rocm' AND "
                       "compatibility_status = 'incompatible'"),
            "2");
}

TEST_F(FleetNodesTest, EachNodeTestsItsOwnModelAtTheSameTime) {
  auto a = Start("a", "FAKE-GPU-A");
  auto b = Start("b", "FAKE-GPU-B");
  ASSERT_TRUE(a->started() && b->started());
  ASSERT_EQ(a->Call("POST", "/api/models", CommandModel("hangs", {"--print", "loading", "--then", "hang"})).status,
            201);
  ASSERT_EQ(a->Call("POST", "/api/models", CommandModel("works", {"--then", "ready"})).status, 201);
  auto hanging = std::async(std::launch::async,
                            [&] { return a->Call("POST", "/api/orchestrate/load", R"({"model_name":"hangs"})"); });
  ASSERT_TRUE(WaitForStatus(*a, "hangs", "testing"));
  // One model in testing at a time holds per node, not per fleet.
  HttpReply loaded = b->Call("POST", "/api/orchestrate/load", R"({"model_name":"works"})");
  EXPECT_EQ(loaded.status, 200) << loaded.raw;
  EXPECT_EQ(Status(*a, "hangs"), "testing");
  EXPECT_EQ(a->Call("POST", "/api/orchestrate/unload", R"({"model_name":"hangs"})").status, 200);
  hanging.wait();
}

TEST_F(FleetNodesTest, ANodeKilledMidLoadIsSettledByExactlyOneLiveNodeAfterItsLease) {
  constexpr int kLease = 2;
  auto b = Start("b", "", kLease);
  auto c = Start("c", "", kLease);
  auto a = Start("a", "", kLease);
  ASSERT_TRUE(a->started() && b->started() && c->started());
  const std::string a_id = NodeId("a");
  ASSERT_EQ(a->Call("POST", "/api/models", CommandModel("phi-mini", {"--print", "loading", "--then", "hang"})).status,
            201);
  auto load = std::async(std::launch::async,
                         [&] { return a->Call("POST", "/api/orchestrate/load", R"({"model_name":"phi-mini"})"); });
  ASSERT_TRUE(WaitForStatus(*b, "phi-mini", "testing"));
  a->Kill();
  load.wait();

  ASSERT_TRUE(WaitForStatus(*b, "phi-mini", "incompatible")) << b->Stderr() << c->Stderr();
  const std::string lost = "Node '" + a_id + "' (";
  // The lines go out after the commit: give the winner a moment to print them.
  for (int i = 0; i < 100 && b->Stdout().find(lost) == std::string::npos && c->Stdout().find(lost) == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Another lease period: a second taker would have acted by now.
  std::this_thread::sleep_for(std::chrono::seconds(kLease + 1));
  const std::string out_b = b->Stdout(), out_c = c->Stdout();
  const bool by_b = out_b.find(lost) != std::string::npos;
  const bool by_c = out_c.find(lost) != std::string::npos;
  EXPECT_NE(by_b, by_c) << "exactly one live node settles the lease\nb:\n" << out_b << "\nc:\n" << out_c;
  const std::string& out = by_b ? out_b : out_c;
  EXPECT_NE(out.find("lost its lease: silent for"), std::string::npos) << out;
  EXPECT_NE(out.find("\u26a0\ufe0f  Found 1 model(s) stuck in 'testing' status from previous crash"), std::string::npos)
      << out;
  EXPECT_NE(out.find("   - Marked 'phi-mini' as incompatible (crashed during test)"), std::string::npos) << out;
  EXPECT_NE(out.find("\u2705 Compatibility status cleanup completed"), std::string::npos) << out;
  EXPECT_EQ(pg_->Query("SELECT count(*) FROM load_attempts WHERE outcome = 'server_crash'"), "1");
  EXPECT_EQ(pg_->Query("SELECT count(*) FROM load_attempts WHERE finished_at IS NULL"), "0");
  EXPECT_EQ(pg_->Query("SELECT lease_state || ' ' || expired_by FROM nodes WHERE node_id = '" + a_id + "'"),
            "expired " + NodeId(by_b ? "b" : "c"));
  json m = c->Call("GET", "/api/models/phi-mini").body;
  EXPECT_EQ(m["attempts"][0]["outcome"], "server_crash") << m.dump();

  // Back again: nothing of its own is left to clean.
  a = Start("a", "", kLease);
  ASSERT_TRUE(a->started());
  const std::string a_log = StartupLog(*a);
  EXPECT_EQ(a_log.find("stuck in 'testing'"), std::string::npos) << a_log;
  EXPECT_NE(a_log.find("\u2705 Compatibility status cleanup completed"), std::string::npos) << a_log;
  EXPECT_EQ(pg_->Query("SELECT lease_state FROM nodes WHERE node_id = '" + a_id + "'"), "held");
  EXPECT_EQ(pg_->Query("SELECT count(*) FROM load_attempts WHERE outcome = 'server_crash'"), "1");
}

TEST_F(FleetNodesTest, ANodeWhoseHeartbeatStopsLosesItsLeaseAndDoesNotWriteAsIfItHeldIt) {
  constexpr int kLease = 2;
  auto b = Start("b", "", kLease);
  auto a = Start("a", "", kLease);
  ASSERT_TRUE(a->started() && b->started());
  const std::string a_id = NodeId("a");
  ASSERT_EQ(a->Call("POST", "/api/models", CommandModel("slow", {"--sleep-ms", "1500", "--then", "ready"})).status,
            201);
  auto load =
      std::async(std::launch::async, [&] { return a->Call("POST", "/api/orchestrate/load", R"({"model_name":"slow"})"); });
  ASSERT_TRUE(WaitForStatus(*b, "slow", "testing"));
  // Its heartbeat stops (the whole server stops): the engine goes on and
  // becomes ready meanwhile.
  ASSERT_EQ(::kill(a->pid(), SIGSTOP), 0);
  const bool settled = WaitForStatus(*b, "slow", "incompatible");
  ASSERT_EQ(::kill(a->pid(), SIGCONT), 0);
  ASSERT_TRUE(settled) << b->Stderr();

  HttpReply r = load.get();
  // Its success could not be recorded: a real answer (not a cut connection),
  // 409 conflict saying why. Which refusal comes first is a race after
  // SIGCONT: the write meets the lost lease, or (when the heartbeat has
  // already joined again with a new epoch) the attempt that b settled.
  EXPECT_EQ(r.status, 409) << r.raw;
  EXPECT_EQ(r.body["error"]["code"], "conflict") << r.raw;
  const bool lease_lost = r.raw.find("lost its lease") != std::string::npos;
  const bool settled_by_b = r.raw.find("load attempt 1 of model 'slow' already ended (server_crash)") != std::string::npos;
  EXPECT_TRUE(lease_lost || settled_by_b) << r.raw;
  EXPECT_TRUE(a->WaitForStdout("lost its lease")) << a->Stdout() << a->Stderr();
  EXPECT_EQ(pg_->Query("SELECT count(*) FROM load_attempts WHERE outcome = 'success'"), "0");
  EXPECT_EQ(pg_->Query("SELECT count(*) FROM load_attempts"), "1");
  EXPECT_EQ(Status(*a, "slow"), "incompatible");
  EXPECT_NE(a->Call("GET", "/api/models/slow").body.value("load_state", ""), "loaded");
  // It joined again and renews its new lease.
  bool rejoined = false;
  for (int i = 0; i < 100 && !rejoined; ++i) {
    rejoined = pg_->Query("SELECT lease_state || ' ' || epoch FROM nodes WHERE node_id = '" + a_id + "'") == "held 2";
    if (!rejoined) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(rejoined) << pg_->Query("SELECT lease_state || ' ' || epoch FROM nodes WHERE node_id = '" + a_id + "'");
  EXPECT_EQ(a->Call("POST", "/api/models", CommandModel("after", {"--then", "ready"})).status, 201);
}

}  // namespace
}  // namespace mw::itest
