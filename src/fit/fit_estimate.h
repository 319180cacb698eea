// fit/fit_estimate.h: how much memory a llama.cpp load will need, before it is
// tried (SPEC §12). Pure functions of the model's shape (GGUF metadata), the
// load_config and the devices' free memory; no I/O, no llama.h. Thread-safe.
//
// Contract:
//   EffectiveCtx(shape, config): the context llama.cpp will allocate, as the
//     worker and llama.cpp choose it: n_ctx when set and > 0; the training
//     context for n_ctx 0; unset: min(4096, training context) (4096 when the
//     file has none); then padded up to a multiple of 256 (llama_context).
//   Estimate(shape, config, devices): weights, KV cache and compute buffer,
//     in total and per device, and whether every device has room:
//       weights  = tensor bytes; the share on GPUs is
//                  min(n_gpu_layers, layers) / layers (n_gpu_layers unset or
//                  < 0 = all; no GPU device = none), split between GPUs by
//                  tensor_split, else main_gpu alone for split_mode none,
//                  else in proportion to their free memory; only the GPUs
//                  `devices` names when it is set (Device::name is the id).
//       kv_cache = n_ctx * layers * (row(cache_type_k, key_length * kv_heads)
//                  + row(cache_type_v, value_length * kv_heads)), row() being
//                  ggml's row size (f16 2 bytes, q8_0 34 per 32, q4_0 18 per
//                  32, ...); on the devices holding the layers
//                  (offload_kqv false: all on the CPU).
//       compute  = 4 * n_ubatch * (W + 4 * embedding) (f32, one micro-batch),
//                  W = vocab (the logits), or with flash_attn "off" the
//                  larger of vocab and (heads + 1) * n_ctx (the scores of
//                  every head and the mask: ggml's allocator reuses memory,
//                  so the peak is the larger, not the sum); on the first GPU
//                  holding layers, else the CPU. n_ubatch =
//                  min(n_ubatch (512), n_batch (2048), n_ctx).
//     A device fits when bytes + margin_bytes <= free_bytes.
//   LargestFittingCtx(shape, config, devices): the largest n_ctx (a multiple
//     of 256, at least 256) with which Estimate fits, or nullopt if none does.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "loadconfig/loadconfig.h"

namespace mw::fit {

struct ModelShape {
  int64_t layers = 0;
  int64_t embedding = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t key_length = 0;
  int64_t value_length = 0;
  int64_t vocab = 0;
  int64_t context_train = 0;  // 0 = unknown
  uint64_t tensor_bytes = 0;
};

struct Device {
  std::string name;
  bool gpu = false;
  int64_t free_bytes = 0;
  int64_t margin_bytes = 0;  // kept free (server option memory_margin_mib)
};

struct DeviceShare {
  std::string name;
  int64_t bytes = 0;
  int64_t free_bytes = 0;
  bool fits = true;
};

struct Estimate {
  int64_t n_ctx = 0;  // the context the estimate is for
  int64_t weights = 0;
  int64_t kv_cache = 0;
  int64_t compute = 0;
  int64_t total = 0;
  std::vector<DeviceShare> per_device;  // same order as the devices given
  bool fits = true;
  std::string reason;  // empty when it fits: which device, needed, free, margin
};

// Bytes of one row of `n` elements of a KV cache type (ggml_row_size).
int64_t CacheRowBytes(loadconfig::CacheType type, int64_t n);
int64_t EffectiveCtx(const ModelShape& shape, const loadconfig::LlamaConfig& config);
Estimate EstimateMemory(const ModelShape& shape, const loadconfig::LlamaConfig& config,
                        const std::vector<Device>& devices);
std::optional<int64_t> LargestFittingCtx(const ModelShape& shape, const loadconfig::LlamaConfig& config,
                                         const std::vector<Device>& devices);

}  // namespace mw::fit
