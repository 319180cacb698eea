// The llama.cpp engine's load_config keys, and the Hugging Face style keys of
// the original design mapped onto them (SPEC §5).
#include <algorithm>
#include <cmath>
#include <limits>

#include "loadconfig/json_reader.h"

namespace mw::loadconfig::internal {

using nlohmann::json;

const std::vector<std::string> kLlamaKeys = {
    "attn_implementation", "cache_type_k", "cache_type_v", "device_map", "devices", "embeddings", "flash_attn",
    "main_gpu", "n_batch", "n_ctx", "n_gpu_layers", "n_parallel", "n_threads", "n_threads_batch",
    "n_ubatch", "offload_kqv", "pooling", "seed", "split_mode", "tensor_split", "torch_dtype",
    "use_mlock", "use_mmap",
};

namespace {

constexpr int64_t kMaxCtx = int64_t{1} << 24;   // 16M tokens: far past any model
constexpr int64_t kMaxThreads = 1024;
constexpr int64_t kMaxGpus = 256;
constexpr int64_t kMaxLayers = 100000;
constexpr size_t kMaxTensorSplit = 128;
constexpr int64_t kMaxParallel = 256;

Result<CacheType> ReadCacheType(std::string_view key, const json& v) {
  return ReadChoice<CacheType>(key, v,
                               {{"f32", CacheType::kF32}, {"f16", CacheType::kF16}, {"bf16", CacheType::kBF16},
                                {"q8_0", CacheType::kQ8_0}, {"q4_0", CacheType::kQ4_0}, {"q4_1", CacheType::kQ4_1},
                                {"iq4_nl", CacheType::kIQ4_NL}, {"q5_0", CacheType::kQ5_0}, {"q5_1", CacheType::kQ5_1}});
}

Result<FlashAttn> ReadFlashAttn(const json& v) {
  if (v.is_boolean()) return v.get<bool>() ? FlashAttn::kOn : FlashAttn::kOff;
  Result<FlashAttn> r = ReadChoice<FlashAttn>("flash_attn", v,
                                              {{"auto", FlashAttn::kAuto}, {"on", FlashAttn::kOn}, {"off", FlashAttn::kOff}});
  if (!r.ok()) return KeyError("flash_attn", "true, false, \"auto\", \"on\" or \"off\"", v);
  return r;
}

Result<int32_t> ReadGpuLayers(const json& v) {
  if (v.is_string() && (v.get_ref<const std::string&>() == "all" || v.get_ref<const std::string&>() == "auto")) {
    return -1;
  }
  if (!v.is_number_integer()) return KeyError("n_gpu_layers", "an integer >= -1 (-1 = all) or \"all\"", v);
  ASSIGN_OR_RETURN(int64_t n, ReadInt("n_gpu_layers", v, -1, kMaxLayers));
  return static_cast<int32_t>(n);
}

Result<std::vector<float>> ReadTensorSplit(const json& v) {
  if (!v.is_array() || v.empty() || v.size() > kMaxTensorSplit) {
    return KeyError("tensor_split", "a non-empty list of at most 128 non-negative numbers", v);
  }
  std::vector<float> out;
  double sum = 0;
  for (const json& x : v) {
    if (!x.is_number() || !std::isfinite(x.get<double>()) || x.get<double>() < 0 ||
        x.get<double>() > std::numeric_limits<float>::max()) {
      return KeyError("tensor_split", "a list of non-negative numbers", v);
    }
    sum += x.get<double>();
    out.push_back(static_cast<float>(x.get<double>()));
  }
  if (sum <= 0) return KeyError("tensor_split", "a list with at least one positive share", v);
  return out;
}

// "devices": a list of device ids as the engine names them (SPEC §15).
Result<std::vector<std::string>> ReadDevices(const json& v) {
  constexpr const char* kWhat = "a non-empty list of device ids such as \"Vulkan0\" or \"CUDA0\"";
  if (!v.is_array() || v.empty() || v.size() > static_cast<size_t>(kMaxGpus)) return KeyError("devices", kWhat, v);
  std::vector<std::string> out;
  for (const json& x : v) {
    if (!x.is_string()) return KeyError("devices", kWhat, v);
    const std::string& id = x.get_ref<const std::string&>();
    const bool ok = !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char ch) {
      return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
             ch == '-' || ch == '.';
    });
    if (!ok) return KeyError("devices", kWhat, v);
    out.push_back(id);
  }
  return out;
}

