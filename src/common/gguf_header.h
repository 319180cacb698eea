// common/gguf_header.h: the GGUF container's header and tensor index, read
// without llama.cpp (SPEC §18): enough to tell a GGUF from any other file at
// registration, and to name one version of a model file in the verdict's
// fingerprint. No tensor data is read. Pure over the file; thread-safe;
// never throws.
//
// Layout read (GGUF v2/v3, little-endian): "GGUF", u32 version, u64 tensor
// count, u64 key-value count, the key-value pairs (u64-length strings, u32
// type, value; arrays of any type), then per tensor its name, u32 n_dims,
// n_dims u64 dimensions, u32 type and u64 offset.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace mw {

struct GgufHeader {
  uint32_t version = 0;
  uint64_t tensor_count = 0;
  uint64_t kv_count = 0;
  uint64_t index_bytes = 0;   // bytes from the start of the file to the end of the tensor index
  std::string index_hash;     // 16 hex digits: FNV-1a 64 of those bytes
};

// OK: the header and tensor index of the GGUF file at `path`.
// kNotFound: no such file, or not a regular file. kDataLoss: not a GGUF file
// (the message says why: "does not start with the GGUF magic", "GGUF version
// 9 is not supported", "ends inside its header"); messages name the path.
[[nodiscard]] Result<GgufHeader> ReadGgufHeader(const std::string& path);

}  // namespace mw
