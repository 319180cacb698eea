// modelwarden-worker: the only program that runs llama.cpp code.
//
// One process per job, started by the server's supervisor (or by hand):
//   load --model PATH [--config JSON] [--verify decode|load|request]
//                                      serve the model with llama.cpp's own server code
//                                      (engine.h), report, until "stop"/EOF on stdin
//   probe                              list the devices the ggml backends see
//   inspect PATH                       GGUF header facts, no tensor data read
//   generate --model PATH [--config JSON] [--prompt TEXT] [--n N]
//                                      smoke test: greedy-decode N tokens, print them on stdout
//   make-test-model OUT.gguf [--layers N] [--embd N] [--ff N] [--ctx N] [--size-mb N] [--type f16|f32] [--seed N]
// Results and errors go to the protocol fd as protocol::Message lines
// (docs/worker-protocol.md); llama.cpp's log goes to stderr. Exit status:
// 0 success, 1 failure (after an "error" message), 2 usage error.
//
// Defaults the worker applies where load_config leaves a setting unset:
// n_ctx = min(4096, the model's training context); `load`: n_parallel = 1 and
// everything else llama-server's own default (engine_args.h); `generate`:
// n_threads = the number of online CPUs, everything else llama.cpp's own
// default (all layers offloaded when a GPU backend is present, flash
// attention "auto", f16 KV cache, mmap).
#pragma once

namespace mw::worker {

// Entry point of modelwarden-worker (argv[1] is the subcommand).
int RunWorker(int argc, char** argv);

}  // namespace mw::worker
