// Fit before load (SPEC §12) against the real server and real llama.cpp
// loads: the estimate in GET /api/models/{name}, the engine's memory beside
// it after a load, and the 507 refusal that starts nothing.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <set>

#include "harness.h"

namespace mw::itest {
namespace {

class FitTest : public ::testing::Test {
 protected:
  std::filesystem::path data() const { return dir_.path() / "data"; }
  TempDir dir_;
};

json Model(Server& s, const std::string& name) { return s.Call("GET", "/api/models/" + name).body; }

// POST /api/models with a file under the models location; the HTTP status.
int Register(Server& s, const std::string& name, const std::string& file, const json& load_config = json::object()) {
  json body{{"model_name", name}, {"file_path", file}};
  if (!load_config.empty()) body["load_config"] = load_config;
  return s.Call("POST", "/api/models", body).status;
}

// make-test-model's default shape: 2 layers, embedding 64, 4 heads of 16
// (KV heads 4), f16 KV cache: 2 * (128 + 128) = 512 bytes per token.
TEST_F(FitTest, EstimateShownBeforeAndMemoryUsedAfterALoad) {
  ASSERT_TRUE(MakeTestModel(data() / "models" / "tiny.gguf"));
  Server server(data());
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(Register(server, "tiny", "tiny.gguf", {{"n_ctx", 512}}), 201);
  json fit = Model(server, "tiny")["fit"];
  ASSERT_TRUE(fit.is_object()) << fit.dump();
  EXPECT_EQ(fit["n_ctx"], 512);
  EXPECT_EQ(fit["breakdown"]["kv_cache"], 512 * 512);
  EXPECT_GT(fit["breakdown"]["weights"].get<int64_t>(), 0);
  EXPECT_GT(fit["breakdown"]["compute"].get<int64_t>(), 0);
  EXPECT_EQ(fit["estimate_bytes"].get<int64_t>(), fit["breakdown"]["weights"].get<int64_t>() +
                                                      fit["breakdown"]["kv_cache"].get<int64_t>() +
                                                      fit["breakdown"]["compute"].get<int64_t>());
  ASSERT_FALSE(fit["per_device"].empty());
  EXPECT_FALSE(fit["per_device"][0]["device"].get<std::string>().empty());
  EXPECT_GT(fit["per_device"][0]["free_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(fit["fits"], true);
  EXPECT_TRUE(fit["reason"].is_null());
  EXPECT_TRUE(fit["memory_used"].is_null());  // not loaded
  ProcessResult shown = server.Cli({"models", "show", "tiny"});
  EXPECT_NE(shown.out.find("estimated for n_ctx 512, fits"), std::string::npos) << shown.out;

  HttpReply r = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"tiny"})");
  ASSERT_EQ(r.status, 200) << r.raw;
  fit = Model(server, "tiny")["fit"];
  ASSERT_TRUE(fit["memory_used"].is_number()) << fit.dump();
  EXPECT_GT(fit["memory_used"].get<int64_t>(), 0);
  std::cout << "estimate_bytes " << fit["estimate_bytes"] << " memory_used " << fit["memory_used"] << "\n";
  // The list stays light: no estimate there.
  EXPECT_FALSE(server.Call("GET", "/api/models").body["models"][0].contains("fit"));
}

// SPEC §12: the estimate against what llama.cpp allocates for real loads
// (the worker's memory_used: llama.cpp's own buffer sizes, compute buffers
// included) for several shapes and KV cache types, within 15 % each.
TEST_F(FitTest, EstimateIsWithinFifteenPercentOfWhatTheEngineAllocates) {
  struct Case {
    const char* name;
    std::vector<std::string> shape;  // make-test-model options
    json load_config;
  };
  const std::vector<Case> cases = {
      {"tiny-f16", {}, {{"n_ctx", 512}}},
      {"wide-f16", {"--layers", "4", "--embd", "512"}, {{"n_ctx", 2048}}},
      {"deep-q8", {"--layers", "32", "--embd", "256", "--ctx", "8192"},
       {{"n_ctx", 8192}, {"cache_type_k", "q8_0"}, {"cache_type_v", "q8_0"}, {"flash_attn", "on"}}},
      {"long-q4", {"--layers", "8", "--embd", "256", "--ctx", "32768"},
       {{"n_ctx", 32768}, {"cache_type_k", "q4_0"}, {"cache_type_v", "q4_0"}, {"flash_attn", "on"}}},
      {"noflash-f16", {"--layers", "4", "--embd", "128"}, {{"n_ctx", 2048}, {"flash_attn", "off"}}},
      // Without flash attention at a long context the scores outgrow the logits.
      {"noflash-long", {"--layers", "2", "--embd", "128", "--ctx", "8192"}, {{"n_ctx", 8192}, {"flash_attn", "off"}}},
  };
  for (const Case& c : cases) ASSERT_TRUE(MakeTestModel(data() / "models" / (std::string(c.name) + ".gguf"), c.shape));
  Server server(data());
  ASSERT_TRUE(server.started()) << server.startup_output();
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_EQ(Register(server, c.name, std::string(c.name) + ".gguf", c.load_config), 201);
    HttpReply r = server.Call("POST", "/api/orchestrate/load", json{{"model_name", c.name}});
    ASSERT_EQ(r.status, 200) << r.raw;
    json fit = Model(server, c.name)["fit"];
    ASSERT_TRUE(fit["memory_used"].is_number()) << fit.dump();
    const double estimate = fit["estimate_bytes"].get<double>();
    const double used = fit["memory_used"].get<double>();
    std::cout << c.name << ": estimate " << estimate << " memory_used " << used << " error "
              << 100.0 * (estimate - used) / used << " %\n";
    EXPECT_NEAR(estimate, used, 0.15 * used) << fit.dump();
    ASSERT_EQ(server.Call("POST", "/api/orchestrate/unload", json{{"model_name", c.name}}).status, 200);
  }
}

// 128 layers: the KV cache of n_ctx 16777216 is 128 * 256 * 2^24 bytes = 512 GiB.
TEST_F(FitTest, ALoadBeyondFreeMemoryIsRefusedBeforeAnyAttempt) {
  ASSERT_TRUE(MakeTestModel(data() / "models" / "deep.gguf", {"--layers", "128"}));
  Server server(data());
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(Register(server, "deep", "deep.gguf", {{"n_ctx", 16777216}}), 201);
  HttpReply r = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"deep"})");
  ASSERT_EQ(r.status, 507) << r.raw;
  EXPECT_EQ(r.body["error"]["code"], "insufficient_memory");
  const std::string message = r.body["error"]["message"];
  EXPECT_NE(message.find("needs "), std::string::npos) << message;
  EXPECT_NE(message.find(" is free"), std::string::npos) << message;
  EXPECT_NE(message.find("would fit with load_config n_ctx "), std::string::npos) << message;
  json fit = r.body["error"]["fit"];
  EXPECT_EQ(fit["fits"], false);
  EXPECT_EQ(fit["breakdown"]["kv_cache"], int64_t{128} * 256 * 16777216);
  ASSERT_TRUE(fit["largest_fitting_n_ctx"].is_number()) << fit.dump();
  // SPEC §18: never above the training context (2048), the same on every call.
  EXPECT_EQ(fit["largest_fitting_n_ctx"], 2048) << fit.dump();
  HttpReply again = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"deep"})");
  EXPECT_EQ(again.body["error"]["fit"]["largest_fitting_n_ctx"], 2048) << again.raw;

  json m = Model(server, "deep");
  EXPECT_TRUE(m["attempts"].empty()) << m.dump();
  EXPECT_EQ(m["compatibility_status"], "unknown");
  EXPECT_EQ(m["total_loads"], 0);
  EXPECT_EQ(m["total_failures"], 0);
  EXPECT_EQ(m["load_state"], "idle");
  EXPECT_EQ(m["fit"]["fits"], false);
  EXPECT_FALSE(m["fit"]["reason"].get<std::string>().empty());
  // The CLI reports the refusal as a failure.
  ProcessResult cli = server.Cli({"load", "deep"});
  EXPECT_EQ(cli.exit_code, 1);
  EXPECT_NE(cli.err.find("[insufficient_memory]"), std::string::npos) << cli.err;
  EXPECT_NE(cli.err.find(R"(Apply it with: modelwarden models set deep --load-config '{"n_ctx":2048}')"), std::string::npos)
      << cli.err;
  EXPECT_TRUE(Model(server, "deep")["attempts"].empty());
}

