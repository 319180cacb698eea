// ggml backends and devices, seen from inside the worker.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "protocol/protocol.h"

namespace mw::worker {

// llama_backend_init + ggml_backend_load_all_from_path(dir), once per process.
// dir = env MODELWARDEN_GGML_BACKEND_DIR, else <exe dir>/../lib when it holds
// libggml-base.so (the Debian package's bundled libraries), else the
// compile-time MW_GGML_BACKEND_DIR (the llama.cpp lib directory). Not thread-safe; call
// from main before any other thread uses ggml.
void InitBackendsOnce();

// Every device the loaded backends expose (META wrappers skipped), with the
// free/total memory the backend reports now.
std::vector<protocol::DeviceInfo> ProbeDevices();

// Free memory per ggml device (0 for CPU devices), indexed like ggml_backend_dev_get.
std::vector<size_t> FreeMemoryPerDevice();

// What a load took, best effort: device memory that disappeared since
// `free_before` is charged to that device; the CPU gets `host_estimate`
// (weights + KV cache) minus what went to the devices. CPU first.
std::vector<protocol::DeviceUsage> MemoryUsedSince(const std::vector<size_t>& free_before, uint64_t host_estimate);

}  // namespace mw::worker
