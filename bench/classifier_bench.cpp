// Classifying a 64 KiB captured log (what the supervisor keeps), with the
// built-in catalog. Issue 3 asks for well under 1 ms per classification.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <iostream>
#include <random>
#include <string>

#include "classifier/crash_classifier.h"

namespace {

constexpr size_t kLogBytes = 64 * 1024;

const mw::CrashClassifier& Classifier() {
  static const mw::CrashClassifier* classifier = [] {
    auto loaded = mw::CrashClassifier::Load("");
    if (!loaded.ok()) {
      std::cerr << loaded.status().ToString() << "\n";
      std::exit(1);
    }
    return new mw::CrashClassifier(std::move(loaded).value());
  }();
  return *classifier;
}

// A llama.cpp-style load log: metadata, tensor loading, harmless warnings,
// then `tail` (the failure) at the end.
std::string LoaderLog(const std::string& tail) {
  std::string log = "build: 4726 (6dde1782) with cc (GCC) 12.2.0 for x86_64-linux-gnu\n"
                    "ggml_cuda_init: found 1 CUDA devices:\n"
                    "  Device 0: NVIDIA GeForce RTX 3090, compute capability 8.6, VMM: yes\n";
  for (int i = 0; log.size() + tail.size() < kLogBytes; ++i) {
    switch (i % 6) {
      case 0: log += "llama_model_loader: - kv  " + std::to_string(i % 40) + ":  llama.attention.head_count u32 = 32\n"; break;
      case 1: log += "load_tensors: layer  " + std::to_string(i % 80) + " assigned to device CUDA0, is_swa = 0\n"; break;
      case 2: log += "llama_model_loader: - type q4_K:  " + std::to_string(i) + " tensors\n"; break;
      case 3: log += "llama_context: flash_attn = auto -> enabled; n_ctx_per_seq (4096) < n_ctx_train (131072)\n"; break;
      case 4: log += "time=2025-07-14T19:16:12.500+01:00 level=INFO source=server.go:614 msg=\"waiting for server\" progress=0.42\n"; break;
      default: log += "print_info: n_embd = 4096, n_head = 32, n_layer = 32, rope type = 0, causal attn = 1\n"; break;
    }
  }
  return log + tail;
}

void Run(benchmark::State& state, const std::string& log, std::optional<std::string> signal) {
  const mw::CrashClassifier& classifier = Classifier();
  mw::CrashEvidence evidence{log, std::nullopt, std::move(signal), false};
  for (auto _ : state) {
    mw::Classification result = classifier.Classify(evidence);
    benchmark::DoNotOptimize(result);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(log.size()));
}

void BM_Classify64KiB_Oom(benchmark::State& state) {
  static const std::string log = LoaderLog(
      "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 14136.04 MiB on device 0: cudaMalloc failed: out of memory\n"
      "graph_reserve: failed to allocate compute buffers\nmain: exiting due to model loading error\n");
  Run(state, log, std::nullopt);
}
BENCHMARK(BM_Classify64KiB_Oom)->Unit(benchmark::kMicrosecond);

void BM_Classify64KiB_FlashKernel(benchmark::State& state) {
  static const std::string log = LoaderLog(
      "CUDA error: an illegal memory access was encountered\n"
      "  current device: 0, in function ggml_cuda_flash_attn_ext_mma_f16_case at fattn-mma-f16.cuh:1973\n"
      "ggml-cuda.cu:108: CUDA error\nAborted (core dumped)\n");
  Run(state, log, "SIGABRT");
}
BENCHMARK(BM_Classify64KiB_FlashKernel)->Unit(benchmark::kMicrosecond);

void BM_Classify64KiB_NoMatch(benchmark::State& state) {
  static const std::string log = LoaderLog("");
  Run(state, log, "SIGSEGV");
}
BENCHMARK(BM_Classify64KiB_NoMatch)->Unit(benchmark::kMicrosecond);

void BM_Classify64KiB_Binary(benchmark::State& state) {
  static const std::string log = [] {
    std::mt19937 rng(7);
    std::string bytes(kLogBytes, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() & 0xFF);
    return bytes;
  }();
  Run(state, log, std::nullopt);
}
BENCHMARK(BM_Classify64KiB_Binary)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
