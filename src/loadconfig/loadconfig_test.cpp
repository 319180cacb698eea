#include "loadconfig/loadconfig.h"

#include <gtest/gtest.h>

namespace mw::loadconfig {
namespace {

LlamaConfig Llama(std::string_view text) {
  Result<LoadConfig> r = ValidateLoadConfig(Engine::kLlamaCpp, text);
  EXPECT_TRUE(r.ok()) << text << " -> " << r.status().ToString();
  if (!r.ok() || r->llama() == nullptr) return {};
  return *r->llama();
}

std::string Error(Engine engine, std::string_view text) {
  Result<LoadConfig> r = ValidateLoadConfig(engine, text);
  EXPECT_FALSE(r.ok()) << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  return r.status().message();
}

TEST(LoadConfigTest, OriginalDesignExampleIsValid) {
  LlamaConfig c = Llama(R"({"attn_implementation": "eager", "torch_dtype": "bfloat16", "device_map": "auto"})");
  EXPECT_EQ(c.flash_attn, FlashAttn::kOff);
  EXPECT_EQ(c.cache_type_k, CacheType::kBF16);
  EXPECT_EQ(c.cache_type_v, CacheType::kBF16);
  EXPECT_EQ(c.n_gpu_layers, -1);
}

TEST(LoadConfigTest, EmptyConfigLeavesEverythingUnset) {
  EXPECT_EQ(Llama("{}"), LlamaConfig{});
  EXPECT_EQ(Llama(""), LlamaConfig{});
  EXPECT_EQ(Llama("  \n"), LlamaConfig{});
}

TEST(LoadConfigTest, ReadsEveryLlamaKey) {
  LlamaConfig c = Llama(R"({"n_gpu_layers": 20, "main_gpu": 1, "split_mode": "row", "tensor_split": [3, 1.5],
    "flash_attn": "on", "n_ctx": 8192, "n_batch": 1024, "n_ubatch": 256, "n_threads": 8, "n_threads_batch": 4,
    "cache_type_k": "q8_0", "cache_type_v": "q4_0", "use_mmap": false, "use_mlock": true, "offload_kqv": false,
    "seed": 42, "load_timeout_s": 600, "n_parallel": 4, "embeddings": true, "pooling": "last"})");
  EXPECT_EQ(c.n_parallel, 4);
  EXPECT_EQ(c.pooling, Pooling::kLast);
  EXPECT_EQ(c.embeddings, true);
  EXPECT_EQ(c.n_gpu_layers, 20);
  EXPECT_EQ(c.main_gpu, 1);
  EXPECT_EQ(c.split_mode, SplitMode::kRow);
  EXPECT_EQ(c.tensor_split, (std::vector<float>{3.0f, 1.5f}));
  EXPECT_EQ(c.flash_attn, FlashAttn::kOn);
  EXPECT_EQ(c.n_ctx, 8192u);
  EXPECT_EQ(c.n_batch, 1024u);
  EXPECT_EQ(c.n_ubatch, 256u);
  EXPECT_EQ(c.n_threads, 8);
  EXPECT_EQ(c.n_threads_batch, 4);
  EXPECT_EQ(c.cache_type_k, CacheType::kQ8_0);
  EXPECT_EQ(c.cache_type_v, CacheType::kQ4_0);
  EXPECT_EQ(c.use_mmap, false);
  EXPECT_EQ(c.use_mlock, true);
  EXPECT_EQ(c.offload_kqv, false);
  EXPECT_EQ(c.seed, 42u);
  auto full = ValidateLoadConfig("llama.cpp", R"({"load_timeout_s": 600})");
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->load_timeout_s, 600);
}

