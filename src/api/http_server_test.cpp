// The HTTP edge against a fake core: routing, the error table, limits, auth, SSE.
#include "api/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <thread>

#include "http_client/http_client.h"

namespace mw::api {
namespace {

using nlohmann::json;
using http::HttpClient;

class FakeApi : public ModelApi {
 public:
  Result<std::vector<ModelView>> ListModels() override {
    std::lock_guard lock(mu_);
    ++list_calls_;
    ModelView m;
    m.model_name = list_name_;
    return std::vector<ModelView>{m};
  }
  std::optional<uint64_t> ModelListVersion() override {
    std::lock_guard lock(mu_);
    return list_version_;
  }
  // What the next ListModels() returns and the version reported with it.
  void SetList(std::string name, std::optional<uint64_t> version) {
    std::lock_guard lock(mu_);
    list_name_ = std::move(name);
    list_version_ = version;
  }
  int created_count() const { return registered_.load(); }
  int list_calls() {
    std::lock_guard lock(mu_);
    return list_calls_;
  }
  Result<ModelView> GetModel(const std::string& name) override {
    if (name == "boom") throw std::runtime_error("boom");
    if (name != "a") return NotFoundError("model '" + name + "' is not registered");
    ModelView m;
    m.model_name = name;
    m.compatibility_status = "compatible";
    ClassVerdictView own;
    own.environment_class = "cuda sm90";
    own.status = "compatible";
    own.nodes = {"n1"};
    own.total_loads = 2;
    own.this_node_class = true;
    ClassVerdictView other;
    other.environment_class = "rocm gfx1100";
    other.status = "incompatible";
    other.notes = "Hardware incompatibility detected: gpu_context";
    other.nodes = {"n2", "n3"};
    other.total_loads = 1;
    other.total_failures = 1;
    m.verdicts = {own, other};
    return m;
  }
  Result<ModelView> RegisterModel(const RegisterRequest& r) override {
    ++registered_;
    if (r.model_name == "a") return AlreadyExistsError("exists");
    ModelView m;
    m.model_name = r.model_name;
    return m;
  }
  Result<ModelView> UpdateConfig(const std::string& name, const ConfigPatch&) override { return GetModel(name); }
  Status DeleteModel(const std::string& name) override { return GetModel(name).status(); }
  Result<LoadResult> Load(const std::string& name, bool force) override {
    LoadResult r;
    if (name == "inc" && !force) {
      r.kind = LoadResult::Kind::kIncompatible;
      r.notes = "bad";
    } else if (name == "fail") {
      r.kind = LoadResult::Kind::kFailed;
      r.classification.category = "other";
    }
    r.model.model_name = name;
    return r;
  }
  Result<ModelView> Unload(const std::string& name) override { return GetModel(name); }
  Result<ServerStatus> GetStatus() override {
    ServerStatus s;
    s.version = "test";
    s.counts["unknown"] = 1;
    return s;
  }
  Result<NodeList> ListNodes() override {
    NodeList list;
    list.this_node = "n1";
    NodeView n1;
    n1.node_id = "n1";
    n1.host = "gpu-a";
    n1.environment_class = "cuda sm90";
    n1.lease_state = "held";
    n1.live = true;
    n1.lease_s = 30;
    n1.heartbeat_at = "2026-12-03T14:00:00Z";
    n1.heartbeat_age_ms = 1500;
    n1.started_at = "2026-12-03T13:00:00Z";
    n1.loaded_models = {"phi"};
    NodeView n2 = n1;
    n2.node_id = "n2";
    n2.host = "gpu-b";
    n2.lease_state = "expired";
    n2.live = false;
    n2.heartbeat_age_ms = 95000;
    n2.loaded_models = {};
    n2.expired_by = "n1";
    list.nodes = {n1, n2};
    list.live = 1;
    return list;
  }
  int64_t Subscribe(EventListener listener) override {
    std::lock_guard lock(mu_);
    listener_ = std::move(listener);
    return 1;
  }
  void Unsubscribe(int64_t) override {
    std::lock_guard lock(mu_);
    listener_ = nullptr;
  }
  void Emit(const Event& e) {
    std::lock_guard lock(mu_);
    if (listener_) listener_(e);
  }