Status Conflict(std::string_view hf_key, const json& hf_value, std::string_view key, std::string_view detail) {
  return InvalidArgumentError("load_config keys '" + std::string(hf_key) + "' (" + hf_value.dump() + ") and '" +
                              std::string(key) + "' disagree: " + std::string(detail) +
                              "; remove one of them");
}

// attn_implementation -> flash_attn. `explicit_fa` is flash_attn as given.
Status ApplyAttnImplementation(const json& v, LlamaConfig& c) {
  ASSIGN_OR_RETURN(FlashAttn mapped,
                   ReadChoice<FlashAttn>("attn_implementation", v,
                                         {{"eager", FlashAttn::kOff},
                                          {"flash_attention_2", FlashAttn::kOn},
                                          {"sdpa", FlashAttn::kAuto}}));
  if (c.flash_attn && *c.flash_attn != mapped) {
    return Conflict("attn_implementation", v, "flash_attn",
                    "it means flash_attn \"" + std::string(FlashAttnName(mapped)) + "\", flash_attn is \"" +
                        std::string(FlashAttnName(*c.flash_attn)) + "\"");
  }
  c.flash_attn = mapped;
  return Status::Ok();
}

// torch_dtype -> cache_type_k and cache_type_v ("auto" leaves them alone).
Status ApplyTorchDtype(const json& v, LlamaConfig& c) {
  if (v.is_string() && v.get_ref<const std::string&>() == "auto") return Status::Ok();
  ASSIGN_OR_RETURN(CacheType mapped,
                   ReadChoice<CacheType>("torch_dtype", v,
                                         {{"float16", CacheType::kF16}, {"bfloat16", CacheType::kBF16},
                                          {"float32", CacheType::kF32},
                                          {"auto", CacheType::kF16}}));  // "auto" only named in the message
  for (auto [key, field] : {std::pair{"cache_type_k", &c.cache_type_k}, std::pair{"cache_type_v", &c.cache_type_v}}) {
    if (*field && **field != mapped) {
      return Conflict("torch_dtype", v, key,
                      "it means KV cache type " + std::string(CacheTypeName(mapped)) + ", " + key + " is " +
                          std::string(CacheTypeName(**field)));
    }
    *field = mapped;
  }
  return Status::Ok();
}

// device_map: "auto" (and accelerate's "balanced"/"sequential") -> all layers
// that fit; "cpu" -> none; "cuda:N" / "cuda" / N -> everything on GPU N.
Status ApplyDeviceMap(const json& v, LlamaConfig& c) {
  std::optional<int32_t> gpu;
  if (v.is_number_integer()) {
    ASSIGN_OR_RETURN(int64_t n, ReadInt("device_map", v, 0, kMaxGpus - 1));
    gpu = static_cast<int32_t>(n);
  } else if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (s == "auto" || s == "balanced" || s == "sequential") {
      // An explicit n_gpu_layers narrows "as many as fit"; it does not conflict.
      if (!c.n_gpu_layers) c.n_gpu_layers = -1;
      return Status::Ok();
    }
    if (s == "cpu") {
      if (c.n_gpu_layers && *c.n_gpu_layers != 0) {
        return Conflict("device_map", v, "n_gpu_layers", "\"cpu\" means no GPU layers");
      }
      c.n_gpu_layers = 0;
      return Status::Ok();
    }
    if (s == "cuda") {
      gpu = 0;
    } else if (s.size() > 5 && s.size() <= 8 && s.compare(0, 5, "cuda:") == 0 &&
               s.find_first_not_of("0123456789", 5) == std::string::npos) {
      gpu = static_cast<int32_t>(std::stoi(s.substr(5)));
    }
  }
  if (!gpu || *gpu >= kMaxGpus) {
    return KeyError("device_map", "\"auto\", \"cpu\", \"cuda\", \"cuda:N\" or a GPU index N", v);
  }
  if (c.main_gpu && *c.main_gpu != *gpu) {
    return Conflict("device_map", v, "main_gpu", "they name different GPUs");
  }
  if (c.split_mode && *c.split_mode != SplitMode::kNone) {
    return Conflict("device_map", v, "split_mode", "one GPU means split_mode \"none\"");
  }
  if (c.n_gpu_layers && *c.n_gpu_layers == 0) {
    return Conflict("device_map", v, "n_gpu_layers", "a GPU device map with no GPU layers");
  }
  c.main_gpu = *gpu;
  c.split_mode = SplitMode::kNone;
  if (!c.n_gpu_layers) c.n_gpu_layers = -1;
  return Status::Ok();
}

}  // namespace

