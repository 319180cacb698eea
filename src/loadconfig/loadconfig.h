// load_config validation (SPEC §5): JSON text in, typed native config out.
//
// The server validates a model's load_config before saving it (a bad config
// is a 400, never a recorded attempt) and the worker validates it again
// before loading, with the same code. Nothing else interprets load_config.
//
// Contract:
//   ValidateLoadConfig(engine, json_text)
//     OK: a LoadConfig whose variant matches the engine, with every value
//         range-checked and the Hugging Face style keys already mapped onto
//         llama.cpp settings (LlamaConfig never mentions HF names).
//     kInvalidArgument: not JSON, not an object, an unknown key (the message
//         lists the known keys), a wrong type or value (the message names the
//         key and what is expected), two keys that disagree (e.g.
//         attn_implementation "eager" with flash_attn true), an unknown
//         engine, a ready_pattern that RE2 cannot compile.
//     kResourceExhausted: json_text larger than kMaxLoadConfigBytes.
//   Never throws; pure function, thread-safe.
//
// Unset llama.cpp settings stay std::nullopt: the worker then uses its own
// defaults (documented in worker/), so a config shows only what a user chose.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"

namespace mw::loadconfig {

inline constexpr size_t kMaxLoadConfigBytes = 64 * 1024;
// load_timeout_s is accepted in [1, kMaxLoadTimeoutSeconds].
inline constexpr int64_t kMaxLoadTimeoutSeconds = 7 * 24 * 3600;
// n_parallel is accepted in [1, kMaxParallel].
inline constexpr int64_t kMaxParallel = 256;

enum class Engine { kLlamaCpp, kCommand };
// "llama.cpp" (also "llama_cpp", "llamacpp") or "command".
Result<Engine> ParseEngine(std::string_view name);
std::string_view EngineName(Engine engine);  // "llama.cpp" | "command"

enum class FlashAttn { kAuto, kOn, kOff };
enum class SplitMode { kNone, kLayer, kRow, kTensor };
// KV cache element types llama.cpp accepts for cache_type_k / cache_type_v.
enum class CacheType { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_1, kIQ4_NL, kQ5_0, kQ5_1 };
// How llama.cpp pools token embeddings into one (its --pooling).
enum class Pooling { kNone, kMean, kCls, kLast, kRank };

std::string_view FlashAttnName(FlashAttn v);  // "auto" | "on" | "off"
std::string_view SplitModeName(SplitMode v);  // "none" | "layer" | "row" | "tensor"
std::string_view CacheTypeName(CacheType v);  // "f16", "q8_0", ...
std::string_view PoolingName(Pooling v);      // "none" | "mean" | "cls" | "last" | "rank"
// True for the block-quantized types (llama.cpp needs flash attention for a
// quantized V cache).
bool IsQuantized(CacheType v);

// Settings for the llama.cpp engine; nullopt = not set by the user.
struct LlamaConfig {
  std::optional<int32_t> n_gpu_layers;  // -1 = all layers
  std::vector<std::string> devices;     // llama.cpp's --device: device ids ("CUDA0", "Vulkan0"); empty = not set
  std::optional<int32_t> main_gpu;
  std::optional<SplitMode> split_mode;
  std::vector<float> tensor_split;      // empty = not set
  std::optional<FlashAttn> flash_attn;
  std::optional<uint32_t> n_ctx;        // 0 = the model's training context
  std::optional<uint32_t> n_batch;
  std::optional<uint32_t> n_ubatch;
  std::optional<int32_t> n_threads;
  std::optional<int32_t> n_threads_batch;
  std::optional<CacheType> cache_type_k;
  std::optional<CacheType> cache_type_v;
  std::optional<bool> use_mmap;
  std::optional<bool> use_mlock;
  std::optional<bool> offload_kqv;
  std::optional<uint32_t> seed;
  std::optional<int32_t> n_parallel;    // the engine's parallel slots (SPEC §10); unset = 1
  std::optional<bool> embeddings;       // serve /v1/embeddings (llama.cpp --embeddings)
  std::optional<Pooling> pooling;       // unset: the model's own (a generative model has none,
                                        // which /v1/embeddings refuses: use "mean" or "last")
  bool operator==(const LlamaConfig&) const = default;
};

// Settings for the command engine (any external loader). Exactly one of
// `preset` (a [engines.NAME] of the server's configuration file: the program
// comes from there, SPEC §9.1) and `argv` (the program itself: accepted from
// API clients only when the server allows it) is set.
struct CommandConfig {
  std::optional<std::string> preset;         // [engines.NAME] of the server's configuration
  std::vector<std::string> argv;             // empty with a preset; {model_path} {model_name} {port} substituted later
  std::optional<std::string> ready_pattern;  // RE2, matched against each output line
  std::optional<std::string> health_path;    // starts with '/', GET 127.0.0.1:{port}{path} == 200
  std::map<std::string, std::string> env;    // extra environment
  bool operator==(const CommandConfig&) const = default;
};

struct LoadConfig {
  Engine engine = Engine::kLlamaCpp;
  std::variant<LlamaConfig, CommandConfig> settings;
  std::optional<int64_t> load_timeout_s;  // valid for every engine
  // Serving keys (SPEC §10), valid for every engine:
  std::optional<int64_t> n_parallel;      // requests in the engine at once, [1, kMaxParallel]; default 1
  std::optional<bool> embeddings;         // the engine serves /v1/embeddings
  std::string normalized_json;            // the input object, compact (for MODELWARDEN_LOAD_CONFIG)

  const LlamaConfig* llama() const { return std::get_if<LlamaConfig>(&settings); }
  const CommandConfig* command() const { return std::get_if<CommandConfig>(&settings); }
};

// See the contract above. An empty or all-whitespace json_text is treated as {}.
Result<LoadConfig> ValidateLoadConfig(Engine engine, std::string_view json_text);
Result<LoadConfig> ValidateLoadConfig(std::string_view engine, std::string_view json_text);

// A device present on this machine, as the probe reports it (SPEC §15).
struct PresentDevice {
  std::string id;    // "CPU", "CUDA0", "Vulkan0"
  bool gpu = false;  // not a CPU device
};
// The placement keys against the devices present: every id of `devices`
// must be one of them, `main_gpu` and the shares of `tensor_split` must
// index a GPU device. An InvalidArgument naming the devices there otherwise.
Status CheckPlacement(const LlamaConfig& config, const std::vector<PresentDevice>& present);

// The keys accepted for an engine, sorted (for messages and UIs).
const std::vector<std::string>& KnownKeys(Engine engine);

}  // namespace mw::loadconfig
