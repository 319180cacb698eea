// mw-llama-server: llama.cpp's stock `llama-server`, from the same build of
// its server code that modelwarden-worker runs (libmw-llama-server.so), for
// side-by-side benchmarks (modelwarden /v1 vs llama-server run directly) and
// the engine-design measurement in docs/architecture.md. Not used by the
// server. Same command line as llama-server; the only addition is loading
// the ggml backend plugins from the llama.cpp lib directory and the GPU
// plugins' directory (the stock main looks for them beside the executable).
#include <cstdlib>

#include "ggml-backend.h"

int llama_server(int argc, char** argv);

int main(int argc, char** argv) {
  const char* dir = std::getenv("MODELWARDEN_GGML_BACKEND_DIR");
  ggml_backend_load_all_from_path(dir != nullptr && *dir != '\0' ? dir : MW_GGML_BACKEND_DIR);
  // The GPU plugins of the same release (SPEC §15; scripts/bootstrap --print-gpu-dir).
  const char* gpu = std::getenv("MODELWARDEN_GGML_GPU_DIR");
  ggml_backend_load_all_from_path(gpu != nullptr && *gpu != '\0' ? gpu : MW_GGML_GPU_BACKEND_DIR);
  return llama_server(argc, argv);
}
