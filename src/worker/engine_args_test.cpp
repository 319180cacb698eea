#include "worker/engine_args.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

namespace mw::worker {
namespace {

loadconfig::LlamaConfig Config(const char* json) {
  auto c = loadconfig::ValidateLoadConfig(loadconfig::Engine::kLlamaCpp, json);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  const loadconfig::LlamaConfig* llama = c.ok() ? c->llama() : nullptr;
  return llama != nullptr ? *llama : loadconfig::LlamaConfig{};
}

// The value after `flag`, or "<absent>".
std::string After(const std::vector<std::string>& a, const std::string& flag) {
  auto it = std::find(a.begin(), a.end(), flag);
  if (it == a.end()) return "<absent>";
  return it + 1 == a.end() ? "<last>" : *(it + 1);
}

bool Has(const std::vector<std::string>& a, const std::string& flag) { return std::find(a.begin(), a.end(), flag) != a.end(); }

TEST(EngineArgsTest, DefaultsListenOnTheUnixSocketWithOneSlotAndTheSmallerContext) {
  auto a = BuildEngineArgs({"/m/x.gguf", Config("{}"), 2048, Verify::kDecode, "/run/mw/1.sock"});
  EXPECT_EQ(After(a, "--model"), "/m/x.gguf");
  EXPECT_EQ(After(a, "--host"), "/run/mw/1.sock");  // ".sock": llama.cpp binds AF_UNIX, no TCP port
  EXPECT_FALSE(Has(a, "--port"));
  EXPECT_EQ(After(a, "--ctx-size"), "2048");
  EXPECT_EQ(After(a, "--parallel"), "1");
  EXPECT_TRUE(Has(a, "--no-webui"));
  EXPECT_FALSE(Has(a, "--embeddings"));
  EXPECT_TRUE(Has(a, "--no-warmup"));  // the first decode is the worker's own (SPEC §16)
  EXPECT_FALSE(Has(a, "--n-gpu-layers"));  // unset: llama.cpp's own default
  EXPECT_EQ(After(BuildEngineArgs({"m", Config("{}"), 131072, Verify::kDecode}), "--ctx-size"), "4096");
  EXPECT_EQ(After(BuildEngineArgs({"m", Config(R"({"n_ctx": 0})"), 131072, Verify::kDecode}), "--ctx-size"), "131072");
}

// SPEC §18: "embeddings": true alone: mean pooling unless the model has its own.
TEST(EngineArgsTest, EmbeddingsAloneGetMeanPoolingWhenTheModelHasNone) {
  EngineArgsInput in{"m", Config(R"({"embeddings": true})"), 2048, Verify::kDecode, "/run/mw/1.sock"};
  EXPECT_EQ(After(BuildEngineArgs(in), "--pooling"), "mean");
  in.model_pools = true;
  EXPECT_FALSE(Has(BuildEngineArgs(in), "--pooling"));  // the model's own pooling
  in.config = Config(R"({"embeddings": true, "pooling": "last"})");
  in.model_pools = false;
  EXPECT_EQ(After(BuildEngineArgs(in), "--pooling"), "last");
  in.config = Config("{}");
  EXPECT_FALSE(Has(BuildEngineArgs(in), "--pooling"));
}

TEST(EngineArgsTest, EveryKeyReachesTheEngine) {
  auto a = BuildEngineArgs({"m", Config(R"({"n_gpu_layers": -1, "devices": ["CUDA0", "Vulkan0"], "main_gpu": 1, "split_mode": "row",
      "tensor_split": [3, 1.5], "flash_attn": "on", "n_ctx": 512, "n_batch": 256, "n_ubatch": 128, "n_threads": 3,
      "n_threads_batch": 2, "cache_type_k": "q8_0", "cache_type_v": "q4_0", "use_mmap": false, "use_mlock": true,
      "offload_kqv": false, "seed": 7, "n_parallel": 4, "embeddings": true, "pooling": "mean"})"),
                            2048, Verify::kLoad});
  EXPECT_EQ(After(a, "--n-gpu-layers"), "all");
  EXPECT_EQ(After(a, "--device"), "CUDA0,Vulkan0");
  EXPECT_EQ(After(a, "--main-gpu"), "1");
  EXPECT_EQ(After(a, "--split-mode"), "row");
  EXPECT_EQ(After(a, "--tensor-split"), "3,1.5");
  EXPECT_EQ(After(a, "--flash-attn"), "on");
  EXPECT_EQ(After(a, "--ctx-size"), "512");
  EXPECT_EQ(After(a, "--batch-size"), "256");
  EXPECT_EQ(After(a, "--ubatch-size"), "128");
  EXPECT_EQ(After(a, "--threads"), "3");
  EXPECT_EQ(After(a, "--threads-batch"), "2");
  EXPECT_EQ(After(a, "--cache-type-k"), "q8_0");
  EXPECT_EQ(After(a, "--cache-type-v"), "q4_0");
  EXPECT_TRUE(Has(a, "--no-mmap"));
  EXPECT_TRUE(Has(a, "--mlock"));
  EXPECT_TRUE(Has(a, "--no-kv-offload"));
  EXPECT_EQ(After(a, "--seed"), "7");
  EXPECT_EQ(After(a, "--parallel"), "4");
  EXPECT_TRUE(Has(a, "--embeddings"));
  EXPECT_EQ(After(a, "--pooling"), "mean");
  EXPECT_TRUE(Has(a, "--no-warmup"));  // verify "load": no forward pass at load time
  auto b = BuildEngineArgs({"m", Config(R"({"device_map": "cpu", "attn_implementation": "eager"})"), 0, Verify::kDecode});
  EXPECT_EQ(After(b, "--n-gpu-layers"), "0");
  EXPECT_EQ(After(b, "--flash-attn"), "off");
}

TEST(EngineArgsTest, ClearsEnvironmentThatWouldOverrideTheConfig) {
  ::setenv("LLAMA_ARG_N_PARALLEL", "8", 1);
  ::setenv("LLAMA_API_KEY", "x", 1);
  ::setenv("AIP_MODE", "PREDICTION", 1);
  ::setenv("MW_KEEP_ME", "1", 1);
  ClearEngineEnvironment();
  EXPECT_EQ(std::getenv("LLAMA_ARG_N_PARALLEL"), nullptr);
  EXPECT_EQ(std::getenv("LLAMA_API_KEY"), nullptr);
  EXPECT_EQ(std::getenv("AIP_MODE"), nullptr);
  EXPECT_NE(std::getenv("MW_KEEP_ME"), nullptr);
}

TEST(EngineArgsTest, TheSocketIsAnAbsoluteShortPathEndingInSock) {
  EXPECT_TRUE(CheckEngineSocketPath("/run/mw/1.sock").ok());
  EXPECT_FALSE(CheckEngineSocketPath("").ok());
  EXPECT_FALSE(CheckEngineSocketPath("127.0.0.1").ok());  // a host: llama.cpp would listen on TCP
  EXPECT_FALSE(CheckEngineSocketPath("run/1.sock").ok());
  EXPECT_FALSE(CheckEngineSocketPath("/run/mw/1.sockx").ok());
  EXPECT_FALSE(CheckEngineSocketPath("/" + std::string(110, 'a') + ".sock").ok());
}

}  // namespace
}  // namespace mw::worker