Result<LlamaConfig> ParseLlamaConfig(const json& o) {
  LlamaConfig c;
  // llama.cpp's own keys first, so the HF keys can be checked against them.
  for (const auto& [key, v] : o.items()) {
    if (key == "n_gpu_layers") {
      ASSIGN_OR_RETURN(c.n_gpu_layers, ReadGpuLayers(v));
    } else if (key == "devices") {
      ASSIGN_OR_RETURN(c.devices, ReadDevices(v));
    } else if (key == "main_gpu") {
      ASSIGN_OR_RETURN(int64_t n, ReadInt(key, v, 0, kMaxGpus - 1));
      c.main_gpu = static_cast<int32_t>(n);
    } else if (key == "split_mode") {
      ASSIGN_OR_RETURN(c.split_mode, ReadChoice<SplitMode>(key, v,
                                                           {{"none", SplitMode::kNone}, {"layer", SplitMode::kLayer},
                                                            {"row", SplitMode::kRow}, {"tensor", SplitMode::kTensor}}));
    } else if (key == "tensor_split") {
      ASSIGN_OR_RETURN(c.tensor_split, ReadTensorSplit(v));
    } else if (key == "flash_attn") {
      ASSIGN_OR_RETURN(c.flash_attn, ReadFlashAttn(v));
    } else if (key == "n_ctx") {
      ASSIGN_OR_RETURN(int64_t n, ReadInt(key, v, 0, kMaxCtx));
      c.n_ctx = static_cast<uint32_t>(n);
    } else if (key == "n_batch" || key == "n_ubatch") {
      ASSIGN_OR_RETURN(int64_t n, ReadInt(key, v, 1, kMaxCtx));
      (key == "n_batch" ? c.n_batch : c.n_ubatch) = static_cast<uint32_t>(n);
    } else if (key == "n_threads" || key == "n_threads_batch") {
      ASSIGN_OR_RETURN(int64_t n, ReadInt(key, v, 1, kMaxThreads));
      (key == "n_threads" ? c.n_threads : c.n_threads_batch) = static_cast<int32_t>(n);
    } else if (key == "cache_type_k" || key == "cache_type_v") {
      ASSIGN_OR_RETURN(CacheType t, ReadCacheType(key, v));
      (key == "cache_type_k" ? c.cache_type_k : c.cache_type_v) = t;
    } else if (key == "use_mmap" || key == "use_mlock" || key == "offload_kqv" || key == "embeddings") {
      ASSIGN_OR_RETURN(bool b, ReadBool(key, v));
      (key == "use_mmap" ? c.use_mmap : key == "use_mlock" ? c.use_mlock : key == "offload_kqv" ? c.offload_kqv : c.embeddings) = b;
    } else if (key == "pooling") {
      ASSIGN_OR_RETURN(c.pooling, ReadChoice<Pooling>(key, v,
                                                      {{"none", Pooling::kNone}, {"mean", Pooling::kMean},
                                                       {"cls", Pooling::kCls}, {"last", Pooling::kLast},
                                                       {"rank", Pooling::kRank}}));
    } else if (key == "n_parallel") {
      ASSIGN_OR_RETURN(int64_t n, ReadInt(key, v, 1, kMaxParallel));
      c.n_parallel = static_cast<int32_t>(n);
    } else if (key == "seed") {
      ASSIGN_OR_RETURN(int64_t n, ReadInt(key, v, 0, std::numeric_limits<uint32_t>::max()));
      c.seed = static_cast<uint32_t>(n);
    }
  }
  if (auto it = o.find("attn_implementation"); it != o.end()) RETURN_IF_ERROR(ApplyAttnImplementation(*it, c));
  if (auto it = o.find("torch_dtype"); it != o.end()) RETURN_IF_ERROR(ApplyTorchDtype(*it, c));
  if (auto it = o.find("device_map"); it != o.end()) RETURN_IF_ERROR(ApplyDeviceMap(*it, c));

  if (c.n_batch && c.n_ubatch && *c.n_ubatch > *c.n_batch) {
    return InvalidArgumentError("load_config key 'n_ubatch' (" + std::to_string(*c.n_ubatch) +
                                ") must not exceed 'n_batch' (" + std::to_string(*c.n_batch) + ")");
  }
  if (c.cache_type_v && IsQuantized(*c.cache_type_v) && c.flash_attn == FlashAttn::kOff) {
    return InvalidArgumentError("load_config: a quantized V cache (cache_type_v \"" +
                                std::string(CacheTypeName(*c.cache_type_v)) +
                                "\") needs flash attention, but flash attention is off");
  }
  return c;
}

}  // namespace mw::loadconfig::internal
