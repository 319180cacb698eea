#include "fit/fit_suggest.h"

#include <algorithm>

namespace mw::fit {
namespace {

using loadconfig::CacheType;
using loadconfig::FlashAttn;
using loadconfig::LlamaConfig;

constexpr int64_t kCtxPad = 256;

bool HasGpu(const std::vector<Device>& devices) {
  return std::any_of(devices.begin(), devices.end(), [](const Device& d) { return d.gpu; });
}

// Layers the config puts on GPUs (unset or < 0: all).
int64_t GpuLayers(const ModelShape& shape, const LlamaConfig& c) {
  if (!c.n_gpu_layers || *c.n_gpu_layers < 0) return shape.layers;
  return std::min<int64_t>(*c.n_gpu_layers, shape.layers);
}

bool Fits(const ModelShape& shape, const LlamaConfig& c, const std::vector<Device>& devices) {
  return EstimateMemory(shape, c, devices).fits;
}

// The largest n_gpu_layers in [0, below) that fits, or nullopt.
std::optional<int32_t> LargestFittingLayers(const ModelShape& shape, LlamaConfig c, const std::vector<Device>& devices,
                                            int64_t below) {
  for (int64_t n = below - 1; n >= 0; --n) {  // layers are few (<= a few hundred)
    c.n_gpu_layers = static_cast<int32_t>(n);
    if (Fits(shape, c, devices)) return static_cast<int32_t>(n);
  }
  return std::nullopt;
}

// The largest n_ctx (multiple of 256) in [lo, hi] that fits, or nullopt.
std::optional<uint32_t> LargestFittingCtxIn(const ModelShape& shape, LlamaConfig c, const std::vector<Device>& devices,
                                            int64_t lo, int64_t hi) {
  std::optional<int64_t> best = LargestFittingCtx(shape, c, devices);
  if (!best) return std::nullopt;
  const int64_t n = std::min(*best, hi / kCtxPad * kCtxPad);
  if (n < lo || n <= 0) return std::nullopt;
  return static_cast<uint32_t>(n);
}

int64_t TrainCtx(const ModelShape& shape) { return shape.context_train > 0 ? shape.context_train : int64_t{1} << 24; }

Change OutOfMemory(const ModelShape& shape, const LlamaConfig& config, const std::vector<Device>& devices) {
  Change change;
  const bool gpu_layers = HasGpu(devices) && GpuLayers(shape, config) > 0;
  const int64_t ctx = EffectiveCtx(shape, config);
  if (Fits(shape, config, devices)) {
    // The estimate said it fits and the load ran out of memory anyway: halve
    // the lever rather than offer a value the estimate cannot vouch for.
    if (gpu_layers) {
      change.n_gpu_layers = static_cast<int32_t>(GpuLayers(shape, config) / 2);
    } else if (ctx > kCtxPad) {
      change.n_ctx = static_cast<uint32_t>(std::max(kCtxPad, ctx / 2 / kCtxPad * kCtxPad));
    }
    return change;
  }
  if (gpu_layers) {
    if (auto n = LargestFittingLayers(shape, config, devices, GpuLayers(shape, config))) {
      change.n_gpu_layers = *n;
      return change;
    }
  }
  if (auto n = LargestFittingCtxIn(shape, config, devices, kCtxPad, std::min(ctx - 1, TrainCtx(shape)))) {
    change.n_ctx = *n;
  }
  return change;
}

}  // namespace

LlamaConfig ApplyChange(LlamaConfig config, const Change& change) {
  if (change.n_gpu_layers) config.n_gpu_layers = change.n_gpu_layers;
  if (change.n_ctx) config.n_ctx = change.n_ctx;
  if (change.flash_attn) config.flash_attn = change.flash_attn;
  if (change.cache_type_v) config.cache_type_v = change.cache_type_v;
  return config;
}

Change SuggestFix(FailureKind kind, const ModelShape& shape, const LlamaConfig& config,
                  const std::vector<Device>& devices) {
  Change change;
  switch (kind) {
    case FailureKind::kOutOfMemory:
      return OutOfMemory(shape, config, devices);
    case FailureKind::kFlashAttention:
      if (config.flash_attn == FlashAttn::kOff) return change;
      change.flash_attn = FlashAttn::kOff;
      if (config.cache_type_v && loadconfig::IsQuantized(*config.cache_type_v)) change.cache_type_v = CacheType::kF16;
      return change;
    case FailureKind::kQuantizedVCache:
      if (config.cache_type_v && loadconfig::IsQuantized(*config.cache_type_v)) change.cache_type_v = CacheType::kF16;
      return change;
    case FailureKind::kOther:
      return change;
  }
  return change;
}

Change FitUnset(const ModelShape& shape, const LlamaConfig& config, const std::vector<Device>& devices,
                int64_t floor_ctx) {
  Change change;
  LlamaConfig c = config;
  // n_ctx left unset means the training context (llama-server's own
  // default), lowered as far as floor_ctx to fit; a file without a training
  // context keeps the worker's default.
  const bool ctx_free = !config.n_ctx && shape.context_train > 0;
  if (ctx_free) c.n_ctx = static_cast<uint32_t>(std::min(TrainCtx(shape), int64_t{1} << 24));
  if (Fits(shape, c, devices)) {
    if (ctx_free) change.n_ctx = c.n_ctx;  // unset: the training context, which fits
    return change;
  }
  if (!config.n_gpu_layers && HasGpu(devices) && shape.layers > 0) {
    // Keep the smallest context auto_fit may choose while moving layers, so
    // that layers are only given up when even that context does not fit.
    LlamaConfig at_floor = c;
    if (ctx_free) at_floor.n_ctx = static_cast<uint32_t>(std::max<int64_t>(floor_ctx, kCtxPad));
    if (auto n = LargestFittingLayers(shape, c, devices, shape.layers)) {
      change.n_gpu_layers = *n;  // fits with the full context
    } else if (auto m = LargestFittingLayers(shape, at_floor, devices, shape.layers + 1)) {
      change.n_gpu_layers = *m;
    }
    if (change.n_gpu_layers) c.n_gpu_layers = change.n_gpu_layers;
  }
  if (ctx_free) {
    if (auto n = LargestFittingCtxIn(shape, c, devices, std::max<int64_t>(floor_ctx, kCtxPad), *c.n_ctx)) {
      c.n_ctx = *n;
    } else {
      c.n_ctx = static_cast<uint32_t>(std::max<int64_t>(floor_ctx, kCtxPad));  // the floor: the refusal says why
    }
    change.n_ctx = c.n_ctx;
  }
  change.fits = Fits(shape, c, devices);
  return change;
}

std::optional<int64_t> SuggestedCtx(const ModelShape& shape, const loadconfig::LlamaConfig& config,
                                    const std::vector<Device>& devices) {
  std::optional<int64_t> largest = LargestFittingCtx(shape, config, devices);
  if (!largest) return std::nullopt;
  const int64_t train = std::max(kCtxPad, TrainCtx(shape) / kCtxPad * kCtxPad);
  if (*largest >= train) return train;
  int64_t step = kCtxPad;  // the largest 256 x 2^k not above it
  while (step * 2 <= *largest) step *= 2;
  return step / 2 * 3 <= *largest && step >= 2 * kCtxPad ? step / 2 * 3 : step;
}

}  // namespace mw::fit
