// fit/fit_suggest.h: what to change in a llama.cpp load_config after a failed
// load (SPEC §11, self-healing) and before a load that would not fit (SPEC
// §12, auto_fit). Pure functions over the model's shape, the load_config and
// the devices' free memory (fit_estimate.h); no I/O. Thread-safe.
//
// Contract:
//   SuggestFix(kind, shape, config, devices) -> Change (empty: nothing known helps)
//     kOutOfMemory: with a GPU holding layers (n_gpu_layers unset, < 0 or
//       > 0), the largest n_gpu_layers below the current that the estimate
//       says fits; otherwise (no GPU: never n_gpu_layers) the largest n_ctx
//       below the current one that fits, at most the training context. When
//       the estimate says the current settings fit (it was wrong), the lever
//       is halved instead (n_ctx at least 256). Nothing when n_ctx is at 256
//       and no GPU layer is left to move.
//     kFlashAttention: flash_attn "off" (and cache_type_v "f16" when the V
//       cache is quantized: llama.cpp needs flash attention for that), unless
//       flash attention is already off.
//     kQuantizedVCache (a quantized V cache without flash attention): the V
//       cache f16. Flash attention on would also do where the device supports
//       it, but the failure says it did not resolve to on here.
//   FitUnset(shape, config, devices, floor_ctx) -> Change: auto_fit. Lowers only
//     settings absent from `config`: n_gpu_layers (with a GPU) to the largest
//     that fits, then n_ctx to the largest in [floor_ctx, training context]
//     that fits. `fits` tells whether the result fits; `changed` lists what
//     was set (empty when the config fits as it is or nothing unset helps).
//   ApplyChange(config, change): the config with the change applied.
//   SuggestedCtx(shape, config, devices): the n_ctx a refusal offers (SPEC
//     §18): the largest that fits, never above the training context, and
//     stable while free memory moves a little: rounded down to 256 x 2^k or
//     256 x 3 x 2^k (256, 512, 768, 1024, 1536, 2048, 3072, ...), or the
//     training context itself (a multiple of 256) when that fits. nullopt
//     when not even 256 fits.
#pragma once

#include <cstdint>
#include <optional>

#include "fit/fit_estimate.h"
#include "loadconfig/loadconfig.h"

namespace mw::fit {

enum class FailureKind { kOutOfMemory, kFlashAttention, kQuantizedVCache, kOther };

struct Change {
  std::optional<int32_t> n_gpu_layers;
  std::optional<uint32_t> n_ctx;
  std::optional<loadconfig::FlashAttn> flash_attn;
  std::optional<loadconfig::CacheType> cache_type_v;
  bool fits = true;  // FitUnset: the estimate with the change fits

  bool empty() const { return !n_gpu_layers && !n_ctx && !flash_attn && !cache_type_v; }
};

Change SuggestFix(FailureKind kind, const ModelShape& shape, const loadconfig::LlamaConfig& config,
                  const std::vector<Device>& devices);
Change FitUnset(const ModelShape& shape, const loadconfig::LlamaConfig& config, const std::vector<Device>& devices,
                int64_t floor_ctx);
loadconfig::LlamaConfig ApplyChange(loadconfig::LlamaConfig config, const Change& change);
std::optional<int64_t> SuggestedCtx(const ModelShape& shape, const loadconfig::LlamaConfig& config,
                                    const std::vector<Device>& devices);

}  // namespace mw::fit