TEST(LoadConfigTest, FlashAttnSpellings) {
  EXPECT_EQ(Llama(R"({"flash_attn": true})").flash_attn, FlashAttn::kOn);
  EXPECT_EQ(Llama(R"({"flash_attn": false})").flash_attn, FlashAttn::kOff);
  EXPECT_EQ(Llama(R"({"flash_attn": "auto"})").flash_attn, FlashAttn::kAuto);
  EXPECT_EQ(Llama(R"({"flash_attn": "off"})").flash_attn, FlashAttn::kOff);
  EXPECT_NE(Error(Engine::kLlamaCpp, R"({"flash_attn": "yes"})").find("flash_attn"), std::string::npos);
  EXPECT_NE(Error(Engine::kLlamaCpp, R"({"flash_attn": 1})").find("flash_attn"), std::string::npos);
}

TEST(LoadConfigTest, GpuLayersAcceptsAll) {
  EXPECT_EQ(Llama(R"({"n_gpu_layers": "all"})").n_gpu_layers, -1);
  EXPECT_EQ(Llama(R"({"n_gpu_layers": -1})").n_gpu_layers, -1);
  EXPECT_EQ(Llama(R"({"n_gpu_layers": 0})").n_gpu_layers, 0);
  Error(Engine::kLlamaCpp, R"({"n_gpu_layers": -2})");
  Error(Engine::kLlamaCpp, R"({"n_gpu_layers": 1.5})");
  Error(Engine::kLlamaCpp, R"({"n_gpu_layers": "many"})");
}

TEST(LoadConfigTest, HuggingFaceKeysMap) {
  EXPECT_EQ(Llama(R"({"attn_implementation": "flash_attention_2"})").flash_attn, FlashAttn::kOn);
  EXPECT_EQ(Llama(R"({"attn_implementation": "sdpa"})").flash_attn, FlashAttn::kAuto);
  EXPECT_EQ(Llama(R"({"torch_dtype": "float16"})").cache_type_v, CacheType::kF16);
  EXPECT_EQ(Llama(R"({"torch_dtype": "float32"})").cache_type_k, CacheType::kF32);
  EXPECT_EQ(Llama(R"({"torch_dtype": "auto"})").cache_type_k, std::nullopt);
  EXPECT_EQ(Llama(R"({"device_map": "cpu"})").n_gpu_layers, 0);
  LlamaConfig cuda = Llama(R"({"device_map": "cuda:1"})");
  EXPECT_EQ(cuda.main_gpu, 1);
  EXPECT_EQ(cuda.split_mode, SplitMode::kNone);
  EXPECT_EQ(cuda.n_gpu_layers, -1);
  EXPECT_EQ(Llama(R"({"device_map": 2})").main_gpu, 2);
  EXPECT_EQ(Llama(R"({"device_map": "cuda"})").main_gpu, 0);
  // auto with an explicit layer count: the count narrows "all that fit".
  EXPECT_EQ(Llama(R"({"device_map": "auto", "n_gpu_layers": 12})").n_gpu_layers, 12);
  // Agreeing keys are fine.
  EXPECT_EQ(Llama(R"({"attn_implementation": "eager", "flash_attn": false})").flash_attn, FlashAttn::kOff);
  EXPECT_EQ(Llama(R"({"torch_dtype": "float16", "cache_type_k": "f16"})").cache_type_v, CacheType::kF16);
}

TEST(LoadConfigTest, DisagreeingKeysAreRejected) {
  std::string m = Error(Engine::kLlamaCpp, R"({"attn_implementation": "eager", "flash_attn": true})");
  EXPECT_NE(m.find("attn_implementation"), std::string::npos) << m;
  EXPECT_NE(m.find("flash_attn"), std::string::npos) << m;
  m = Error(Engine::kLlamaCpp, R"({"torch_dtype": "bfloat16", "cache_type_v": "q8_0"})");
  EXPECT_NE(m.find("cache_type_v"), std::string::npos) << m;
  Error(Engine::kLlamaCpp, R"({"device_map": "cpu", "n_gpu_layers": 10})");
  Error(Engine::kLlamaCpp, R"({"device_map": "cuda:1", "main_gpu": 0})");
  Error(Engine::kLlamaCpp, R"({"device_map": "cuda:0", "split_mode": "layer"})");
  Error(Engine::kLlamaCpp, R"({"device_map": "cuda:0", "n_gpu_layers": 0})");
  Error(Engine::kLlamaCpp, R"({"n_batch": 256, "n_ubatch": 512})");
  m = Error(Engine::kLlamaCpp, R"({"cache_type_v": "q4_0", "flash_attn": false})");
  EXPECT_NE(m.find("flash attention"), std::string::npos) << m;
}