 private:
  std::mutex mu_;
  std::atomic<int> registered_{0};  // RegisterModel calls that reached the API
  EventListener listener_;
  std::string list_name_ = "a";
  std::optional<uint64_t> list_version_;  // not tracked unless a test sets it
  int list_calls_ = 0;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(std::string api_key = "") {
    HttpServerOptions options;
    options.port = 0;
    options.api_key = api_key;
    options.max_body_bytes = 4096;
    options.threads = 8;
    options.max_event_streams = 2;
    options.keepalive_interval = std::chrono::milliseconds(200);
    server_ = std::make_unique<HttpServer>(api_, options);
    auto port = server_->Bind();
    ASSERT_TRUE(port.ok()) << port.status().ToString();
    port_ = *port;
    thread_ = std::thread([this] { (void)server_->Run(); });
    auto client = HttpClient::Create("http://127.0.0.1:" + std::to_string(port_), api_key, std::chrono::seconds(10));
    ASSERT_TRUE(client.ok());
    client_ = std::move(*client);
  }
  void TearDown() override {
    if (server_) server_->Stop();
    if (thread_.joinable()) thread_.join();
  }
  std::pair<int, json> Call(std::string_view method, const std::string& path, const std::string& body = "") {
    auto r = client_->Send(method, path, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return {0, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  FakeApi api_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  int port_ = 0;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(HttpServerTest, RoutesAndErrorShapes) {
  Start();
  auto [s1, j1] = Call("GET", "/api/models");
  EXPECT_EQ(s1, 200);
  EXPECT_EQ(j1["models"][0]["model_name"], "a");
  auto [s2, j2] = Call("GET", "/api/models/zzz");
  EXPECT_EQ(s2, 404);
  EXPECT_EQ(j2["error"]["code"], "model_not_found");
  auto [s3, j3] = Call("GET", "/api/nope");
  EXPECT_EQ(s3, 404);
  EXPECT_EQ(j3["error"]["code"], "not_found");
  auto [s4, j4] = Call("POST", "/api/models", R"({"model_name":"b"})");
  EXPECT_EQ(s4, 201);
  auto [s5, j5] = Call("POST", "/api/models", R"({"model_name":"a"})");
  EXPECT_EQ(s5, 409);
  EXPECT_EQ(j5["error"]["code"], "model_exists");
  auto [s6, j6] = Call("POST", "/api/models", "{not json");
  EXPECT_EQ(s6, 400);
  EXPECT_EQ(j6["error"]["code"], "invalid_request");
  auto [s7, j7] = Call("GET", "/api/models/boom");  // the core threw: one JSON 500
  EXPECT_EQ(s7, 500);
  EXPECT_EQ(j7["error"]["code"], "internal");
  auto [s8, j8] = Call("POST", "/api/orchestrate/load", R"({"model_name":"inc"})");
  EXPECT_EQ(s8, 409);
  EXPECT_EQ(j8["error"]["code"], "model_incompatible");
  EXPECT_EQ(j8["error"]["notes"], "bad");
  auto [s9, j9] = Call("POST", "/api/orchestrate/load", R"({"model_name":"inc","force_load":true})");
  EXPECT_EQ(s9, 200);
  auto [s10, j10] = Call("POST", "/api/orchestrate/load", R"({"model_name":"fail"})");
  EXPECT_EQ(s10, 422);
  EXPECT_EQ(j10["error"]["code"], "load_failed");
  auto [s11, j11] = Call("DELETE", "/api/models/a");
  EXPECT_EQ(s11, 200);
  auto [s12, j12] = Call("PATCH", "/api/models/a/config", "{}");
  EXPECT_EQ(s12, 400);
  auto [s13, j13] = Call("GET", "/api/status");
  EXPECT_EQ(s13, 200);
  EXPECT_EQ(j13["version"], "test");
}

// SPEC §14: GET /api/nodes and the verdicts of GET /api/models/{name}.
TEST_F(HttpServerTest, NodesAndVerdictsHaveTheirShape) {
  Start();
  auto [status, body] = Call("GET", "/api/nodes");
  ASSERT_EQ(status, 200) << body.dump();
  EXPECT_EQ(body["this_node"], "n1");
  EXPECT_EQ(body["live"], 1);
  ASSERT_EQ(body["nodes"].size(), 2u) << body.dump();
  const json& n1 = body["nodes"][0];
  EXPECT_EQ(n1["node_id"], "n1");
  EXPECT_EQ(n1["host"], "gpu-a");
  EXPECT_EQ(n1["environment_class"], "cuda sm90");
  EXPECT_EQ(n1["started_at"], "2026-12-03T13:00:00Z");
  EXPECT_EQ(n1["loaded_models"], json::array({"phi"}));
  EXPECT_TRUE(n1["expired_by"].is_null());
  EXPECT_EQ(n1["lease"]["state"], "held");
  EXPECT_EQ(n1["lease"]["live"], true);
  EXPECT_EQ(n1["lease"]["lease_s"], 30);
  EXPECT_EQ(n1["lease"]["heartbeat_at"], "2026-12-03T14:00:00Z");
  EXPECT_DOUBLE_EQ(n1["lease"]["heartbeat_age_s"].get<double>(), 1.5);
  const json& n2 = body["nodes"][1];
  EXPECT_EQ(n2["lease"]["state"], "expired");
  EXPECT_EQ(n2["lease"]["live"], false);
  EXPECT_EQ(n2["expired_by"], "n1");
  EXPECT_EQ(n2["loaded_models"], json::array());

  auto [ms, model] = Call("GET", "/api/models/a");
  ASSERT_EQ(ms, 200);
  ASSERT_EQ(model["verdicts"].size(), 2u) << model.dump();
  const json& own = model["verdicts"][0];
  EXPECT_EQ(own["environment_class"], "cuda sm90");
  EXPECT_EQ(own["status"], "compatible");
  EXPECT_TRUE(own["notes"].is_null());
  EXPECT_EQ(own["nodes"], json::array({"n1"}));
  EXPECT_EQ(own["total_loads"], 2);
  EXPECT_EQ(own["total_failures"], 0);
  EXPECT_EQ(own["this_node_class"], true);
  const json& other = model["verdicts"][1];
  EXPECT_EQ(other["environment_class"], "rocm gfx1100");
  EXPECT_EQ(other["status"], "incompatible");
  EXPECT_EQ(other["notes"], "Hardware incompatibility detected: gpu_context");
  EXPECT_EQ(other["nodes"], json::array({"n2", "n3"}));
  EXPECT_EQ(other["this_node_class"], false);
  // The list stays cheap: no verdicts there.
  auto [ls, list] = Call("GET", "/api/models");
  ASSERT_EQ(ls, 200);
  EXPECT_FALSE(list["models"][0].contains("verdicts")) << list.dump();
}

TEST_F(HttpServerTest, NodesNeedTheApiKey) {
  Start("sekrit");
  auto [ok_status, unused] = Call("GET", "/api/nodes");
  EXPECT_EQ(ok_status, 200);
  auto anonymous = HttpClient::Create("http://127.0.0.1:" + std::to_string(port_), "", std::chrono::seconds(5));
  ASSERT_TRUE(anonymous.ok());
  auto r = (*anonymous)->Send("GET", "/api/nodes");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
}

TEST_F(HttpServerTest, ModelListWithoutVersionIsBuiltEveryTime) {
  Start();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Call("GET", "/api/models").first, 200);
  EXPECT_EQ(api_.list_calls(), 3);
  api_.SetList("b", std::nullopt);
  EXPECT_EQ(Call("GET", "/api/models").second["models"][0]["model_name"], "b");
}

TEST_F(HttpServerTest, ModelListIsReusedUntilTheVersionChanges) {
  Start();
  api_.SetList("a", 7);
  auto first = client_->Send("GET", "/api/models");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(api_.list_calls(), 1);
  // Same version: the same bytes without asking the core (even though the
  // fake's data changed, which a real core never does without a new version).
  api_.SetList("stale-if-served", 7);
  for (int i = 0; i < 3; ++i) {
    auto again = client_->Send("GET", "/api/models");
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->status, 200);
    EXPECT_EQ(again->body, first->body);
  }
  EXPECT_EQ(api_.list_calls(), 1);
  // A new version: rebuilt once, then reused again.
  api_.SetList("b", 8);
  EXPECT_EQ(Call("GET", "/api/models").second["models"][0]["model_name"], "b");
  EXPECT_EQ(Call("GET", "/api/models").second["models"][0]["model_name"], "b");
  EXPECT_EQ(api_.list_calls(), 2);
}

TEST_F(HttpServerTest, ConcurrentRequestsForANewVersionBuildTheListOnce) {
  Start();
  api_.SetList("c", 42);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([this, &ok] {
      auto client = HttpClient::Create("http://127.0.0.1:" + std::to_string(port_), "", std::chrono::seconds(10));
      if (!client.ok()) return;
      auto r = (*client)->Send("GET", "/api/models");
      if (r.ok() && r->status == 200 && json::parse(r->body)["models"][0]["model_name"] == "c") ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 6);
  EXPECT_EQ(api_.list_calls(), 1);
}

// A SIGTERM right after "listening" reaches Stop() before httplib's accept
// loop runs; it must still end Run() (it used to serve forever).
TEST(HttpServerStopTest, StopBeforeRunStillEndsRun) {
  FakeApi api;
  HttpServerOptions options;
  options.port = 0;
  HttpServer server(api, options);
  ASSERT_TRUE(server.Bind().ok());
  server.Stop();
  auto run = std::async(std::launch::async, [&] { return server.Run(); });
  ASSERT_EQ(run.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "Run() ignored an earlier Stop()";
  EXPECT_TRUE(run.get().ok());
}

TEST(HttpServerStopTest, StopRacingRunStartEndsRun) {
  for (int i = 0; i < 20; ++i) {
    FakeApi api;
    HttpServerOptions options;
    options.port = 0;
    HttpServer server(api, options);
    ASSERT_TRUE(server.Bind().ok());
    auto run = std::async(std::launch::async, [&] { return server.Run(); });
    server.Stop();
    ASSERT_EQ(run.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "round " << i;
  }
}

// A server on the IPv6 loopback is reached with the URL form "http://[::1]:PORT"
// (the port used to be read as part of the host, and port 80 dialled).
TEST(HttpClientTest, BracketedIpv6UrlReachesTheServer) {
  FakeApi api;
  HttpServerOptions options;
  options.host = "::1";
  options.port = 0;
  options.threads = 2;
  options.max_event_streams = 1;
  HttpServer server(api, options);
  auto port = server.Bind();
  if (!port.ok()) {
    GTEST_SKIP() << "no IPv6 loopback here: " << port.status().ToString();
  }
  std::thread thread([&] { (void)server.Run(); });
  auto client = HttpClient::Create("http://[::1]:" + std::to_string(*port), "", std::chrono::seconds(10));
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto reply = (*client)->Send("GET", "/api/status", "");
  EXPECT_TRUE(reply.ok()) << reply.status().ToString();
  if (reply.ok()) {
    EXPECT_EQ(reply->status, 200);
  }
  EXPECT_FALSE(HttpClient::Create("http://[::1", "", std::chrono::seconds(1)).ok());
  EXPECT_FALSE(HttpClient::Create("http://[::1]x", "", std::chrono::seconds(1)).ok());
  server.Stop();
  thread.join();
}

// A raw TCP connection to the test server (for requests HttpClient would not
// send). -1 if it cannot connect.
int ConnectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads from a raw socket until `needle` appears or the deadline passes.
std::string ReadUntil(int fd, const std::string& needle, std::string& buffer) {
  for (int i = 0; i < 100 && buffer.find(needle) == std::string::npos; ++i) {
    char chunk[4096];
    timeval tv{0, 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n > 0) buffer.append(chunk, static_cast<size_t>(n));
    if (n == 0) break;
  }
  return buffer;
}

int ConnectEvents(int port) {
  int fd = ConnectLoopback(port);
  if (fd < 0) return -1;
  std::string req = "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  (void)::send(fd, req.data(), req.size(), 0);
  return fd;
}

TEST_F(HttpServerTest, BodyLimit) {
  Start();
  std::string big = R"({"model_name":")" + std::string(10000, 'x') + "\"}";
  auto [status, body] = Call("POST", "/api/models", big);
  EXPECT_EQ(status, 413);
  EXPECT_EQ(body["error"]["code"], "payload_too_large");
  auto [s2, j2] = Call("GET", "/api/models");  // still serving
  EXPECT_EQ(s2, 200);
}

// A chunked body carries no Content-Length, and httplib 0.11 would read one
// of any size into memory: it is refused before its body is read.
TEST_F(HttpServerTest, ChunkedBodyIsRefusedUnread) {
  Start();
  int fd = ConnectLoopback(port_);
  ASSERT_GE(fd, 0);
  std::string request =
      "POST /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  const std::string chunk(1000, 'x');
  for (int i = 0; i < 10; ++i) request += "3e8\r\n" + chunk + "\r\n";  // 10 000 bytes > 4096
  request += "0\r\n\r\n";
  (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string answer;
  ReadUntil(fd, "length_required", answer);
  ::close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 411", 0), 0u) << answer;
  EXPECT_NE(answer.find("length_required"), std::string::npos) << answer;
  EXPECT_EQ(api_.created_count(), 0);
  auto [status, body] = Call("GET", "/api/models");  // still serving
  EXPECT_EQ(status, 200);
}

// SPEC §20: a POST without any length has no end but the connection's; it
// is refused before a byte of its body is read.
TEST_F(HttpServerTest, PostWithoutALengthIsRefused) {
  Start();
  int fd = ConnectLoopback(port_);
  ASSERT_GE(fd, 0);
  const std::string request =
      "POST /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
      R"({"model_name":"b"})";
  (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  std::string answer;
  ReadUntil(fd, "length_required", answer);
  ::close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 411", 0), 0u) << answer;
  EXPECT_EQ(api_.created_count(), 0);
}

// The caps of cmake/dependencies.cmake and http_server.cpp: a header line
// over 8 KiB, more than 64 header lines -> 400; more than 64 KiB of headers
// in all -> 431; the server goes on serving.
TEST_F(HttpServerTest, HeaderCaps) {
  Start();
  auto raw = [&](const std::string& headers) {
    int fd = ConnectLoopback(port_);
    EXPECT_GE(fd, 0);
    const std::string request = "GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + "Connection: close\r\n\r\n";
    (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string answer;
    ReadUntil(fd, "\r\n\r\n", answer);
    ::close(fd);
    return answer.size() > 12 ? std::atoi(answer.substr(9, 3).c_str()) : 0;
  };
  EXPECT_EQ(raw("X-Long: " + std::string(9000, 'a') + "\r\n"), 400);
  std::string many;
  for (int i = 0; i < 70; ++i) many += "X-N" + std::to_string(i) + ": 1\r\n";
  EXPECT_EQ(raw(many), 400);
  std::string wide;
  for (int i = 0; i < 40; ++i) wide += "X-W" + std::to_string(i) + ": " + std::string(2000, 'w') + "\r\n";
  EXPECT_EQ(raw(wide), 431);
  EXPECT_EQ(raw("X-Fine: 1\r\n"), 200);
}

TEST_F(HttpServerTest, ApiKeyRequired) {
  Start("sekrit");
  auto [s1, j1] = Call("GET", "/api/models");
  EXPECT_EQ(s1, 200);
  auto other = HttpClient::Create("http://127.0.0.1:" + std::to_string(port_), "wrong", std::chrono::seconds(5));
  ASSERT_TRUE(other.ok());
  auto r = (*other)->Send("GET", "/api/models");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "unauthorized");
}

TEST_F(HttpServerTest, ServerSentEvents) {
  Start();
  int fd = ConnectEvents(port_);
  ASSERT_GE(fd, 0);
  std::string buffer;
  ReadUntil(fd, "event: status", buffer);
  EXPECT_NE(buffer.find("text/event-stream"), std::string::npos);
  EXPECT_NE(buffer.find(R"("unknown":1)"), std::string::npos);
  Event e;
  e.model.model_name = "evt";
  api_.Emit(e);
  ReadUntil(fd, "\"evt\"", buffer);
  EXPECT_NE(buffer.find("event: model\ndata: {"), std::string::npos);
  ReadUntil(fd, ": ping", buffer);
  EXPECT_NE(buffer.find(": ping"), std::string::npos);
  // A third stream is over the limit of 2 (after a second one). The second
  // must hold its slot before the third connects: the server's pool threads
  // take connections in any order, so two back-to-back connects could hand
  // the last slot to either.
  int fd2 = ConnectEvents(port_);
  std::string b2;
  ReadUntil(fd2, "event: status", b2);
  ASSERT_NE(b2.find("event: status"), std::string::npos);
  int fd3 = ConnectEvents(port_);
  std::string b3;
  ReadUntil(fd3, "unavailable", b3);
  EXPECT_NE(b3.find("503"), std::string::npos);
  // Ordinary requests still get through while streams are open.
  auto [s, j] = Call("GET", "/api/models");
  EXPECT_EQ(s, 200);
  ::close(fd);
  ::close(fd2);
  ::close(fd3);
}

}  // namespace
}  // namespace mw::api