// The margin is the server's option; force_load skips the check.
TEST_F(FitTest, MemoryMarginCountsAndForceLoadSkipsTheCheck) {
  ASSERT_TRUE(MakeTestModel(data() / "models" / "tiny.gguf"));
  Server server(data(), ConfigArgs(dir_.path(), "memory_margin_mib = 1048576\n"));  // keep 1 TiB free
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(Register(server, "tiny", "tiny.gguf"), 201);
  HttpReply refused = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"tiny"})");
  ASSERT_EQ(refused.status, 507) << refused.raw;
  EXPECT_NE(refused.body["error"]["message"].get<std::string>().find("1048576 MiB is kept as margin"), std::string::npos)
      << refused.raw;
  EXPECT_TRUE(Model(server, "tiny")["attempts"].empty());

  HttpReply forced = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"tiny","force_load":true})");
  ASSERT_EQ(forced.status, 200) << forced.raw;
  json m = Model(server, "tiny");
  ASSERT_EQ(m["attempts"].size(), 1u);
  EXPECT_EQ(m["attempts"][0]["outcome"], "success");
  EXPECT_EQ(m["loaded"], true);
}

}  // namespace
}  // namespace mw::itest

namespace mw::itest {
namespace {

class HealTest : public FitTest {};

// SPEC §11: on this machine a KV cache of 512 GiB fails to allocate
// (out_of_memory); auto_fix retries at once with the n_ctx the estimate says
// fits (at most the training context, 2048), saves it, and a restart keeps it.
TEST_F(HealTest, OutOfMemoryIsHealedWithAComputedContextThatARestartKeeps) {
  ASSERT_TRUE(MakeTestModel(data() / "models" / "deep.gguf", {"--layers", "128"}));
  {
    Server server(data());
    ASSERT_TRUE(server.started()) << server.startup_output();
    ASSERT_EQ(Register(server, "deep", "deep.gguf", {{"n_ctx", 16777216}}), 201);
    // force_load: past the refusal, so that the load really runs out of memory.
    HttpReply r = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"deep","force_load":true})");
    ASSERT_EQ(r.status, 200) << r.raw;
    ASSERT_TRUE(r.body["auto_fix"].is_object()) << r.raw;
    EXPECT_EQ(r.body["auto_fix"]["changed"], json({{"n_ctx", 2048}})) << r.raw;
    const json& first = r.body["auto_fix"]["first_failure"];
    EXPECT_EQ(first["category"], "out_of_memory") << r.raw;
    EXPECT_EQ(first["suggested_load_config"], json({{"n_ctx", 2048}})) << r.raw;
    EXPECT_TRUE(first["attempt_id"].is_number());
    EXPECT_NE(first["attempt_id"], r.body["attempt_id"]);