TEST(LoadConfigTest, BadHuggingFaceValuesListTheChoices) {
  std::string m = Error(Engine::kLlamaCpp, R"({"attn_implementation": "flex"})");
  EXPECT_NE(m.find("\"eager\""), std::string::npos) << m;
  EXPECT_NE(m.find("\"sdpa\""), std::string::npos) << m;
  Error(Engine::kLlamaCpp, R"({"torch_dtype": "int8"})");
  Error(Engine::kLlamaCpp, R"({"device_map": "cuda:"})");
  Error(Engine::kLlamaCpp, R"({"device_map": "cuda:x"})");
  Error(Engine::kLlamaCpp, R"({"device_map": "tpu"})");
  Error(Engine::kLlamaCpp, R"({"device_map": {"model.layers.0": 0}})");
  Error(Engine::kLlamaCpp, R"({"device_map": -1})");
}

TEST(LoadConfigTest, UnknownKeysListTheKnownOnes) {
  std::string m = Error(Engine::kLlamaCpp, R"({"n_gpu_layer": 3})");
  EXPECT_NE(m.find("'n_gpu_layer'"), std::string::npos) << m;
  for (const std::string& key : KnownKeys(Engine::kLlamaCpp)) {
    EXPECT_NE(m.find(key), std::string::npos) << key << " missing from: " << m;
  }
  m = Error(Engine::kCommand, R"({"argv": ["x"], "n_ctx": 4})");
  EXPECT_NE(m.find("argv"), std::string::npos) << m;
  EXPECT_NE(m.find("ready_pattern"), std::string::npos) << m;
}

TEST(LoadConfigTest, WrongTypesNameTheKey) {
  struct Case { const char* json; const char* key; };
  const Case cases[] = {
      {R"({"n_ctx": "4096"})", "n_ctx"},        {R"({"n_ctx": -1})", "n_ctx"},
      {R"({"n_ctx": 1e30})", "n_ctx"},          {R"({"n_batch": 0})", "n_batch"},
      {R"({"n_threads": 0})", "n_threads"},     {R"({"use_mmap": "true"})", "use_mmap"},
      {R"({"use_mlock": 1})", "use_mlock"},     {R"({"offload_kqv": null})", "offload_kqv"},
      {R"({"main_gpu": -1})", "main_gpu"},      {R"({"split_mode": "rows"})", "split_mode"},
      {R"({"tensor_split": []})", "tensor_split"}, {R"({"tensor_split": [1, "a"]})", "tensor_split"},
      {R"({"tensor_split": [0, 0]})", "tensor_split"}, {R"({"tensor_split": [-1, 2]})", "tensor_split"},
      {R"({"cache_type_k": "q2_k"})", "cache_type_k"}, {R"({"seed": -5})", "seed"},
      {R"({"seed": 99999999999})", "seed"},     {R"({"load_timeout_s": 0})", "load_timeout_s"},
      {R"({"load_timeout_s": "60"})", "load_timeout_s"}, {R"({"n_ctx": 18446744073709551615})", "n_ctx"},
      {R"({"n_parallel": 0})", "n_parallel"},   {R"({"n_parallel": -1})", "n_parallel"},
      {R"({"n_parallel": 257})", "n_parallel"}, {R"({"n_parallel": 2.5})", "n_parallel"},
      {R"({"n_parallel": "2"})", "n_parallel"}, {R"({"embeddings": "yes"})", "embeddings"},
      {R"({"embeddings": 1})", "embeddings"},   {R"({"pooling": "max"})", "pooling"},
  };
  for (const Case& c : cases) {
    std::string m = Error(Engine::kLlamaCpp, c.json);
    EXPECT_NE(m.find(std::string("'") + c.key + "'"), std::string::npos) << c.json << " -> " << m;
  }
}

