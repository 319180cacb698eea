// Issue 26 with real servers on one PostgreSQL registry: a change recorded
// through one node reaches another node's event stream as it commits
// (LISTEN/NOTIFY), and a stalled database (every PostgreSQL process
// SIGSTOPped, as a frozen host or disk) is answered with a clear 503 once
// registry_statement_timeout_s has passed, not a hang, while no node loses
// its lease.
#include <signal.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "harness.h"
#include "pg_schema_fixture.h"
#include "raw_http.h"
#include "support/pg_test_util.h"

namespace mw::itest {
namespace {

namespace fs = std::filesystem;

std::unique_ptr<Server> StartNode(const fs::path& root, const std::string& node, const std::string& url,
                                  const std::string& extra = "") {
  const fs::path dir = root / node;
  fs::create_directories(dir);
  auto server = std::make_unique<Server>(
      dir / "data", ConfigArgs(dir, "allow_api_commands = true\nregistry = \"" + url + "\"\n" + extra));
  EXPECT_TRUE(server->started()) << server->startup_output();
  return server;
}

class FleetLiveTest : public PgSchemaTest {};

TEST_F(FleetLiveTest, AVerdictRecordedThroughOneNodeReachesAnotherNodesEventStream) {
  auto a = StartNode(dir_.path(), "a", pg_->url());
  auto b = StartNode(dir_.path(), "b", pg_->url());
  ASSERT_TRUE(a->started() && b->started());
  RawConnection sse(b->port());
  ASSERT_TRUE(sse.connected());
  ASSERT_TRUE(sse.Send("GET", "/api/events", ""));
  ASSERT_NE(sse.ReadUntil("event: status").find("event: status"), std::string::npos);

  // Registered through A: B's stream names it without B being asked anything.
  ASSERT_EQ(a->Call("POST", "/api/models",
                    CommandModel("rocm", {"--print", "CreateContext failed (hipErrorNoDevice)", "--then", "abort"}))
                .status,
            201);
  EXPECT_NE(sse.ReadUntil(R"("model_name":"rocm")").find(R"("model_name":"rocm")"), std::string::npos)
      << sse.ReadUntil("", std::chrono::seconds(0)) << b->Stderr();
  const HttpReply before = b->Call("GET", "/api/models/rocm");  // B keeps this detail (pg_detail_cache.h)
  ASSERT_EQ(before.status, 200) << before.raw;
  ASSERT_EQ(before.body["attempts"].size(), 0u) << before.raw;
  // A's crash verdict (the same environment class): B's stream carries it.
  ASSERT_EQ(a->Call("POST", "/api/orchestrate/load", R"({"model_name":"rocm"})").status, 422);
  const std::string& seen = sse.ReadUntil(R"("compatibility_status":"incompatible")");
  EXPECT_NE(seen.find(R"("compatibility_status":"incompatible")"), std::string::npos) << seen;
  // Once B has heard of it, B's detail of the model has it too: the verdict and A's attempt.
  const json after = b->Call("GET", "/api/models/rocm").body;
  EXPECT_EQ(after["compatibility_status"], "incompatible") << after.dump();
  EXPECT_EQ(after["attempts"].size(), 1u) << after.dump();
}

TEST_F(FleetLiveTest, EveryAnswerSaysWhichNodeGaveIt) {
  auto a = StartNode(dir_.path(), "a", pg_->url());
  auto b = StartNode(dir_.path(), "b", pg_->url());
  ASSERT_TRUE(a->started() && b->started());
  std::string ids[2];
  for (int i = 0; i < 2; ++i) {
    std::ifstream in(dir_.path() / (i == 0 ? "a" : "b") / "data" / "node_id");
    std::getline(in, ids[i]);
  }
  ASSERT_NE(ids[0], ids[1]);
  EXPECT_EQ(RawRequest(a->port(), "GET", "/api/status", "").headers["x-modelwarden-node"], ids[0]);
  EXPECT_EQ(RawRequest(b->port(), "GET", "/v1/models", "").headers["x-modelwarden-node"], ids[1]);
  EXPECT_EQ(RawRequest(b->port(), "GET", "/api/models/none", "").headers["x-modelwarden-node"], ids[1]);  // a 404
}

// Every process of the cluster (the postmaster and each backend).
std::vector<pid_t> ClusterPids(const testing_util::PgPrivateCluster& cluster) {
  std::vector<pid_t> pids;
  std::ifstream pidfile(fs::path(cluster.Query("SHOW data_directory")) / "postmaster.pid");
  pid_t postmaster = 0;
  if (pidfile >> postmaster) pids.push_back(postmaster);
  std::istringstream rest(cluster.Query("SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE pid <> "
                                        "pg_backend_pid()"));
  for (pid_t pid = 0; rest >> pid;) pids.push_back(pid);
  return pids;
}

class FleetStallTest : public PgPrivateClusterTest {};

TEST_F(FleetStallTest, AStalledDatabaseAnswers503AfterTheStatementTimeoutAndNoNodeLosesItsLease) {
  testing_util::PgPrivateCluster& cluster = cluster_;
  const TempDir& dir = dir_;
  const std::string options =
      "lease_s = 20\nregistry_statement_timeout_s = 1\nregistry_connect_timeout_s = 1\n";
  auto a = StartNode(dir.path(), "a", cluster.url(), options);
  auto b = StartNode(dir.path(), "b", cluster.url(), options);
  ASSERT_TRUE(a->started() && b->started());
  ASSERT_EQ(a->Call("POST", "/api/models", CommandModel("m", {"--then", "ready"})).status, 201);
  const std::string epochs = cluster.Query("SELECT string_agg(node_id || ':' || epoch, ',' ORDER BY node_id) FROM nodes");

  const std::vector<pid_t> pids = ClusterPids(cluster);
  ASSERT_GE(pids.size(), 2u);
  for (pid_t pid : pids) ::kill(pid, SIGSTOP);
  // Reads and a write on both nodes while the database is stalled: each
  // answers, 503 naming the timeout (or 200 where a cache could answer).
  std::vector<std::future<HttpReply>> replies;
  for (Server* s : {a.get(), b.get()}) {
    replies.push_back(std::async(std::launch::async, [s] { return s->Call("GET", "/api/models/m"); }));
    replies.push_back(std::async(std::launch::async, [s] { return s->Call("GET", "/api/models/m"); }));
    replies.push_back(std::async(std::launch::async, [s] {
      return s->Call("POST", "/api/models", CommandModel("n" + std::to_string(s->port()), {"--then", "ready"}));
    }));
  }
  int unavailable = 0;
  for (auto& f : replies) {
    HttpReply r = f.get();
    EXPECT_TRUE(r.status == 200 || r.status == 201 || r.status == 503) << r.raw;
    if (r.status == 503) {
      ++unavailable;
      EXPECT_NE(r.raw.find("registry"), std::string::npos) << r.raw;
    }
  }
  EXPECT_GT(unavailable, 0);
  for (pid_t pid : pids) ::kill(pid, SIGCONT);

  // Back: both answer again, each renews its lease after the stall, and
  // nobody took a lease (the epochs are those of the start).
  const std::string resumed = cluster.Query("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint");
  for (Server* s : {a.get(), b.get()}) {
    bool answered = false;
    for (int i = 0; i < 100 && !answered; ++i) {
      answered = s->Call("GET", "/api/models/m").status == 200;
      if (!answered) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(answered) << s->Stderr();
  }
  bool renewed = false;
  for (int i = 0; i < 200 && !renewed; ++i) {
    renewed = cluster.Query("SELECT count(*) FROM nodes WHERE lease_state = 'held' AND heartbeat_ms > " + resumed) ==
              "2";
    if (!renewed) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(renewed) << cluster.Query("SELECT string_agg(node_id || ' ' || lease_state, ', ') FROM nodes");
  EXPECT_EQ(cluster.Query("SELECT string_agg(node_id || ':' || epoch, ',' ORDER BY node_id) FROM nodes"), epochs);
  EXPECT_EQ(a->Stdout().find("lost its lease"), std::string::npos);
  EXPECT_EQ(b->Stdout().find("lost its lease"), std::string::npos);
}

}  // namespace
}  // namespace mw::itest