    json m = Model(server, "deep");
    EXPECT_EQ(m["compatibility_status"], "compatible");
    EXPECT_EQ(m["load_config"], json({{"n_ctx", 2048}}));
    EXPECT_EQ(m["total_failures"], 0);
    EXPECT_EQ(m["total_loads"], 1);
    const std::string notes = m["compatibility_notes"];
    EXPECT_NE(notes.find("loaded after changing n_ctx 16777216 \u2192 2048: "), std::string::npos) << notes;
    ASSERT_EQ(m["attempts"].size(), 2u) << m.dump();
    std::multiset<std::string> outcomes;
    for (const auto& a : m["attempts"]) outcomes.insert(a["outcome"].get<std::string>());
    EXPECT_EQ(outcomes, (std::multiset<std::string>{"failed", "success"}));
    EXPECT_EQ(m["loaded"], true);

    // The CLI says so too (the same heal, once more).
    ASSERT_EQ(server.Call("POST", "/api/orchestrate/unload", R"({"model_name":"deep"})").status, 200);
    ASSERT_EQ(server.Call("PATCH", "/api/models/deep/config", json{{"load_config", {{"n_ctx", 16777216}}}}).status, 200);
    ProcessResult cli = server.Cli({"load", "deep", "--force"});
    EXPECT_EQ(cli.exit_code, 0) << cli.err;
    EXPECT_NE(cli.out.find("auto_fix: the first attempt failed ("), std::string::npos) << cli.out;
    EXPECT_NE(cli.out.find("loaded after changing n_ctx 2048, now saved"), std::string::npos) << cli.out;
  }
  Server again(data());
  ASSERT_TRUE(again.started()) << again.startup_output();
  json m = Model(again, "deep");
  EXPECT_EQ(m["load_config"], json({{"n_ctx", 2048}}));
  EXPECT_EQ(m["compatibility_status"], "compatible");
  HttpReply r = again.Call("POST", "/api/orchestrate/load", R"({"model_name":"deep"})");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_FALSE(r.body.contains("auto_fix")) << r.raw;
}

