// SPEC §21 (issue 26): any node answers. Three real servers on one
// PostgreSQL schema, started once for every case here: A and B of one
// environment class (fake GPU "GPU-AB"), C of another ("GPU-C"); lease_s = 4,
// so a heartbeat every ~1.3 s. Models are mw-openai-engine command models.
//   - a /v1 request to A for a model loaded on C is served by C (its
//     X-Modelwarden-Node), streamed or not, and counted once: by C; one
//     that is itself a hop (X-Modelwarden-Hop) is served where it lands;
//   - A's class has a model `incompatible`, C's `compatible`: a /v1 request
//     and a load sent to A are served by C;
//   - C frozen (SIGSTOP) while requests routed through A wait on it: the
//     client gets 502 peer_failed naming C, or, for a stream that had
//     begun, the stream's last event is that error; the next request is
//     served without C;
//   - the key a node asks its peers with follows a SIGHUP reload (two
//     nodes of a fleet of their own).
#include <signal.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "harness.h"
#include "raw_http.h"
#include "require.h"
#include "support/pg_test_util.h"

namespace mw::itest {
namespace {

namespace fs = std::filesystem;

// The fleet every case shares (started by the first case to run).
struct Fleet {
  std::unique_ptr<testing_util::PgTestSchema> pg;
  TempDir dir;
  std::unique_ptr<Server> a, b, c;  // stopped before the schema is dropped
  std::string id_a, id_c;
};

class FleetRouteTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto pg = testing_util::PgTestSchema::Create(&skip_, &error_);
    if (!pg) return;
    fleet_ = std::make_unique<Fleet>();
    fleet_->pg = std::move(pg);
    fleet_->a = Start("a", "GPU-AB");
    fleet_->b = Start("b", "GPU-AB");
    fleet_->c = Start("c", "GPU-C");
    fleet_->id_a = NodeId("a");
    fleet_->id_c = NodeId("c");
  }
  static void TearDownTestSuite() { fleet_.reset(); }

  void SetUp() override {
    if (!fleet_ && skip_.empty()) GTEST_FAIL() << error_;
    MW_REQUIRE(fleet_ != nullptr, skip_);
    ASSERT_TRUE(fleet_->a->started() && fleet_->b->started() && fleet_->c->started())
        << fleet_->a->startup_output() << fleet_->b->startup_output() << fleet_->c->startup_output();
    // A node's address and class reach the others with its first heartbeat.
    ASSERT_TRUE(WaitNodesKnown()) << fleet_->a->Call("GET", "/api/nodes").raw;
  }

