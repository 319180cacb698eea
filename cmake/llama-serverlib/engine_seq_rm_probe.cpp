// Compiled into libmw-llama-server.so only (cmake/llama-serverlib/CMakeLists.txt),
// beside llama.cpp's tools/server, whose server-context.cpp is compiled with
// -Dcommon_context_can_seq_rm=mw_common_context_can_seq_rm.
//
// Why: llama.cpp's server asks, while it loads, whether its context can drop
// part of a sequence, and common_context_can_seq_rm answers by DECODING two
// tokens through the whole model, --no-warmup or not. That is a second
// forward pass at load time: the cold request then pays it before its own
// first decode (SPEC §16: one decode per load, not two; ~60 ms of a ~1 GB
// model's ~550 ms cold first token on 2 cores), and verify = "load" was not
// "no forward pass" at all.
//
// For a model whose only memory is an attention KV cache (not recurrent, not
// hybrid, no encoder, not diffusion, no recurrent-state rollback) the answer
// is known without a decode: llama_kv_cache::seq_rm (and the iSWA pair's)
// removes any range and returns true, so llama.cpp's probe answers PART once
// its decode succeeds. A decode that fails is the model failing, which the
// worker's verification decode (or the first request's) judges. Every other
// model gets llama.cpp's own probe, decode included.
//
// Only when modelwarden-worker asks (MW_ENGINE_NO_PROBE_DECODE=1, set by
// src/worker/engine.cpp): the same library also builds mw-llama-server, the
// llama.cpp server the benches compare with, which must stay upstream's.
#include <cstdlib>
#include <cstring>

#include "common.h"  // llama.cpp common/: common_context_can_seq_rm, its answers
#include "log.h"

common_context_seq_rm_type mw_common_context_can_seq_rm(llama_context* ctx) {
  const char* asked = std::getenv("MW_ENGINE_NO_PROBE_DECODE");
  if (asked == nullptr || std::strcmp(asked, "1") != 0) return common_context_can_seq_rm(ctx);
  const llama_model* model = llama_get_model(ctx);
  const bool attention_kv_cache_only =
      llama_get_memory(ctx) != nullptr && !llama_model_is_recurrent(model) && !llama_model_is_hybrid(model) &&
      !llama_model_is_diffusion(model) && !llama_model_has_encoder(model) && llama_model_has_decoder(model) &&
      llama_n_rs_seq(ctx) == 0;
  if (!attention_kv_cache_only) return common_context_can_seq_rm(ctx);
  LOG_INF("modelwarden: an attention KV cache drops any part of a sequence: no load-time probe decode\n");
  return COMMON_CONTEXT_SEQ_RM_TYPE_PART;
}