// A retry that fails too is one failure: one verdict, the user's load_config
// kept, the notes naming what was tried. The worker is mw-fake-engine
// printing llama.cpp's out-of-memory line (no file shape: `inspect` fails
// too, so the suggestion halves n_ctx).
TEST_F(HealTest, AHealThatFailsAgainGivesOneVerdict) {
  ASSERT_TRUE(MakeTestModel(data() / "models" / "tiny.gguf"));
  Server server(data(), ConfigArgs(dir_.path(), "worker = \"" + FakeEngine() + "\"\n"),
                {{"MW_FAKE_ENGINE_SCRIPT",
                  "--stderr\nllama_kv_cache: failed to allocate buffer for kv cache\n--then\nexit1"}});
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(Register(server, "tiny", "tiny.gguf", {{"n_ctx", 65536}}), 201);
  HttpReply r = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"tiny"})");
  ASSERT_EQ(r.status, 422) << r.raw;
  EXPECT_EQ(r.body["error"]["classification"]["category"], "out_of_memory");
  EXPECT_EQ(r.body["error"]["auto_fix"]["changed"], json({{"n_ctx", 32768}})) << r.raw;
  json m = Model(server, "tiny");
  EXPECT_EQ(m["compatibility_status"], "incompatible");
  EXPECT_EQ(m["total_failures"], 1);
  EXPECT_EQ(m["load_config"], json({{"n_ctx", 65536}}));
  ASSERT_EQ(m["attempts"].size(), 2u) << m.dump();
  const std::string notes = m["compatibility_notes"];
  EXPECT_NE(notes.find("Hardware incompatibility detected: "), std::string::npos) << notes;
  EXPECT_NE(notes.find("changing n_ctx 65536 \u2192 32768 did not help"), std::string::npos) << notes;

  // auto_fix = false: one attempt, the suggestion only offered.
  ASSERT_EQ(server.Call("PATCH", "/api/models/tiny/config", json{{"compatibility_status", "unknown"}}).status, 200);
  ASSERT_EQ(server.Stop(), 0);
  Server off(data(), ConfigArgs(dir_.path(), "worker = \"" + FakeEngine() + "\"\nauto_fix = false\n"),
             {{"MW_FAKE_ENGINE_SCRIPT",
               "--stderr\nllama_kv_cache: failed to allocate buffer for kv cache\n--then\nexit1"}});
  ASSERT_TRUE(off.started()) << off.startup_output();
  r = off.Call("POST", "/api/orchestrate/load", R"({"model_name":"tiny"})");
  ASSERT_EQ(r.status, 422) << r.raw;
  EXPECT_FALSE(r.body["error"].contains("auto_fix")) << r.raw;
  EXPECT_EQ(r.body["error"]["classification"]["suggested_load_config"], json({{"n_ctx", 32768}})) << r.raw;
  EXPECT_EQ(Model(off, "tiny")["attempts"].size(), 3u);
}

