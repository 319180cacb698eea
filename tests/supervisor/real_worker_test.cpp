// The Supervisor driving the real modelwarden-worker on a model made by
// `modelwarden-worker make-test-model` (no download, CPU only).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "http_client/loopback_http.h"
#include "require.h"
#include "supervisor/supervisor.h"
#include "supervisor/test_support.h"

namespace mw {
namespace {

using std::chrono::milliseconds;

class RealWorkerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    worker_ = testing_support::BinDir() + "/modelwarden-worker";
    if (::access(worker_.c_str(), X_OK) != 0) return;
    dir_ = testing_support::TempDir();
    model_ = dir_ + "/tiny.gguf";
    SpawnOptions make;
    make.argv = {worker_, "make-test-model", model_};
    auto child = ChildProcess::Spawn(std::move(make));
    ASSERT_TRUE(child.ok()) << child.status().ToString();
    ProcessExit e = child->Wait();
    ASSERT_TRUE(e.success()) << e.Describe() << "\n" << child->LogTail();
  }

  void SetUp() override {
    MW_REQUIRE(::access(worker_.c_str(), X_OK) == 0,
               "modelwarden-worker (built with llama.cpp, which scripts/bootstrap installs)");
  }

  LoadRequest Request(const std::string& path, const std::string& config, const std::string& verify = "decode") {
    LoadRequest r;
    r.verify = verify;
    r.model_name = "tiny";
    r.model_path = path;
    r.engine = EngineKind::kLlamaCpp;
    r.load_config_json = config;
    return r;
  }

  SupervisorOptions Options() {
    SupervisorOptions o;
    o.worker_path = worker_;
    return o;
  }

  static inline std::string worker_, dir_, model_;
};

TEST_F(RealWorkerTest, LoadsThenUnloadsCleanly) {
  Supervisor sup(Options());
  double last_progress = -1;
  LoadObserver obs;
  obs.on_progress = [&](double p) { last_progress = p; };
  auto report = sup.Load(Request(model_, R"({"n_ctx":256})"), obs);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->outcome, LoadOutcome::kSuccess) << report->error_message << "\n" << report->log_tail;
  EXPECT_EQ(report->n_ctx, 256);
  EXPECT_FALSE(report->devices.empty());
  EXPECT_GE(last_progress, 0.0);
  ASSERT_TRUE(sup.IsLoaded("tiny"));
  auto exit = sup.Unload("tiny");
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->success()) << exit->Describe();
  EXPECT_TRUE(testing_support::ProcessGone(report->pid));
}

TEST_F(RealWorkerTest, OriginalDesignExampleConfigLoads) {
  Supervisor sup(Options());
  auto report = sup.Load(
      Request(model_, R"({"attn_implementation": "eager", "torch_dtype": "bfloat16", "device_map": "auto"})"));
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->outcome, LoadOutcome::kSuccess) << report->error_message << "\n" << report->log_tail;
}

TEST_F(RealWorkerTest, CorruptAndTruncatedFilesFailWithTheirLog) {
  std::string garbage = dir_ + "/garbage.gguf";
  std::ofstream(garbage) << "this is not a gguf file at all";
  std::string truncated = dir_ + "/truncated.gguf";
  std::filesystem::copy_file(model_, truncated, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(truncated, std::filesystem::file_size(model_) / 2);

  Supervisor sup(Options());
  for (const std::string& path : {garbage, truncated}) {
    auto report = sup.Load(Request(path, "{}"));
    ASSERT_TRUE(report.ok());
    EXPECT_NE(report->outcome, LoadOutcome::kSuccess) << path;
    EXPECT_NE(report->outcome, LoadOutcome::kTimeout) << path;
    EXPECT_FALSE(report->error_message.empty()) << path;
    EXPECT_FALSE(report->log_tail.empty()) << path;
    EXPECT_FALSE(sup.IsLoaded("tiny"));
  }
}

// SPEC §10: the loaded model is served by llama.cpp's own server code, on
// the Unix socket the load reports (the serving contract in supervisor.h;
// SPEC §20: no TCP port).
TEST_F(RealWorkerTest, ServesOpenAiPathsOnTheReportedSocket) {
  Supervisor sup(Options());
  auto report = sup.Load(Request(model_, R"({"n_ctx":256})"));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->outcome, LoadOutcome::kSuccess) << report->error_message << "\n" << report->log_tail;
  ASSERT_FALSE(report->endpoint.socket_path.empty());
  EXPECT_EQ(report->endpoint.port, 0);
  auto loaded = sup.FindLoaded("tiny");
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->endpoint, report->endpoint);
  EXPECT_NE(report->log_tail.find("first decode ok"), std::string::npos) << report->log_tail;

  auto health = HttpRequest(report->endpoint, "GET", "/health", "", milliseconds(10000));
  ASSERT_TRUE(health.ok()) << health.status().ToString();
  EXPECT_EQ(health->status, 200);
  auto models = HttpRequest(report->endpoint, "GET", "/v1/models", "", milliseconds(10000));
  ASSERT_TRUE(models.ok()) << models.status().ToString();
  EXPECT_EQ(models->status, 200) << models->body;
  auto chat = HttpRequest(report->endpoint, "POST", "/v1/chat/completions",
                          R"({"messages":[{"role":"user","content":"Hello"}],"max_tokens":4,"temperature":0})",
                          milliseconds(60000));
  ASSERT_TRUE(chat.ok()) << chat.status().ToString();
  ASSERT_EQ(chat->status, 200) << chat->body;
  auto body = nlohmann::json::parse(chat->body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << chat->body;
  EXPECT_EQ(body.value("object", ""), "chat.completion");
  ASSERT_TRUE(body["choices"].is_array() && !body["choices"].empty()) << chat->body;
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  EXPECT_GT(body["usage"]["completion_tokens"].get<int>(), 0) << chat->body;

  ASSERT_TRUE(sup.Unload("tiny").ok());
  EXPECT_FALSE(HttpGetStatus(report->endpoint, "/health", milliseconds(2000)).ok());  // the engine went with it
  EXPECT_NE(::access(report->endpoint.socket_path.c_str(), F_OK), 0);                  // and its socket file
}

