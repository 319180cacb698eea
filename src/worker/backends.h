// ggml backends and devices, seen from inside the worker.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "protocol/protocol.h"

namespace mw::worker {

// llama_backend_init + ggml_backend_load_all_from_path(dir), once per process.
// dir = env MODELWARDEN_GGML_BACKEND_DIR, else <exe dir>/../lib when it holds
// libggml-base.so (the Debian package's bundled libraries), else the
// compile-time MW_GGML_BACKEND_DIR (the llama.cpp lib directory). Then the
// GPU backend plugins (SPEC §15) ggml did not find there, from env
// MODELWARDEN_GGML_GPU_DIR, else the package's lib/, else the compile-time
// MW_GGML_GPU_BACKEND_DIR (scripts/bootstrap --print-gpu-dir); each found is
// diagnosed for ProbeBackends. Not thread-safe; call from main before any
// other thread uses ggml.
void InitBackendsOnce();

// The GPU backend libraries found and what became of
// each (loaded / skipped / failed, with the reason). Empty before InitBackendsOnce.
std::vector<protocol::BackendInfo> ProbeBackends();

// Every device the loaded backends expose (META wrappers skipped), with the
// free/total memory the backend reports now.
std::vector<protocol::DeviceInfo> ProbeDevices();

// True when a loaded backend exposes a device that is not the CPU.
bool HasGpuDevice();

// Free memory per ggml device (0 for CPU devices), indexed like ggml_backend_dev_get.
std::vector<size_t> FreeMemoryPerDevice();

// What a load took, best effort: device memory that disappeared since
// `free_before` is charged to that device; the CPU gets `host_estimate`
// (weights + KV cache) minus what went to the devices. CPU first.
std::vector<protocol::DeviceUsage> MemoryUsedSince(const std::vector<size_t>& free_before, uint64_t host_estimate);

// How many of a model's layers llama.cpp puts on GPU devices, as its
// "offloaded X/Y layers to GPU" counts them (Y = n_layer + 1, the output
// layer included): none without a GPU device among `used` (the load's
// memory per device), else n_gpu_layers (all when unset or negative,
// llama.cpp's default) capped at Y. Sets *n_layers to Y.
int64_t OffloadedLayers(std::optional<int32_t> n_gpu_layers, int64_t n_layer,
                        const std::vector<protocol::DeviceUsage>& used, int64_t* n_layers);

}  // namespace mw::worker