// SPEC §12 auto_fit: n_ctx left unset means the training context (2^20
// tokens here: a 32 GiB KV cache), lowered to what fits, not below 4096. Free
// memory is made small with the margin: all but ~512 MiB of what is
// available now.
int64_t AvailableMiB() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  int64_t kib = 0;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib / 1024;
  }
  return 0;
}

// The answer (head and body) to a one-token /v1 chat request for `model` (raw
// HTTP: its headers are what is checked).
std::string ColdChatAnswer(int port, const std::string& model) {
  const std::string body =
      json{{"model", model}, {"max_tokens", 1}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}}.dump();
  const std::string request = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                              "application/json\r\nConnection: close\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
  const int fd = ConnectLoopback(port);
  if (fd < 0) return "";
  const timeval wait{120, 0};  // a read that stalls ends the test, not the suite
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  std::string all;
  if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
    char buf[4096];
    for (ssize_t n; all.find("\r\n\r\n") == std::string::npos && (n = ::read(fd, buf, sizeof buf)) > 0;) {
      all.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return all;
}

TEST_F(HealTest, AutoFitLowersAnUnsetContextToWhatFits) {
  ASSERT_TRUE(MakeTestModel(data() / "models" / "long.gguf", {"--layers", "128", "--ctx", "1048576"}));
  // 2 GiB of room: other tests run beside this one, and this machine's
  // MemAvailable fell by 350-860 MiB over a few loads and unloads of this
  // model with no process of ours holding it (AnonPages flat); with 1 GiB the
  // cold step below sometimes had less room than n_ctx 4096 needs.
  const int64_t margin = AvailableMiB() - 2048;
  ASSERT_GT(margin, 0);
  Server server(data(), ConfigArgs(dir_.path(), "memory_margin_mib = " + std::to_string(margin) + "\n"));
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(Register(server, "long", "long.gguf"), 201);
  json fit = Model(server, "long")["fit"];
  EXPECT_EQ(fit["fits"], true) << fit.dump();
  EXPECT_LT(fit["n_ctx"].get<int64_t>(), 1048576);
  HttpReply r = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"long"})");
  ASSERT_EQ(r.status, 200) << r.raw;
  ASSERT_TRUE(r.body["adjusted"].is_object()) << r.raw;
  const int64_t n_ctx = r.body["adjusted"]["n_ctx"];
  EXPECT_GE(n_ctx, 4096);
  EXPECT_LT(n_ctx, 1048576);
  EXPECT_EQ(n_ctx % 256, 0);
  EXPECT_FALSE(r.body["adjusted"].contains("n_gpu_layers"));  // no GPU here
  json m = Model(server, "long");
  EXPECT_EQ(m["load_config"], json::object());  // nothing saved: unset stays unset
  ASSERT_EQ(server.Call("POST", "/api/orchestrate/unload", R"({"model_name":"long"})").status, 200);
  ProcessResult cli = server.Cli({"load", "long"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("auto_fit: loaded with n_ctx "), std::string::npos) << cli.out;
  ASSERT_EQ(server.Call("POST", "/api/orchestrate/unload", R"({"model_name":"long"})").status, 200);
  // A /v1 request that finds it unloaded is handed to the engine at `ready`
  // (SPEC §16), with the same X-Modelwarden-Adjusted header a request after
  // a normal load gets.
  const std::string head = ColdChatAnswer(server.port(), "long");  // the body says why if not 200
  EXPECT_NE(head.find("HTTP/1.1 200"), std::string::npos) << head;
  EXPECT_NE(head.find("X-Modelwarden-Adjusted: {\"n_ctx\":"), std::string::npos) << head;
  ASSERT_EQ(server.Call("POST", "/api/orchestrate/unload", R"({"model_name":"long"})").status, 200);

  // Set by the user: never lowered, refused instead.
  ASSERT_EQ(server.Call("PATCH", "/api/models/long/config", json{{"load_config", {{"n_ctx", 1048576}}}}).status, 200);
  r = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"long"})");
  ASSERT_EQ(r.status, 507) << r.raw;
  EXPECT_FALSE(r.body.contains("adjusted"));
}

}  // namespace
}  // namespace mw::itest
