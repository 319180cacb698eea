// `modelwarden make-test-model OUT.gguf [options]` (SPEC §8).
//
// modelwarden never links llama.cpp, so this command hands the job to
// modelwarden-worker (found beside the running executable via /proc/self/exe,
// or at $MODELWARDEN_WORKER), passing the options through unchanged. The
// worker writes OUT.gguf atomically (temp file, fsync, rename) and prints a
// one-line summary or the error on stderr.
#pragma once

namespace mw::cli {

// argv[0] is the subcommand name ("make-test-model"), argv[1..] its options,
// as a dispatcher passes (argc - 1, argv + 1) of main. Returns the exit code:
// 0 written, 1 failed (worker missing, bad vocab, I/O error), 2 usage error.
// Blocks until the worker exits. Not thread-safe with other fork/exec users.
int RunMakeTestModelCommand(int argc, char** argv);

}  // namespace mw::cli
