// The fleet's view on one server with its embedded SQLite registry (SPEC
// §14): the server is one node holding its lease, GET /api/status names it,
// a model's verdicts are one entry (its own class), and `modelwarden nodes`
// prints the node. Needs the server to join the fleet at start-up.
#include <gtest/gtest.h>

#include "harness.h"

namespace mw::itest {
namespace {

TEST(NodesTest, OneServerIsOneLiveNodeWithOneVerdictPerModel) {
  TempDir dir;
  Server server(dir.path() / "data", AllowApiCommands(dir.path()));
  ASSERT_TRUE(server.started()) << server.startup_output();

  HttpReply nodes = server.Call("GET", "/api/nodes");
  ASSERT_EQ(nodes.status, 200) << nodes.raw;
  const std::string self = nodes.body.value("this_node", "");
  ASSERT_FALSE(self.empty()) << "the server has not joined the fleet: " << nodes.raw;
  ASSERT_EQ(nodes.body["nodes"].size(), 1u) << nodes.raw;
  const json& node = nodes.body["nodes"][0];
  EXPECT_EQ(node["node_id"], self);
  EXPECT_EQ(node["lease"]["state"], "held") << nodes.raw;
  EXPECT_EQ(node["lease"]["live"], true) << nodes.raw;
  EXPECT_TRUE(node["lease"]["lease_s"].is_number()) << nodes.raw;
  EXPECT_TRUE(node["lease"]["heartbeat_age_s"].is_number()) << nodes.raw;
  EXPECT_FALSE(node.value("host", "").empty()) << nodes.raw;
  EXPECT_TRUE(node["loaded_models"].is_array()) << nodes.raw;
  EXPECT_TRUE(node["expired_by"].is_null()) << nodes.raw;
  EXPECT_EQ(nodes.body["live"], 1) << nodes.raw;

  HttpReply status = server.Call("GET", "/api/status");
  ASSERT_EQ(status.status, 200);
  EXPECT_EQ(status.body["node"]["node_id"], self) << status.raw;
  EXPECT_EQ(status.body["node"]["nodes_live"], 1) << status.raw;

  ASSERT_EQ(server.Call("POST", "/api/models", CommandModel("good", {"--then", "ready"})).status, 201);
  json model = server.Call("GET", "/api/models/good").body;
  ASSERT_EQ(model["verdicts"].size(), 1u) << model.dump();
  EXPECT_EQ(model["verdicts"][0]["status"], "unknown");
  EXPECT_EQ(model["verdicts"][0]["this_node_class"], true);
  ASSERT_EQ(server.Call("POST", "/api/orchestrate/load", R"({"model_name":"good"})").status, 200);
  model = server.Call("GET", "/api/models/good").body;
  ASSERT_EQ(model["verdicts"].size(), 1u) << model.dump();
  const json& verdict = model["verdicts"][0];
  EXPECT_EQ(verdict["status"], model["compatibility_status"]) << model.dump();
  EXPECT_EQ(verdict["status"], "compatible");
  EXPECT_EQ(verdict["total_loads"], 1);
  EXPECT_EQ(verdict["nodes"], json::array({self})) << model.dump();
  EXPECT_TRUE(verdict["environment_class"].is_string());
  // The list stays cheap: no verdicts there.
  EXPECT_FALSE(server.Call("GET", "/api/models").body["models"][0].contains("verdicts"));

  ProcessResult table = server.Cli({"nodes"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  for (const char* column : {"NODE", "HOST", "CLASS", "LEASE", "LOADED"}) {
    EXPECT_NE(table.out.find(column), std::string::npos) << column << "\n" << table.out;
  }
  EXPECT_NE(table.out.find(self + " (this)"), std::string::npos) << table.out;
  // Loaded just now: this node's row says so before its next heartbeat (SPEC §18).
  EXPECT_NE(table.out.find("good"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("held, "), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("1 of 1 node(s) live"), std::string::npos) << table.out;
  ProcessResult as_json = server.Cli({"nodes", "--json"});
  EXPECT_EQ(as_json.exit_code, 0) << as_json.err;
  json parsed = json::parse(as_json.out, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << as_json.out;
  EXPECT_EQ(parsed["this_node"], self);
  EXPECT_EQ(parsed["nodes"].size(), 1u);
  EXPECT_EQ(server.Cli({"nodes", "extra"}).exit_code, 2);

  ProcessResult status_text = server.Cli({"status"});
  EXPECT_EQ(status_text.exit_code, 0) << status_text.err;
  EXPECT_NE(status_text.out.find("node: " + self), std::string::npos) << status_text.out;
  EXPECT_NE(status_text.out.find("1 node live"), std::string::npos) << status_text.out;
}

}  // namespace
}  // namespace mw::itest
