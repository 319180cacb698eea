#include "fit/fit_estimate.h"

#include <algorithm>

namespace mw::fit {
namespace {

using loadconfig::CacheType;

constexpr int64_t kDefaultCtx = 4096;  // the worker's default when n_ctx is unset
constexpr int64_t kCtxPad = 256;       // llama_context pads n_ctx to this
constexpr int64_t kMiB = 1024 * 1024;

int64_t PadCtx(int64_t n) { return (n + kCtxPad - 1) / kCtxPad * kCtxPad; }

std::string MiB(int64_t bytes) { return std::to_string((bytes + kMiB - 1) / kMiB) + " MiB"; }

// Fraction of the layers on each GPU (index into `devices`), summing to the
// offloaded share.
std::vector<double> GpuShares(const ModelShape& shape, const loadconfig::LlamaConfig& c,
                              const std::vector<Device>& devices) {
  std::vector<double> share(devices.size(), 0.0);
  std::vector<size_t> gpus;
  for (size_t i = 0; i < devices.size(); ++i) {
    // `devices` (llama.cpp's --device, SPEC §15) narrows the GPUs to those it names.
    const bool named = c.devices.empty() ||
                       std::find(c.devices.begin(), c.devices.end(), devices[i].name) != c.devices.end();
    if (devices[i].gpu && named) gpus.push_back(i);
  }
  if (gpus.empty() || shape.layers <= 0) return share;
  const int64_t ngl = c.n_gpu_layers && *c.n_gpu_layers >= 0 ? std::min<int64_t>(*c.n_gpu_layers, shape.layers)
                                                            : shape.layers;
  const double offloaded = static_cast<double>(ngl) / static_cast<double>(shape.layers);
  if (offloaded <= 0) return share;
  std::vector<double> weight(gpus.size(), 0.0);
  if (c.split_mode && *c.split_mode == loadconfig::SplitMode::kNone) {
    const size_t main = c.main_gpu && *c.main_gpu >= 0 ? static_cast<size_t>(*c.main_gpu) : 0;
    weight[std::min(main, gpus.size() - 1)] = 1.0;
  } else if (!c.tensor_split.empty()) {
    for (size_t g = 0; g < gpus.size() && g < c.tensor_split.size(); ++g) weight[g] = std::max(0.0f, c.tensor_split[g]);
  } else {
    for (size_t g = 0; g < gpus.size(); ++g) weight[g] = static_cast<double>(std::max<int64_t>(0, devices[gpus[g]].free_bytes));
  }
  double sum = 0;
  for (double w : weight) sum += w;
  if (sum <= 0) {
    weight.assign(gpus.size(), 1.0);
    sum = static_cast<double>(gpus.size());
  }
  for (size_t g = 0; g < gpus.size(); ++g) share[gpus[g]] = offloaded * weight[g] / sum;
  return share;
}

}  // namespace

int64_t CacheRowBytes(CacheType type, int64_t n) {
  // {bytes per block, elements per block} as ggml's type traits give them.
  int64_t block_bytes = 2, block = 1;
  switch (type) {
    case CacheType::kF32: block_bytes = 4; break;
    case CacheType::kF16:
    case CacheType::kBF16: block_bytes = 2; break;
    case CacheType::kQ8_0: block_bytes = 34, block = 32; break;
    case CacheType::kQ4_0: block_bytes = 18, block = 32; break;
    case CacheType::kQ4_1: block_bytes = 20, block = 32; break;
    case CacheType::kIQ4_NL: block_bytes = 18, block = 32; break;
    case CacheType::kQ5_0: block_bytes = 22, block = 32; break;
    case CacheType::kQ5_1: block_bytes = 24, block = 32; break;
  }
  return block_bytes * ((n + block - 1) / block);
}

int64_t EffectiveCtx(const ModelShape& shape, const loadconfig::LlamaConfig& c) {
  int64_t n = 0;
  if (c.n_ctx && *c.n_ctx > 0) {
    n = *c.n_ctx;
  } else if (c.n_ctx) {
    n = shape.context_train > 0 ? shape.context_train : kDefaultCtx;
  } else {
    n = shape.context_train > 0 ? std::min(kDefaultCtx, shape.context_train) : kDefaultCtx;
  }
  return PadCtx(n);
}

Estimate EstimateMemory(const ModelShape& shape, const loadconfig::LlamaConfig& c,
                        const std::vector<Device>& devices) {
  Estimate e;
  e.n_ctx = EffectiveCtx(shape, c);
  const int64_t n_embd_k = shape.key_length * shape.kv_heads;
  const int64_t n_embd_v = shape.value_length * shape.kv_heads;
  e.weights = static_cast<int64_t>(shape.tensor_bytes);
  e.kv_cache = e.n_ctx * shape.layers *
               (CacheRowBytes(c.cache_type_k.value_or(CacheType::kF16), n_embd_k) +
                CacheRowBytes(c.cache_type_v.value_or(CacheType::kF16), n_embd_v));
  const int64_t n_batch = std::min<int64_t>(c.n_batch.value_or(2048), e.n_ctx);
  const int64_t n_ubatch = std::min<int64_t>(c.n_ubatch.value_or(512), n_batch);
  // ggml's allocator reuses the buffer: the peak is the larger of the logits
  // and, without flash attention, the f32 scores of every head plus the mask.
  const bool flash_off = c.flash_attn && *c.flash_attn == loadconfig::FlashAttn::kOff;
  const int64_t widest = flash_off ? std::max(shape.vocab, (shape.heads + 1) * e.n_ctx) : shape.vocab;
  e.compute = 4 * n_ubatch * (widest + 4 * shape.embedding);
  e.total = e.weights + e.kv_cache + e.compute;

  const std::vector<double> share = GpuShares(shape, c, devices);
  const bool kv_offloaded = c.offload_kqv.value_or(true);
  int64_t gpu_weights = 0, gpu_kv = 0;
  std::optional<size_t> compute_on, host;
  for (size_t i = 0; i < devices.size(); ++i) {
    DeviceShare d{devices[i].name, 0, devices[i].free_bytes, true};
    if (devices[i].gpu && share[i] > 0) {
      d.bytes = static_cast<int64_t>(static_cast<double>(e.weights) * share[i]);
      gpu_weights += d.bytes;
      if (kv_offloaded) {
        const int64_t kv = static_cast<int64_t>(static_cast<double>(e.kv_cache) * share[i]);
        d.bytes += kv;
        gpu_kv += kv;
      }
      if (!compute_on) compute_on = i;
    }
    if (!devices[i].gpu && !host) host = i;
    e.per_device.push_back(std::move(d));
  }
  if (host) e.per_device[*host].bytes += (e.weights - gpu_weights) + (e.kv_cache - gpu_kv);
  if (!compute_on) compute_on = host;
  if (compute_on) e.per_device[*compute_on].bytes += e.compute;

  for (size_t i = 0; i < devices.size(); ++i) {
    DeviceShare& d = e.per_device[i];
    d.fits = d.bytes + devices[i].margin_bytes <= devices[i].free_bytes;
    if (!d.fits && e.fits) {
      e.fits = false;
      e.reason = "needs " + MiB(d.bytes) + " on " + d.name + " (weights, KV cache for n_ctx " +
                 std::to_string(e.n_ctx) + ", compute) but " + MiB(devices[i].free_bytes) + " is free and " +
                 MiB(devices[i].margin_bytes) + " is kept as margin";
    }
  }
  return e;
}

std::optional<int64_t> LargestFittingCtx(const ModelShape& shape, const loadconfig::LlamaConfig& config,
                                         const std::vector<Device>& devices) {
  loadconfig::LlamaConfig c = config;
  auto fits = [&](int64_t n) {
    c.n_ctx = static_cast<uint32_t>(n);
    return EstimateMemory(shape, c, devices).fits;
  };
  if (!fits(kCtxPad)) return std::nullopt;
  int64_t lo = 1, hi = (int64_t{1} << 24) / kCtxPad;  // in units of kCtxPad; the largest n_ctx load_config accepts
  if (fits(hi * kCtxPad)) return hi * kCtxPad;
  while (hi - lo > 1) {  // fits(lo) && !fits(hi)
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid * kCtxPad) ? lo : hi) = mid;
  }
  return lo * kCtxPad;
}

}  // namespace mw::fit
