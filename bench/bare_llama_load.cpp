// bare-llama-load MODEL [--n-ctx N] [--n-gpu-layers N] [--threads N] [--flash-attn on|off|auto] [--quiet]
//
// Loads MODEL with llama.cpp directly, with the defaults modelwarden-worker
// uses (n_ctx = min(4096, training context), threads = online CPUs, the rest
// llama.cpp's), and prints one JSON line on stdout:
//   {"backend_ms":..,"model_ms":..,"context_ms":..,"ready_ms":..}
// ready_ms runs from the start of main() to model + context existing: the
// baseline that "POST /api/orchestrate/load -> loaded" is divided by. It
// leaves out exec and dynamic linking, which the worker process pays on the
// server path; ready_mono_ms (CLOCK_MONOTONIC, ms) lets the driver measure
// from its own spawn() instead, to show that part.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "ggml-backend.h"
#include "llama.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

void Quiet(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

}  // namespace

int main(int argc, char** argv) {
  const auto t0 = Clock::now();
  if (argc < 2) {
    std::fprintf(stderr, "usage: bare-llama-load MODEL [--n-ctx N] [--n-gpu-layers N] [--threads N] "
                         "[--flash-attn on|off|auto] [--quiet]\n");
    return 2;
  }
  const char* model_path = argv[1];
  long n_ctx = -1, n_gpu_layers = -2, threads = 0;
  llama_flash_attn_type fa = LLAMA_FLASH_ATTN_TYPE_AUTO;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--quiet") {
      llama_log_set(Quiet, nullptr);
      continue;
    }
    ++i;
    if (a == "--n-ctx") n_ctx = std::atol(v);
    else if (a == "--n-gpu-layers") n_gpu_layers = std::atol(v);
    else if (a == "--threads") threads = std::atol(v);
    else if (a == "--flash-attn") fa = std::strcmp(v, "on") == 0 ? LLAMA_FLASH_ATTN_TYPE_ENABLED
                                       : std::strcmp(v, "off") == 0 ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                                                    : LLAMA_FLASH_ATTN_TYPE_AUTO;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }

  llama_backend_init();
  const char* dir = std::getenv("MODELWARDEN_GGML_BACKEND_DIR");
  ggml_backend_load_all_from_path(dir != nullptr && *dir != '\0' ? dir : MW_GGML_BACKEND_DIR);
  const auto t1 = Clock::now();

  llama_model_params mp = llama_model_default_params();
  if (n_gpu_layers >= -1) mp.n_gpu_layers = static_cast<int32_t>(n_gpu_layers);
  llama_model* model = llama_model_load_from_file(model_path, mp);
  if (model == nullptr) {
    std::fprintf(stderr, "failed to load %s\n", model_path);
    return 1;
  }
  const auto t2 = Clock::now();

  llama_context_params cp = llama_context_default_params();
  const int32_t train = llama_model_n_ctx_train(model);
  cp.n_ctx = n_ctx >= 0 ? static_cast<uint32_t>(n_ctx) : train > 0 ? std::min<uint32_t>(4096, train) : 4096;
  cp.n_threads = threads > 0 ? static_cast<int32_t>(threads)
                             : static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  cp.n_threads_batch = cp.n_threads;
  cp.flash_attn_type = fa;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (ctx == nullptr) {
    std::fprintf(stderr, "failed to create a context\n");
    llama_model_free(model);
    return 1;
  }
  const auto t3 = Clock::now();
  std::printf("{\"backend_ms\":%.2f,\"model_ms\":%.2f,\"context_ms\":%.2f,\"ready_ms\":%.2f,\"n_ctx\":%u,"
              "\"ready_mono_ms\":%.3f}\n",
              Ms(t0, t1), Ms(t1, t2), Ms(t2, t3), Ms(t0, t3), llama_n_ctx(ctx),
              std::chrono::duration<double, std::milli>(t3.time_since_epoch()).count());
  std::fflush(stdout);
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}
