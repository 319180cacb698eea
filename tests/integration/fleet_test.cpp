// The server with its registry in PostgreSQL: what it records outlives it
// and is found by a server with another data directory; the startup cleanup
// runs on PostgreSQL with the SPEC §1.4 lines; an unreachable database stops
// start-up with a message that names it (without its password).
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "harness.h"
#include "pg_schema_fixture.h"
#include "support/pg_test_util.h"

namespace mw::itest {
namespace {

class FleetTest : public PgSchemaTest {
 protected:
  // The configuration of one server: this test's schema, API commands on.
  std::vector<std::string> Config(const std::string& node) {
    return ConfigArgs(dir_.path() / node, "allow_api_commands = true\nregistry = \"" + pg_->url() + "\"\n");
  }
  std::filesystem::path Data(const std::string& node) { return dir_.path() / node / "data"; }
};

TEST_F(FleetTest, VerdictsOutliveTheServerAndNoSqliteFileIsWritten) {
  {
    Server a(Data("a"), Config("a"));
    ASSERT_TRUE(a.started()) << a.startup_output();
    ASSERT_EQ(a.Call("POST", "/api/models",
                     CommandModel("rocm", {"--print", "CreateContext failed (hipErrorNoDevice)", "--then", "abort"}))
                  .status,
              201);
    HttpReply r = a.Call("POST", "/api/orchestrate/load", R"({"model_name":"rocm"})");
    ASSERT_EQ(r.status, 422) << r.raw;
    EXPECT_EQ(a.Stop(), 0);
  }
  Server b(Data("b"), Config("b"));
  ASSERT_TRUE(b.started()) << b.startup_output();
  json m = b.Call("GET", "/api/models/rocm").body;
  EXPECT_EQ(m["compatibility_status"], "incompatible") << m.dump();
  ASSERT_FALSE(m["attempts"].empty());
  EXPECT_EQ(m["attempts"][0]["category"], "gpu_context");
  EXPECT_FALSE(std::filesystem::exists(Data("a") / "registry.db"));
  EXPECT_FALSE(std::filesystem::exists(Data("b") / "registry.db"));
  EXPECT_EQ(pg_->Query("SELECT compatibility_status FROM model_verdicts WHERE model_name = 'rocm'"), "incompatible");
}

TEST_F(FleetTest, StartupCleanupRunsOnPostgreSQLWithTheSpecLines) {
  auto server = std::make_unique<Server>(Data("a"), Config("a"));
  ASSERT_TRUE(server->started()) << server->startup_output();
  ASSERT_EQ(server->Call("POST", "/api/models",
                         CommandModel("phi-mini-4k", {"--print", "loading weights", "--then", "hang"}))
                .status,
            201);
  auto load = std::async(std::launch::async, [&] {
    return server->Call("POST", "/api/orchestrate/load", R"({"model_name":"phi-mini-4k"})");
  });
  ASSERT_TRUE(WaitForStatus(*server, "phi-mini-4k", "testing"));
  // The durable `testing` commit is a committed PostgreSQL transaction.
  EXPECT_EQ(pg_->Query("SELECT count(*) FROM load_attempts WHERE finished_at IS NULL"), "1");
  server->Kill();
  load.wait();

  server = std::make_unique<Server>(Data("a"), Config("a"));
  ASSERT_TRUE(server->started()) << server->startup_output();
  const std::string out = StartupLog(*server);  // the cleanup lines are among the log lines (stderr)
  EXPECT_NE(out.find("⚠️  Found 1 model(s) stuck in 'testing' status from previous crash"), std::string::npos) << out;
  EXPECT_NE(out.find("   - Marked 'phi-mini-4k' as incompatible (crashed during test)"), std::string::npos) << out;
  EXPECT_LT(out.find("Compatibility status cleanup completed"), out.find("[serve] startup cleanup: ")) << out;
  json m = server->Call("GET", "/api/models/phi-mini-4k").body;
  EXPECT_EQ(m["compatibility_status"], "incompatible");
  EXPECT_EQ(m["attempts"][0]["outcome"], "server_crash");
}

// `modelwarden serve` with `config_toml`, run to its exit (it fails at start-up).
ProcessResult ServeUntilExit(const std::filesystem::path& dir, const std::string& config_toml) {
  std::vector<std::string> argv = {(BinDir() / "modelwarden").string(), "serve", "--port", "0", "--data-dir",
                                   (dir / "data").string()};
  for (const std::string& a : ConfigArgs(dir, config_toml)) argv.push_back(a);
  return RunProcess(argv);
}

TEST_F(FleetTest, UnreachableRegistryStopsStartupAndNamesIt) {
  ProcessResult r =
      ServeUntilExit(dir_.path() / "a", "registry = \"postgresql://mw:hunter2@/registry?host=/nonexistent-mw-dir\"\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is PostgreSQL running"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("postgresql://mw:***@/registry"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("hunter2"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("listening"), std::string::npos) << r.out;
}

TEST_F(FleetTest, ARegistryThatIsNotAPostgresUrlIsAConfigurationError) {
  ProcessResult r = ServeUntilExit(dir_.path() / "a", "registry = \"/var/lib/other.db\"\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("registry must be a PostgreSQL URL"), std::string::npos) << r.err;
}

// PostgreSQL goes away while two servers (nodes) work (a restart, then a
// longer outage across the end of a load): they keep answering, reconnect
// by themselves, loses nothing it had recorded, and records the outcome of the
// load that ended during the outage once the database is back (the retry
// of unrecorded outcomes), so no model stays in `testing`.
// A COMMIT cut off by the restart may have been recorded: the server asks
// PostgreSQL, once back, and answers it as done (else the next POST of that
// name would be refused as a duplicate forever).
class FleetOutage : public PgPrivateClusterTest {};

TEST_F(FleetOutage, ServersReconnectAfterPostgresRestartsAndLoseNothing) {
  testing_util::PgPrivateCluster& cluster = cluster_;
  const TempDir& dir = dir_;
  Server server(dir.path() / "data",
                ConfigArgs(dir.path(), "allow_api_commands = true\nregistry = \"" + cluster.url() + "\"\n"));
  ASSERT_TRUE(server.started()) << server.startup_output();
  // A second node on the same database: both must come through.
  Server other(dir.path() / "data-b",
               ConfigArgs(dir.path(), "allow_api_commands = true\nregistry = \"" + cluster.url() + "\"\n", "b.toml"));
  ASSERT_TRUE(other.started()) << other.startup_output();
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(server.Call("POST", "/api/models", CommandModel("m" + std::to_string(i), {"--then", "ready"})).status,
              201);
  }
  // Readers and a writer keep going while PostgreSQL restarts.
  std::atomic<bool> stop{false};
  std::atomic<int> registered{5};
  std::mutex refused_mu;
  std::string refused;  // the latest registration the server did not answer with 201
  std::thread load_thread([&] {
    while (!stop) {
      (void)server.Call("GET", "/api/models");
      const std::string name = "m" + std::to_string(registered.load());
      HttpReply r = server.Call("POST", "/api/models", CommandModel(name, {"--then", "ready"}));
      if (r.status == 201) {
        ++registered;
      } else {
        std::lock_guard<std::mutex> lock(refused_mu);
        refused = name + ": " + std::to_string(r.status) + " " + r.raw;
      }
    }
  });
  ASSERT_EQ(cluster.Restart(), "");
  // Whatever was answered during the restart, the server works again.
  const int before = registered.load();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (registered.load() < before + 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop = true;
  load_thread.join();
  ASSERT_GE(registered.load(), before + 3) << "no registration succeeded after the restart; the latest refused: "
                                           << refused << "\n" << server.Stderr();
  // The other node reconnects by itself too (its connection broke unused).
  int from_b = 0;
  for (int i = 0; i < 50 && from_b != 201; ++i) {
    from_b = other.Call("POST", "/api/models", CommandModel("from-b", {"--then", "ready"})).status;
    if (from_b != 201) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(from_b, 201) << other.Stderr();

  // A load whose end falls in an outage.
  ASSERT_EQ(server.Call("POST", "/api/models", CommandModel("slow", {"--sleep-ms", "3000", "--then", "ready"})).status,
            201);
  auto load = std::async(std::launch::async,
                         [&] { return server.Call("POST", "/api/orchestrate/load", R"({"model_name":"slow"})"); });
  ASSERT_TRUE(WaitForStatus(server, "slow", "testing"));
  ASSERT_EQ(cluster.Halt(), "");
  load.wait();
  std::string skip, error;
  ASSERT_TRUE(cluster.Start(&skip, &error)) << error;
  EXPECT_TRUE(WaitForStatus(server, "slow", "compatible")) << server.Stderr();

  for (Server* node : {&server, &other}) {
    json list = node->Call("GET", "/api/models").body;
    ASSERT_TRUE(list.is_array() || list.contains("models")) << list.dump();
    const json& models = list.is_array() ? list : list["models"];
    EXPECT_EQ(static_cast<int>(models.size()), registered.load() + 2) << list.dump();  // + slow, from-b
    for (const json& m : models) EXPECT_NE(m["compatibility_status"], "testing") << m.dump();
  }
  // Nobody's lease was taken: the outages were shorter than lease_s.
  EXPECT_EQ(cluster.Query("SELECT count(*) FROM nodes WHERE lease_state = 'held'"), "2");
  EXPECT_EQ(other.Stop(), 0);
  EXPECT_EQ(server.Stop(), 0);
}

}  // namespace
}  // namespace mw::itest