  // Polls A's GET /api/nodes until every node is live with its advertise_url and class (~20 s).
  static bool WaitNodesKnown() {
    for (int i = 0; i < 200; ++i) {
      json nodes = fleet_->a->Call("GET", "/api/nodes").body.value("nodes", json::array());
      int known = 0;
      for (const json& n : nodes) {
        known += n["lease"].value("live", false) && n["advertise_url"].is_string() &&
                 !n.value("environment_class", "").empty();
      }
      if (known >= 3) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  // A node whose fake probe names `gpu` (its environment class), on the
  // fleet's schema unless `url` names another; `extra`: more configuration.
  static std::unique_ptr<Server> Start(const std::string& node, const std::string& gpu, const std::string& url = "",
                                       const std::string& extra = "") {
    const fs::path dir = fleet_->dir.path() / node;
    fs::create_directories(dir);
    const fs::path probe = dir / "probe.sh";
    std::ofstream(probe) << "#!/bin/sh\necho '{\"type\":\"probe\",\"devices\":[{\"name\":\"CPU\",\"kind\":\"cpu\","
                            "\"memory_free\":1073741824,\"memory_total\":1073741824},{\"name\":\""
                         << gpu << "\",\"kind\":\"gpu\",\"memory_free\":1073741824,\"memory_total\":2147483648}]}'\n";
    fs::permissions(probe, fs::perms::owner_all);
    return std::make_unique<Server>(dir / "data", ConfigArgs(dir, NodeToml(node, url, extra)));
  }
  // Start's configuration file of `node` (rewritten by a second call).
  static std::string NodeToml(const std::string& node, const std::string& url, const std::string& extra) {
    const fs::path dir = fleet_->dir.path() / node;
    return "allow_api_commands = true\nregistry = \"" + (url.empty() ? fleet_->pg->url() : url) +
           "\"\nlease_s = 4\nprobe_command = [\"" + (dir / "probe.sh").string() + "\"]\n" + extra;
  }

  static std::string NodeId(const std::string& node) {
    std::ifstream in(fleet_->dir.path() / node / "data" / "node_id");
    std::string id;
    std::getline(in, id);
    return id;
  }

  static std::string Stats(const std::string& model) { return (fleet_->dir.path() / (model + ".stats")).string(); }

  // Registers an mw-openai-engine model (through A: the registry is shared).
  static void AddEngine(const std::string& model, int n_parallel = 1) {
    json load_config = EngineLoadConfig(model);
    load_config["n_parallel"] = n_parallel;
    HttpReply r = fleet_->a->Call("POST", "/api/models",
                                  json{{"model_name", model}, {"engine", "command"}, {"load_config", load_config}});
    ASSERT_EQ(r.status, 201) << r.raw;
  }

  static json EngineLoadConfig(const std::string& model) {
    return {{"argv", {(BinDir() / "mw-openai-engine").string(), "--port", "{port}", "--stats-file", Stats(model)}},
            {"health_path", "/health"}};
  }

  static json EngineStats(const std::string& model) {
    std::ifstream in(Stats(model));
    std::stringstream text;
    text << in.rdbuf();
    return json::parse(text.str(), nullptr, false);
  }

  // Polls A's GET /api/nodes until node `id` lists `model` as loaded (~20 s).
  static bool WaitLoadedOn(const std::string& id, const std::string& model) {
    for (int i = 0; i < 200; ++i) {
      json nodes = fleet_->a->Call("GET", "/api/nodes").body;
      for (const json& n : nodes.value("nodes", json::array())) {
        if (n.value("node_id", "") != id) continue;
        for (const json& m : n.value("loaded_models", json::array())) {
          if (m == model) return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  static std::string Chat(const std::string& model, const std::string& content, bool stream = false) {
    return json{{"model", model}, {"messages", {{{"role", "user"}, {"content", content}}}}, {"stream", stream}}.dump();
  }

  // The models loaded on `s` now (its GET /api/status), " a b " (" " for none).
  static std::string LoadedHere(Server& s) {
    const HttpReply r = s.Call("GET", "/api/status");
    std::string names = " ";
    for (const json& m : r.body["loaded_models"]) names += m.value("model_name", "?") + " ";
    return r.status == 200 ? names : "status " + std::to_string(r.status) + ": " + r.raw;
  }

  // The value of modelwarden_requests_total{model,code="200"} on `s` ("" when absent).
  static std::string RequestsServed(Server& s, const std::string& model) {
    const std::string text = RawRequest(s.port(), "GET", "/metrics", "").body;
    const std::string key = "modelwarden_requests_total{model=\"" + model + "\",code=\"200\"} ";
    const size_t at = text.find(key);
    if (at == std::string::npos) return "";
    return text.substr(at + key.size(), text.find('\n', at) - at - key.size());
  }

  static inline std::unique_ptr<Fleet> fleet_;
  static inline std::string skip_, error_;
};

TEST_F(FleetRouteTest, ARequestForAModelLoadedOnAnotherNodeIsServedThereAndCountedOnce) {
  Server& a = *fleet_->a;
  Server& c = *fleet_->c;
  // Every node advertises where its peers reach it (here: its loopback listener).
  for (const json& n : a.Call("GET", "/api/nodes").body["nodes"]) {
    EXPECT_TRUE(n["advertise_url"].is_string() && n["advertise_url"].get<std::string>().starts_with("http://127.0.0.1:"))
        << n.dump();
  }
  AddEngine("on-c");
  ASSERT_EQ(c.Call("POST", "/api/orchestrate/load", R"({"model_name":"on-c"})").status, 200);
  ASSERT_TRUE(WaitLoadedOn(fleet_->id_c, "on-c")) << a.Call("GET", "/api/nodes").raw;

  RawResponse r = RawRequest(a.port(), "POST", "/v1/chat/completions", Chat("on-c", "hi"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["x-modelwarden-node"], fleet_->id_c);
  EXPECT_NE(r.body.find("Hello"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("model":"on-c")"), std::string::npos) << r.body;
  // Streams pass through, event by event, to [DONE].
  RawResponse s = RawRequest(a.port(), "POST", "/v1/chat/completions", Chat("on-c", "hi", true));
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_EQ(s.headers["x-modelwarden-node"], fleet_->id_c);
  EXPECT_EQ(s.headers["content-type"].rfind("text/event-stream", 0), 0u) << s.headers["content-type"];
  ASSERT_FALSE(Events(s.body).empty());
  EXPECT_EQ(Events(s.body).back(), "[DONE]") << s.body;

  // Served twice, by C alone: its engine and its metric say 2; A counted nothing, loaded nothing.
  EXPECT_EQ(EngineStats("on-c").value("completed", -1), 2) << EngineStats("on-c").dump();
  EXPECT_EQ(RequestsServed(c, "on-c"), "2");
  EXPECT_EQ(RequestsServed(a, "on-c"), "");
  EXPECT_EQ(LoadedHere(a), " ");

  // A request that is itself a hop from a peer is never passed on: A serves it (loading the model).
  RawResponse hop = RawRequest(a.port(), "POST", "/v1/chat/completions", Chat("on-c", "hi"), "X-Modelwarden-Hop: 1\r\n");
  ASSERT_EQ(hop.status, 200) << hop.body;
  EXPECT_EQ(hop.headers["x-modelwarden-node"], fleet_->id_a);
  EXPECT_EQ(RequestsServed(a, "on-c"), "1");
}

TEST_F(FleetRouteTest, IncompatibleInThisNodesClassAndCompatibleInAnothersIsServedThere) {
  Server& a = *fleet_->a;
  Server& c = *fleet_->c;
  for (const std::string model : {"cls", "cls-load"}) {
    AddEngine(model);
    const std::string path = "/api/models/" + model + "/config";
    ASSERT_EQ(a.Call("PATCH", path, R"({"compatibility_status":"incompatible"})").status, 200);  // class GPU-AB
    ASSERT_EQ(c.Call("PATCH", path, R"({"compatibility_status":"compatible"})").status, 200);    // class GPU-C
  }
  // Loaded nowhere: A sends the request to C, which loads it on demand.
  RawResponse r = RawRequest(a.port(), "POST", "/v1/chat/completions", Chat("cls", "hi"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["x-modelwarden-node"], fleet_->id_c);
  // A load asked of A happens on C.
  RawResponse load = RawRequest(a.port(), "POST", "/api/orchestrate/load", R"({"model_name":"cls-load"})");
  ASSERT_EQ(load.status, 200) << load.body;
  EXPECT_EQ(load.headers["x-modelwarden-node"], fleet_->id_c);
  EXPECT_NE(LoadedHere(c).find(" cls-load "), std::string::npos) << LoadedHere(c);
  EXPECT_EQ(LoadedHere(a).find(" cls"), std::string::npos) << LoadedHere(a);
}

TEST_F(FleetRouteTest, ANodeFrozenWhileRoutedRequestsWaitOnItFailsThemNamingItAndTheNextRequestAvoidsIt) {
  Server& a = *fleet_->a;
  Server& c = *fleet_->c;
  AddEngine("frozen", /*n_parallel=*/2);
  ASSERT_EQ(c.Call("POST", "/api/orchestrate/load", R"({"model_name":"frozen"})").status, 200);
  ASSERT_TRUE(WaitLoadedOn(fleet_->id_c, "frozen"));

  // Two requests routed to C, where the engine holds each after its first
  // token: one answered whole, one streamed (its first chunk already passed on).
  const fs::path release = fleet_->dir.path() / "release";
  const std::string held_prompt = "WAIT_FOR=" + release.string() + " hi";
  auto held = std::async(std::launch::async, [&] {
    return RawRequest(a.port(), "POST", "/v1/chat/completions", Chat("frozen", held_prompt));
  });
  auto held_stream = std::async(std::launch::async, [&] {
    return RawRequest(a.port(), "POST", "/v1/chat/completions", Chat("frozen", held_prompt, /*stream=*/true));
  });
  bool in_flight = false;
  for (int i = 0; i < 300 && !in_flight; ++i) {
    in_flight = EngineStats("frozen").value("in_flight", 0) == 2;
    if (!in_flight) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(in_flight) << EngineStats("frozen").dump();
  ASSERT_EQ(::kill(c.pid(), SIGSTOP), 0);

  // C stops renewing its lease: A gives up on it (within lease_s and a check).
  RawResponse r = held.get();
  EXPECT_EQ(r.status, 502) << r.body;
  json body = json::parse(r.body, nullptr, false);
  EXPECT_EQ(body["error"].value("code", ""), "peer_failed") << r.body;
  EXPECT_NE(body["error"].value("message", "").find(fleet_->id_c), std::string::npos) << r.body;
  // The stream had begun (200, C's first token): it ends with the error event naming C.
  RawResponse s = held_stream.get();
  EXPECT_EQ(s.status, 200) << s.body;
  EXPECT_EQ(s.headers["x-modelwarden-node"], fleet_->id_c);
  const std::vector<std::string> events = Events(s.body);
  ASSERT_GE(events.size(), 2u) << s.body;
  EXPECT_NE(events.front().find(R"("role":"assistant")"), std::string::npos) << s.body;
  json last = json::parse(events.back(), nullptr, false);
  EXPECT_EQ(last["error"].value("code", ""), "peer_failed") << s.body;
  EXPECT_NE(last["error"].value("message", "").find(fleet_->id_c), std::string::npos) << s.body;
  // The next request is served without C (here on A, which loads it).
  RawResponse next = RawRequest(a.port(), "POST", "/v1/chat/completions", Chat("frozen", "hi"));
  EXPECT_EQ(next.status, 200) << next.body;
  EXPECT_NE(next.headers["x-modelwarden-node"], fleet_->id_c);
  EXPECT_FALSE(next.headers["x-modelwarden-node"].empty());

  std::ofstream(release.string()) << "go";
  ::kill(c.pid(), SIGCONT);
}

// The key a node asks its peers with follows a SIGHUP reload (here step 4's
// fit question, which needs the peer's answer): two nodes of a fleet of
// their own (another schema), the key changed on both.
TEST_F(FleetRouteTest, TheKeyPeersAreAskedWithFollowsAReload) {
  std::string skip, error;
  auto pg = testing_util::PgTestSchema::Create(&skip, &error);
  ASSERT_TRUE(pg) << skip << error;
  const std::string old_key = "api_key = \"old-key\"\n";
  std::unique_ptr<Server> nodes[] = {Start("d", "GPU-AB", pg->url(), old_key), Start("e", "GPU-C", pg->url(), old_key)};
  Server& d = *nodes[0];
  Server& e = *nodes[1];
  ASSERT_TRUE(d.started() && e.started()) << d.startup_output() << e.startup_output();
  for (const char* node : {"d", "e"}) {
    ConfigArgs(fleet_->dir.path() / node, NodeToml(node, pg->url(), "api_key = \"new-key\"\n"));
  }
  for (Server* s : {&d, &e}) {
    ASSERT_EQ(::kill(s->pid(), SIGHUP), 0);
    ASSERT_TRUE(s->WaitForStderr("configuration reloaded")) << s->Stderr();
  }
  HttpReply r = d.Call("POST", "/api/models",
                       json{{"model_name", "keyed"}, {"engine", "command"}, {"load_config", EngineLoadConfig("keyed")}}
                           .dump(),
                       "new-key");
  ASSERT_EQ(r.status, 201) << r.raw;
  const std::string path = "/api/models/keyed/config";
  ASSERT_EQ(d.Call("PATCH", path, R"({"compatibility_status":"incompatible"})", "new-key").status, 200);
  ASSERT_EQ(e.Call("PATCH", path, R"({"compatibility_status":"compatible"})", "new-key").status, 200);
  bool known = false;  // E's address and class reach D with E's first heartbeat
  for (int i = 0; i < 200 && !known; ++i) {
    for (const json& n : d.Call("GET", "/api/nodes", "", "new-key").body.value("nodes", json::array())) {
      known = known || (n.value("node_id", "") == NodeId("e") && n["advertise_url"].is_string() &&
                        !n.value("environment_class", "").empty());
    }
    if (!known) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(known) << d.Call("GET", "/api/nodes", "", "new-key").raw;
  // D asks E whether it fits with the new key (the old one: 401, "does not fit", served on D).
  RawResponse chat =
      RawRequest(d.port(), "POST", "/v1/chat/completions", Chat("keyed", "hi"), "Authorization: Bearer new-key\r\n");
  ASSERT_EQ(chat.status, 200) << chat.body;
  EXPECT_EQ(chat.headers["x-modelwarden-node"], NodeId("e")) << d.Stderr();
}

}  // namespace
}  // namespace mw::itest
