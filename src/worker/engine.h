// `modelwarden-worker load`: llama.cpp's own server code (tools/server,
// built by scripts/build-llama-serverlib) serving one model, seen from the
// server through the worker protocol (docs/worker-protocol.md).
//
// The load that is judged is the load that serves: the worker runs
// llama_server() with the argv BuildEngineArgs makes from the validated
// load_config, on the Unix socket it was given (--socket, in the server's
// private runtime directory: no TCP port at all, SPEC §20), and reports
//   progress   while llama.cpp reads the model (estimated from the growth of
//              the resident memory: a sign of life, not an exact share)
//   loaded     once /health answers 200 and, with verify "decode", a short
//              prompt has run through the engine (POST /completion, greedy,
//              two tokens); carries `socket`, where the engine answers
//              llama.cpp's HTTP API (/v1/chat/completions, /v1/completions,
//              /v1/embeddings, /v1/models, /health, /props, /slots)
//   error      file_not_found / invalid_model (checked before the engine
//              starts), model_load_failed (llama_server returned during the
//              load: model or context refused; the log says why),
//              decode_failed (the first decode answered an error)
//   stopped    after `stop` / stdin EOF (or SIGTERM: llama.cpp's own
//              graceful shutdown), once llama_server has returned
// A crash anywhere (the first decode included) is the process dying, which
// the server classifies from the exit status and the log.
#pragma once

#include <cstdint>
#include <string>

#include "worker/engine_args.h"

namespace mw::worker {

struct EngineOptions {
  std::string model_path;
  std::string config_json = "{}";
  Verify verify = Verify::kDecode;
  std::string socket_path = {};  // where the engine listens (CheckEngineSocketPath)
  // A pre-started worker (`load --standby`): when its process started and
  // when its backends were loaded (monotonic ms); 0: started for this load.
  int64_t prestarted_ms = 0;
  int64_t prestart_backends_ms = 0;
};

// Runs the engine until it is stopped; returns the worker's exit code
// (0 stopped, 1 failed after an `error` message).
int RunEngine(const EngineOptions& options);

}  // namespace mw::worker