TEST(LoadConfigTest, NotAnObjectOrNotJson) {
  Error(Engine::kLlamaCpp, "[]");
  Error(Engine::kLlamaCpp, "\"string\"");
  Error(Engine::kLlamaCpp, "null");
  Error(Engine::kLlamaCpp, "{\"n_ctx\": 1");
  Error(Engine::kLlamaCpp, "\xff\xfe");
  Error(Engine::kLlamaCpp, std::string(30000, '[') + std::string(30000, ']'));
  Result<LoadConfig> huge = ValidateLoadConfig(Engine::kLlamaCpp, std::string(kMaxLoadConfigBytes + 1, ' '));
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), StatusCode::kResourceExhausted);
  Result<LoadConfig> engine = ValidateLoadConfig("vllm", "{}");
  ASSERT_FALSE(engine.ok());
  EXPECT_NE(engine.status().message().find("command"), std::string::npos);
}

TEST(LoadConfigTest, CommandEngine) {
  auto r = ValidateLoadConfig("command", R"({"argv": ["/usr/bin/llama-server", "-m", "{model_path}", "--port", "{port}"],
      "ready_pattern": "server is listening", "health_path": "/health", "env": {"CUDA_VISIBLE_DEVICES": "0"},
      "load_timeout_s": 30})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const CommandConfig* c = r->command();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->argv.size(), 5u);
  EXPECT_EQ(c->ready_pattern, "server is listening");
  EXPECT_EQ(c->health_path, "/health");
  EXPECT_EQ(c->env.at("CUDA_VISIBLE_DEVICES"), "0");
  EXPECT_EQ(r->load_timeout_s, 30);
  EXPECT_NE(r->normalized_json.find("\"argv\""), std::string::npos);
  EXPECT_EQ(r->normalized_json.find('\n'), std::string::npos);
}

TEST(LoadConfigTest, CommandEngineErrors) {
  EXPECT_NE(Error(Engine::kCommand, "{}").find("preset"), std::string::npos);
  Error(Engine::kCommand, R"({"argv": []})");
  Error(Engine::kCommand, R"({"argv": "llama-server -m x"})");
  Error(Engine::kCommand, R"({"argv": ["a", 1]})");
  Error(Engine::kCommand, R"({"argv": [""]})");
  std::string m = Error(Engine::kCommand, R"({"argv": ["a"], "ready_pattern": "(unclosed"})");
  EXPECT_NE(m.find("RE2"), std::string::npos) << m;
  Error(Engine::kCommand, R"({"argv": ["a"], "ready_pattern": 5})");
  Error(Engine::kCommand, R"({"argv": ["a"], "health_path": "health"})");
  Error(Engine::kCommand, R"({"argv": ["a"], "health_path": "/he alth"})");
  Error(Engine::kCommand, R"({"argv": ["a"], "health_path": "/h\r\nX: y"})");
  Error(Engine::kCommand, R"({"argv": ["a"], "env": ["A=1"]})");
  Error(Engine::kCommand, R"({"argv": ["a"], "env": {"A": 1}})");
  Error(Engine::kCommand, R"({"argv": ["a"], "env": {"A=B": "1"}})");
  Error(Engine::kCommand, R"({"argv": ["a"], "env": {"": "1"}})");
  Error(Engine::kCommand, R"({"argv": ["a\u0000b"]})");
  Error(Engine::kCommand, R"({"argv": ["a"], "load_timeout_s": -3})");
}

TEST(LoadConfigTest, CommandPresetNamesAProgramOfTheConfiguration) {
  auto r = ValidateLoadConfig("command", R"({"preset": "vllm", "health_path": "/health", "load_timeout_s": 60})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const CommandConfig* c = r->command();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->preset, "vllm");
  EXPECT_TRUE(c->argv.empty());
  EXPECT_EQ(c->health_path, "/health");
  std::string both = Error(Engine::kCommand, R"({"preset": "vllm", "argv": ["/bin/sh"]})");
  EXPECT_NE(both.find("not both"), std::string::npos) << both;
  Error(Engine::kCommand, R"({"preset": ""})");
  Error(Engine::kCommand, R"({"preset": 3})");
  // llama.cpp models take no preset.
  Error(Engine::kLlamaCpp, R"({"preset": "vllm"})");
}

}  // namespace
}  // namespace mw::loadconfig

