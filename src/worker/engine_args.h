// The command line of llama.cpp's own server for one load (SPEC §10): the
// validated load_config, translated key by key into llama-server flags, so
// the engine that is judged is the engine that serves, with the same settings.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "loadconfig/loadconfig.h"

namespace mw::worker {

// SPEC §10 server option `verify`: "decode" runs a short prompt through the
// engine before the load counts as a success; "load" skips it, so no forward
// pass happens at load time; "request" (an on-demand load, SPEC §16) reports
// `ready` once the engine listens and lets the server's word decide: the
// request's own first token (`verified`), or the short decode (`verify`). llama.cpp's own warm-up decode never runs (SPEC
// §16: one decode per load, not two).
enum class Verify { kDecode, kLoad, kRequest };

struct EngineArgsInput {
  std::string model_path;
  loadconfig::LlamaConfig config;
  int64_t n_ctx_train = 0;  // the model's context length (GGUF header), 0 if unknown
  Verify verify = Verify::kDecode;
  std::string socket_path = {};  // CheckEngineSocketPath
  bool model_pools = false;  // the GGUF names a pooling type: embeddings without `pooling` use it
};

// The engine's socket: an absolute path ending in ".sock" (llama.cpp's
// server listens on a Unix socket, not TCP, only for such a host) that fits
// sun_path. kInvalidArgument otherwise.
Status CheckEngineSocketPath(const std::string& path);

// The context size the engine gets: load_config n_ctx when set (0 = the
// training context), else min(4096, the training context).
int64_t EffectiveNCtx(const loadconfig::LlamaConfig& config, int64_t n_ctx_train);

// argv for llama_server(argc, argv), argv[0] included. The server listens on
// the Unix socket input.socket_path (--host PATH.sock); it has no web UI and its
// own defaults apply to every key load_config leaves unset, except n_ctx
// (EffectiveNCtx) and n_parallel (1).
std::vector<std::string> BuildEngineArgs(const EngineArgsInput& input);

// Environment variables that would change llama.cpp's settings behind the
// load_config's back (LLAMA_ARG_*, LLAMA_API_KEY, the AIP_* of its Vertex AI
// mode): removed from the worker's environment before the engine starts.
void ClearEngineEnvironment();

}  // namespace mw::worker
