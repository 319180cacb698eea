// Residency (SPEC §12) against the real server and real llama.cpp loads of
// make-test-model models: several models loaded at once, max_loaded_models,
// least-recently-used idle models unloaded to make room (seen in
// GET /api/status and as unload events on /api/events), never a model with
// a request in flight, and a load the fit check would refuse for lack of
// free memory made possible by unloading an idle model.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <thread>

#include "harness.h"
#include "raw_http.h"

namespace mw::itest {
namespace {

class ResidencyTest : public ::testing::Test {
 protected:
  std::filesystem::path data() const { return dir_.path() / "data"; }
  // A make-test-model file registered as `name` (llama.cpp) with `load_config`.
  void AddTiny(Server& server, const std::string& name, json load_config = {{"n_ctx", 512}},
               const std::vector<std::string>& shape = {}) {
    ASSERT_TRUE(MakeTestModel(data() / "models" / (name + ".gguf"), shape));
    HttpReply r = server.Call("POST", "/api/models",
                              json{{"model_name", name}, {"file_path", name + ".gguf"}, {"load_config", load_config}});
    ASSERT_EQ(r.status, 201) << r.raw;
  }
  TempDir dir_;
};

HttpReply LoadModel(Server& server, const std::string& name) {
  return server.Call("POST", "/api/orchestrate/load", json{{"model_name", name}});
}

std::vector<std::string> LoadedNames(Server& server) {
  std::vector<std::string> names;
  const json status = server.Call("GET", "/api/status").body;
  for (const auto& m : status["loaded_models"]) names.push_back(m["model_name"]);
  return names;
}

json LoadedEntry(const json& status, const std::string& name) {
  for (const auto& m : status["loaded_models"]) {
    if (m["model_name"] == name) return m;
  }
  return json();
}

// A /v1 request's slot is freed once its response has been sent, which the
// client may see first: waits (~15 s at most) until `name` has none in flight.
void WaitIdle(Server& server, const std::string& name) {
  for (int i = 0; i < 300 && LoadedEntry(server.Call("GET", "/api/status").body, name)["requests_in_flight"] != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

int64_t IsoMillis(const std::string& iso) {
  std::tm tm{};
  if (iso.size() < 23 || ::strptime(iso.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return -1;
  return static_cast<int64_t>(::timegm(&tm)) * 1000 + std::stoi(iso.substr(20, 3));
}

// The models that went from loaded to not loaded, in the order of the
// `model` events of an /api/events stream.
std::vector<std::string> Unloads(const std::string& stream) {
  std::vector<std::string> out;
  std::map<std::string, bool> loaded;
  const std::string marker = "event: model\ndata: ";
  for (size_t at = stream.find(marker); at != std::string::npos; at = stream.find(marker, at + 1)) {
    const size_t start = at + marker.size();
    json m = json::parse(stream.substr(start, stream.find('\n', start) - start), nullptr, false);
    if (!m.is_object()) continue;
    const std::string name = m.value("model_name", "");
    const bool now = m.value("loaded", false);
    if (loaded[name] && !now) out.push_back(name);
    loaded[name] = now;
  }
  return out;
}

// MemAvailable of /proc/meminfo (what the server's fit check reads), bytes.
int64_t MemAvailable() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  int64_t kib = 0;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return kib * 1024;
  }
  return -1;
}

// Three models under max_loaded_models = 2: the third evicts the least
// recently used idle one (a /v1 request counts as a use), and so on.
TEST_F(ResidencyTest, TheLeastRecentlyUsedIdleModelIsEvictedUnderTheCap) {
  Server server(data(), ConfigArgs(dir_.path(), "max_loaded_models = 2\n"));
  ASSERT_TRUE(server.started()) << server.startup_output();
  for (const char* name : {"a", "b", "c"}) AddTiny(server, name);
  RawConnection events(server.port());
  ASSERT_TRUE(events.Send("GET", "/api/events", ""));
  ASSERT_NE(events.ReadUntil("event: status").find("event: status"), std::string::npos);

  ASSERT_EQ(LoadModel(server, "a").status, 200);
  ASSERT_EQ(LoadModel(server, "b").status, 200);
  // "a" is used after "b" was loaded: "b" is now the least recently used.
  // Greedy: a random-weight model's sampled bytes may not be UTF-8 (a 502 from the engine: docs/api.md).
  HttpReply used = server.Call("POST", "/v1/completions",
                               json{{"model", "a"}, {"prompt", "hi"}, {"max_tokens", 2}, {"temperature", 0}});
  ASSERT_EQ(used.status, 200) << used.raw;
  WaitIdle(server, "a");

  json status = server.Call("GET", "/api/status").body;
  EXPECT_EQ(status["max_loaded_models"], 2);
  ASSERT_EQ(status["loaded_models"].size(), 2u) << status.dump();
  json a = LoadedEntry(status, "a"), b = LoadedEntry(status, "b");
  // The status list: memory as the engine reports it, last use, keep-alive deadline, requests in flight.
  for (const json& m : {a, b}) {
    ASSERT_TRUE(m.is_object()) << status.dump();
    EXPECT_GT(m["memory_used"].get<int64_t>(), 0) << m.dump();
    EXPECT_TRUE(m["last_used_at"].is_string()) << m.dump();
    EXPECT_EQ(m["requests_in_flight"], 0) << m.dump();
  }
  EXPECT_GT(IsoMillis(a["last_used_at"]), IsoMillis(b["last_used_at"])) << status.dump();
  // Served by /v1: unloaded after keep_alive (default 5m) of idleness. Loaded by the API only: no deadline.
  ASSERT_TRUE(a["keep_alive_until"].is_string()) << a.dump();
  const int64_t keep = IsoMillis(a["keep_alive_until"]) - IsoMillis(a["last_used_at"]);
  EXPECT_GE(keep, 299000) << a.dump();
  EXPECT_LE(keep, 301000) << a.dump();
  EXPECT_TRUE(b["keep_alive_until"].is_null()) << b.dump();
  EXPECT_EQ(status["memory"]["in_use_bytes"].get<int64_t>(),
            a["memory_used"].get<int64_t>() + b["memory_used"].get<int64_t>());
  EXPECT_GT(status["memory"]["free_bytes"].get<int64_t>(), 0);
  ProcessResult cli = server.Cli({"status"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("MiB in use by loaded models"), std::string::npos) << cli.out;
  EXPECT_NE(cli.out.find("max_loaded_models 2"), std::string::npos) << cli.out;
  EXPECT_NE(cli.out.find("LAST USED"), std::string::npos) << cli.out;
  // "a": memory, last use, keep-alive deadline (each read anew: not compared to the ms), nothing in flight.
  EXPECT_TRUE(std::regex_search(cli.out, std::regex(R"(\na +[0-9]+ +20[0-9-]+T[0-9:.]+Z +20[0-9-]+T[0-9:.]+Z +0\n)")))
      << cli.out;
  EXPECT_TRUE(std::regex_search(cli.out, std::regex(R"(\nb +[0-9]+ +20[0-9-]+T[0-9:.]+Z +- +0\n)"))) << cli.out;

  ASSERT_EQ(LoadModel(server, "c").status, 200);
  EXPECT_EQ(LoadedNames(server), (std::vector<std::string>{"a", "c"}));
  // "b" comes back: now "a" (used before "c" was loaded) goes.
  ASSERT_EQ(LoadModel(server, "b").status, 200);
  EXPECT_EQ(LoadedNames(server), (std::vector<std::string>{"b", "c"}));

  // Each unload event was sent before the load that caused it answered; a moment to read them all.
  const std::string stream = events.ReadUntil("__never__", std::chrono::seconds(2));
  EXPECT_EQ(Unloads(stream), (std::vector<std::string>{"b", "a"})) << stream;
  // An eviction is an unload, not a failure; logged, counted.
  json b_model = server.Call("GET", "/api/models/b").body;
  EXPECT_EQ(b_model["compatibility_status"], "compatible");
  EXPECT_EQ(b_model["attempts"].size(), 2u);
  EXPECT_NE(server.Stderr().find("model=b evicted (idle, least recently used) to make room for 'c'"),
            std::string::npos)
      << server.Stderr();
  const std::string metrics = server.Call("GET", "/metrics").raw;
  EXPECT_NE(metrics.find("modelwarden_evictions_total{reason=\"max_loaded_models\"} 2\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("modelwarden_loaded_models 2\n"), std::string::npos) << metrics;
}

// A model with a request in flight is never evicted: with max 1 and a slow
// stream on "a", loading "b" is refused with models_busy (the API and /v1),
// the stream completes, and then "b" loads, evicting the now idle "a".
TEST_F(ResidencyTest, AModelWithARequestInFlightIsNeverEvicted) {
  Server server(data(), ConfigArgs(dir_.path(), "max_loaded_models = 1\nallow_api_commands = true\n"));
  ASSERT_TRUE(server.started()) << server.startup_output();
  json engine = {{"argv", {(BinDir() / "mw-openai-engine").string(), "--port", "{port}"}}, {"health_path", "/health"}};
  ASSERT_EQ(server.Call("POST", "/api/models", json{{"model_name", "a"}, {"engine", "command"}, {"load_config", engine}})
                .status,
            201);
  AddTiny(server, "b");
  const std::string release = (dir_.path() / "release").string();
  RawConnection stream(server.port());
  ASSERT_TRUE(stream.Send("POST", "/v1/chat/completions",
                          json{{"model", "a"},
                               {"stream", true},
                               {"messages", {{{"role", "user"}, {"content", "TOKENS=5 WAIT_FOR=" + release}}}}}
                              .dump()));
  ASSERT_NE(stream.ReadUntil("Hello").find("Hello"), std::string::npos) << "the first token";
  EXPECT_EQ(LoadedEntry(server.Call("GET", "/api/status").body, "a")["requests_in_flight"], 1);

  HttpReply refused = LoadModel(server, "b");
  ASSERT_EQ(refused.status, 503) << refused.raw;
  EXPECT_EQ(refused.body["error"]["code"], "models_busy");
  EXPECT_EQ(refused.body["error"]["busy_models"], json::array({"a"}));
  const std::string message = refused.body["error"]["message"];
  for (const char* what : {"max_loaded_models is 1", "loaded model a has", "requests in flight", "Retry", "unload a model",
                           "raise max_loaded_models"}) {
    EXPECT_NE(message.find(what), std::string::npos) << what << " in: " << message;
  }
  HttpReply v1 = server.Call("POST", "/v1/completions", json{{"model", "b"}, {"prompt", "hi"}, {"max_tokens", 2}});
  EXPECT_EQ(v1.status, 503) << v1.raw;
  EXPECT_EQ(v1.body["error"]["code"], "models_busy") << v1.raw;
  EXPECT_TRUE(v1.body["error"]["type"].is_string()) << v1.raw;
  json b = server.Call("GET", "/api/models/b").body;
  EXPECT_TRUE(b["attempts"].empty()) << b.dump();  // refused before any attempt
  EXPECT_EQ(b["compatibility_status"], "unknown");
  EXPECT_EQ(LoadedNames(server), (std::vector<std::string>{"a"}));

  std::ofstream(release) << "go";
  RawResponse done = stream.ReadResponse(std::chrono::seconds(60));
  EXPECT_EQ(done.status, 200);
  EXPECT_NE(done.body.find("data: [DONE]"), std::string::npos) << done.body;  // completed, not cut off
  EXPECT_EQ(done.body.find("\"error\""), std::string::npos) << done.body;

  WaitIdle(server, "a");
  HttpReply loaded = LoadModel(server, "b");
  ASSERT_EQ(loaded.status, 200) << loaded.raw;
  EXPECT_EQ(LoadedNames(server), (std::vector<std::string>{"b"}));
  EXPECT_EQ(server.Call("GET", "/api/models/a").body["compatibility_status"], "compatible");  // evicted, not failed
}

// A load whose estimate does not fit the free memory, but would once an idle
// model is unloaded, is not refused: the idle model is evicted. The margin
// is set (SIGHUP) from MemAvailable measured with the first model loaded, so
// that the second model fits only with the first one's memory back: the
// window is half the first model's memory (~1 GiB) either way, for the
// machine's memory to move in between the measure and the load.
TEST_F(ResidencyTest, AFitRefusalThatEvictionCanCureIsCured) {
  const std::vector<std::string> args = ConfigArgs(dir_.path(), "memory_margin_mib = 0\n");
  Server server(data(), args);
  ASSERT_TRUE(server.started()) << server.startup_output();
  // 8 layers of f16 K and V rows of 64: 2 KiB per token; n_ctx 2^20 -> a 2 GiB KV cache.
  const json big = {{"n_ctx", 1048576}};
  AddTiny(server, "big1", big, {"--layers", "8", "--ctx", "1048576"});
  AddTiny(server, "big2", big, {"--layers", "8", "--ctx", "1048576"});
  AddTiny(server, "deep", {{"n_ctx", 16777216}}, {"--layers", "128"});  // 512 GiB of KV cache: never fits
  HttpReply first = LoadModel(server, "big1");
  ASSERT_EQ(first.status, 200) << first.raw;

  // The 507 says that the free memory already counts the idle model.
  HttpReply never = LoadModel(server, "deep");
  ASSERT_EQ(never.status, 507) << never.raw;
  EXPECT_NE(never.body["error"]["message"].get<std::string>().find(
                "The free memory counts what unloading the idle loaded model(s) big1 would free"),
            std::string::npos)
      << never.raw;
  EXPECT_EQ(LoadedNames(server), (std::vector<std::string>{"big1"}));  // a refusal evicts nothing

  const int64_t used = LoadedEntry(server.Call("GET", "/api/status").body, "big1")["memory_used"];
  const int64_t needed = server.Call("GET", "/api/models/big2").body["fit"]["estimate_bytes"];
  ASSERT_GT(used, int64_t{1} << 30);
  const int64_t available = MemAvailable();
  const int64_t margin_mib = (available + used / 2 - needed) >> 20;
  std::cout << "MemAvailable " << (available >> 20) << " MiB, big1 holds " << (used >> 20) << " MiB, big2 needs "
            << (needed >> 20) << " MiB: memory_margin_mib " << margin_mib << "\n";
  ASSERT_GT(margin_mib, 0) << "not enough free memory on this machine for the test";
  ConfigArgs(dir_.path(), "memory_margin_mib = " + std::to_string(margin_mib) + "\n");  // rewrites the same file
  ASSERT_EQ(::kill(server.pid(), SIGHUP), 0);
  ASSERT_TRUE(server.WaitForStderr("memory_margin_mib 0 -> " + std::to_string(margin_mib))) << server.Stderr();

  HttpReply second = LoadModel(server, "big2");
  ASSERT_EQ(second.status, 200) << second.raw;
  EXPECT_EQ(LoadedNames(server), (std::vector<std::string>{"big2"}));
  EXPECT_NE(server.Stderr().find("model=big1 evicted (idle, least recently used) to make room for 'big2': its "
                                 "estimate did not fit the free memory"),
            std::string::npos)
      << server.Stderr();
  const std::string metrics = server.Call("GET", "/metrics").raw;
  EXPECT_NE(metrics.find("modelwarden_evictions_total{reason=\"memory\"} 1\n"), std::string::npos) << metrics;
}

}  // namespace
}  // namespace mw::itest
