// Model shapes for the fit tests (fit_estimate_test, fit_suggest_test).
#pragma once

#include "fit/fit_estimate.h"

namespace mw::fit {

// `layers` layers, embedding 64, 4 heads of 16 (KV heads 4: an f16 KV cache
// of 256 bytes per token and layer), vocab 1000.
inline ModelShape TestShape(int64_t layers, int64_t context_train, uint64_t tensor_bytes) {
  ModelShape s;
  s.layers = layers;
  s.embedding = 64;
  s.heads = 4;
  s.kv_heads = 4;
  s.key_length = 16;
  s.value_length = 16;
  s.vocab = 1000;
  s.context_train = context_train;
  s.tensor_bytes = tensor_bytes;
  return s;
}

}  // namespace mw::fit