namespace mw::loadconfig {
namespace {

TEST(LoadConfigTest, ServingKeysForEveryEngine) {
  auto llama = ValidateLoadConfig("llama.cpp", R"({"n_parallel": 4, "embeddings": true})");
  ASSERT_TRUE(llama.ok()) << llama.status().ToString();
  EXPECT_EQ(llama->n_parallel, 4);
  EXPECT_EQ(llama->embeddings, true);
  auto command = ValidateLoadConfig("command", R"({"argv": ["a", "{port}"], "n_parallel": 2, "embeddings": false})");
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_EQ(command->n_parallel, 2);
  EXPECT_EQ(command->embeddings, false);
  auto unset = ValidateLoadConfig("llama.cpp", "{}");
  ASSERT_TRUE(unset.ok());
  EXPECT_FALSE(unset->n_parallel);
  EXPECT_FALSE(unset->embeddings);
  for (const char* bad : {R"({"n_parallel": 0})", R"({"n_parallel": 257})", R"({"n_parallel": "2"})",
                          R"({"embeddings": "yes"})"}) {
    auto r = ValidateLoadConfig("llama.cpp", bad);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

// SPEC §15: `devices` and the placement keys against the devices present.
TEST(LoadConfigTest, DevicesAndPlacement) {
  LlamaConfig c = Llama(R"({"devices": ["Vulkan0"], "n_gpu_layers": 99})");
  EXPECT_EQ(c.devices, (std::vector<std::string>{"Vulkan0"}));
  EXPECT_NE(Error(Engine::kLlamaCpp, R"({"devices": []})").find("devices"), std::string::npos);
  EXPECT_NE(Error(Engine::kLlamaCpp, R"({"devices": ["Vulkan0; rm"]})").find("devices"), std::string::npos);
  EXPECT_NE(Error(Engine::kLlamaCpp, R"({"devices": "Vulkan0"})").find("devices"), std::string::npos);

  const std::vector<PresentDevice> here = {{"Vulkan0", true}, {"CPU", false}};
  EXPECT_TRUE(CheckPlacement(c, here).ok());
  Status missing = CheckPlacement(Llama(R"({"devices": ["CUDA0"]})"), here);
  EXPECT_EQ(missing.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing.message().find("CUDA0"), std::string::npos) << missing.message();
  EXPECT_NE(missing.message().find("devices here: Vulkan0, CPU"), std::string::npos) << missing.message();
  EXPECT_FALSE(CheckPlacement(Llama(R"({"main_gpu": 1})"), here).ok());
  EXPECT_TRUE(CheckPlacement(Llama(R"({"main_gpu": 0})"), here).ok());
  EXPECT_FALSE(CheckPlacement(Llama(R"({"tensor_split": [1, 1]})"), here).ok());
  EXPECT_TRUE(CheckPlacement(Llama(R"({"tensor_split": [1, 0]})"), here).ok());
  EXPECT_FALSE(CheckPlacement(Llama(R"({"devices": ["CPU"], "main_gpu": 1})"), here).ok());
}

}  // namespace
}  // namespace mw::loadconfig
