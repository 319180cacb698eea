// make-test-model: a small, valid llama-architecture GGUF with random weights
// and a real tokenizer, for tests and for checking the inference stack.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace mw::worker {

struct TestModelOptions {
  std::string out_path;
  std::string vocab_path;   // tokenizer GGUF; empty = FindTestVocab()
  int64_t layers = 0;       // 0 = from size_mb (or the tiny default 2)
  int64_t embd = 0;         // 0 = from size_mb (or the tiny default 64)
  int64_t ff = 0;           // 0 = 4 * embd (tiny: 128)
  int64_t ctx = 2048;       // llama.context_length
  int64_t size_mb = 0;      // target file size in MiB (approximate); 0 = tiny
  bool f32 = false;         // 2-D weights in f32 instead of f16
  uint64_t seed = 1;
};

struct TestModelSummary {
  int64_t layers = 0, embd = 0, ff = 0, heads = 0, ctx = 0, vocab = 0;
  uint64_t parameter_count = 0;
  uint64_t file_size = 0;
};

// Parses "OUT.gguf [--layers N] [--embd N] [--ff N] [--ctx N] [--size-mb N]
// [--type f16|f32] [--seed N] [--vocab PATH]". kInvalidArgument with a usage
// hint on a bad flag or value.
Result<TestModelOptions> ParseTestModelArgs(const std::vector<std::string>& args);

// The tokenizer GGUF: env MODELWARDEN_TEST_VOCAB, else
// <exe dir>/../share/modelwarden/ggml-vocab-llama-spm.gguf, else the
// compile-time MW_TEST_VOCAB. kNotFound naming every place tried.
Result<std::string> FindTestVocab();

// Writes the model to a temporary name beside out_path, streams the tensor
// data (never the whole model in memory), fsyncs, renames over out_path and
// fsyncs the directory: on OK the complete file is durable; on error no
// partial file is left. kNotFound/kDataLoss for a bad vocab file,
// kInvalidArgument for impossible dimensions, kInternal for I/O errors.
Result<TestModelSummary> WriteTestModel(const TestModelOptions& options);

}  // namespace mw::worker
