// GGUF metadata without loading tensor data (gguf.h only).
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "protocol/protocol.h"

namespace mw::worker {

// Reads the header of the GGUF file at `path`.
// OK: architecture, general.name, parameter count (sum of the element counts
// of every tensor), file type and its readable name, <arch>.context_length,
// file size and tensor count.
// kNotFound: no such file / unreadable. kDataLoss: not a GGUF file, or a
// truncated/corrupt header, or tensor data that would lie past the end of
// the file. Never crashes on a corrupt file (gguf's own checks plus ours).
Result<protocol::MetadataMessage> InspectGguf(const std::string& path);

// What the engine's memory report needs from the header (best effort: 0
// where a key is missing).
struct ModelShape {
  uint64_t weight_bytes = 0;   // sum of the tensor sizes
  uint64_t n_params = 0;
  int64_t n_ctx_train = 0;
  int64_t n_layer = 0;
  int64_t n_embd_k = 0;        // K width per token and layer, all KV heads together
  int64_t n_embd_v = 0;
  int64_t pooling_type = 0;    // <arch>.pooling_type (llama.cpp's enum): 0 none (or absent)
};
// Same errors as InspectGguf.
Result<ModelShape> ReadModelShape(const std::string& path);

// "F16", "Q4_K_M", ... for a llama_ftype value; "" for an unknown one.
std::string FileTypeName(int64_t file_type);

}  // namespace mw::worker