// n_parallel and embeddings reach llama.cpp's server: its own /props and
// /v1/embeddings say so.
TEST_F(RealWorkerTest, ParallelSlotsAndEmbeddingsReachTheEngine) {
  Supervisor sup(Options());
  auto report = sup.Load(Request(model_, R"({"n_ctx":768,"n_parallel":3,"embeddings":true,"pooling":"last"})"));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->outcome, LoadOutcome::kSuccess) << report->error_message << "\n" << report->log_tail;
  auto props = HttpRequest(report->endpoint, "GET", "/props", "", milliseconds(10000));
  ASSERT_TRUE(props.ok()) << props.status().ToString();
  auto body = nlohmann::json::parse(props->body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << props->body;
  EXPECT_EQ(body.value("total_slots", 0), 3) << props->body;
  EXPECT_EQ(body["default_generation_settings"].value("n_ctx", 0), 256) << props->body;  // 768 / 3 slots
  EXPECT_EQ(report->n_ctx, 768);
  auto emb = HttpRequest(report->endpoint, "POST", "/v1/embeddings", R"({"input":"hello world"})", milliseconds(60000));
  ASSERT_TRUE(emb.ok()) << emb.status().ToString();
  EXPECT_EQ(emb->status, 200) << emb->body;
  EXPECT_NE(emb->body.find("\"embedding\""), std::string::npos) << emb->body.substr(0, 300);
}

// verify (SPEC §10): "decode" runs a short prompt through the engine before
// the load counts (llama.cpp's log shows the slot evaluating it, before the
// worker reports `loaded`); "load" runs no forward pass at all. Neither runs
// llama.cpp's warm-up decode nor its load-time probe decode (two tokens, to
// learn whether the KV cache drops part of a sequence; an attention KV cache
// does: cmake/llama-serverlib/engine_seq_rm_probe.cpp) (SPEC §16: one decode
// per load, not two). llama.cpp raises a tiny n_ctx: the report says what
// the engine really has.
TEST_F(RealWorkerTest, VerifyDecodeRunsAFirstDecodeAndVerifyLoadNone) {
  Supervisor sup(Options());
  auto decode = sup.Load(Request(model_, R"({"n_ctx":8})", "decode"));
  ASSERT_TRUE(decode.ok()) << decode.status().ToString();
  ASSERT_EQ(decode->outcome, LoadOutcome::kSuccess) << decode->error_message << "\n" << decode->log_tail;
  const std::string& log = decode->log_tail;
  const size_t evaluated = log.find("\"tokens_evaluated\":2");  // BOS + "Hello": a short prompt (SPEC §16)
  const size_t first_decode = log.find("first decode ok");
  EXPECT_NE(evaluated, std::string::npos) << log;
  EXPECT_NE(first_decode, std::string::npos) << log;
  EXPECT_NE(log.find("--no-warmup"), std::string::npos);
  EXPECT_NE(log.find("no load-time probe decode"), std::string::npos) << log;
  EXPECT_GT(decode->n_ctx, 8);  // llama.cpp's minimum, not the 8 asked for
  ASSERT_TRUE(sup.Unload("tiny").ok());

  auto load = sup.Load(Request(model_, R"({"n_ctx":8})", "load"));
  ASSERT_TRUE(load.ok()) << load.status().ToString();
  ASSERT_EQ(load->outcome, LoadOutcome::kSuccess) << load->error_message << "\n" << load->log_tail;
  EXPECT_EQ(load->log_tail.find("first decode ok"), std::string::npos) << load->log_tail;
  EXPECT_EQ(load->log_tail.find("tokens_evaluated"), std::string::npos) << load->log_tail;
  EXPECT_NE(load->log_tail.find("--no-warmup"), std::string::npos);
  EXPECT_NE(load->log_tail.find("no load-time probe decode"), std::string::npos) << load->log_tail;
}

TEST_F(RealWorkerTest, ProbeAnswersWithDevices) {
  Supervisor sup(Options());
  auto answer = sup.RunWorkerCommand({"probe"}, milliseconds(60000));
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  ASSERT_TRUE(std::holds_alternative<protocol::ProbeMessage>(*answer));
  EXPECT_FALSE(std::get<protocol::ProbeMessage>(*answer).devices.empty());
}

}  // namespace
}  // namespace mw
