#include "worker/test_model.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include "ggml.h"
#include "gguf.h"

namespace mw::worker {
namespace {

constexpr int64_t kMaxDim = 1 << 16;
constexpr size_t kChunkElements = 1 << 20;

struct GgufFree {
  void operator()(gguf_context* c) const { gguf_free(c); }
};
struct GgmlFree {
  void operator()(ggml_context* c) const { ggml_free(c); }
};
struct FileClose {
  void operator()(FILE* f) const { std::fclose(f); }
};

Result<int64_t> ParseInt(const std::string& flag, const std::string& value, int64_t min, int64_t max) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno != 0 || v < min || v > max) {
    return InvalidArgumentError(flag + " needs an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                                "], got '" + value + "'");
  }
  return static_cast<int64_t>(v);
}

// Fast deterministic uniform noise in [-scale, scale]; quality is irrelevant.
class Noise {
 public:
  explicit Noise(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  float Next(float scale) {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    return scale * (static_cast<float>(state_ >> 40) / static_cast<float>(1 << 23) - 1.0f);
  }

 private:
  uint64_t state_;
};

void ChooseDimensions(const TestModelOptions& o, int64_t vocab, TestModelSummary& s) {
  if (o.size_mb <= 0) {
    s.embd = o.embd > 0 ? o.embd : 64;
    s.layers = o.layers > 0 ? o.layers : 2;
    s.ff = o.ff > 0 ? o.ff : 2 * s.embd;
  } else {
    const double bytes_per_weight = o.f32 ? 4.0 : 2.0;
    const double weights = static_cast<double>(o.size_mb) * 1024 * 1024 / bytes_per_weight;
    s.embd = o.embd > 0 ? o.embd : weights < 30e6 ? 256 : weights < 150e6 ? 512 : weights < 400e6 ? 1024 : 2048;
    s.ff = o.ff > 0 ? o.ff : 4 * s.embd;
    const double per_layer = 4.0 * s.embd * s.embd + 3.0 * s.embd * s.ff;
    const double rest = weights - 2.0 * static_cast<double>(vocab) * s.embd;
    s.layers = o.layers > 0 ? o.layers : std::max<int64_t>(1, std::llround(rest / per_layer));
  }
  s.heads = s.embd >= 256 ? s.embd / 64 : std::max<int64_t>(1, s.embd / 16);
  s.ctx = o.ctx;
  s.vocab = vocab;
}

Status WriteAll(FILE* f, const void* data, size_t n) {
  if (n != 0 && std::fwrite(data, 1, n, f) != n) return InternalError(std::string("write failed: ") + std::strerror(errno));
  return Status::Ok();
}

// Streams one tensor's data: 1-D tensors (norms) are 1.0, weights small noise.
Status WriteTensorData(FILE* f, const ggml_tensor* t, Noise& noise, std::vector<float>& buf,
                       std::vector<ggml_fp16_t>& half) {
  const int64_t n = ggml_nelements(t);
  const bool is_norm = t->ne[1] == 1;
  const float scale = 0.5f / std::sqrt(static_cast<float>(t->ne[0]));
  for (int64_t done = 0; done < n;) {
    const size_t k = static_cast<size_t>(std::min<int64_t>(n - done, kChunkElements));
    buf.resize(k);
    for (size_t i = 0; i < k; ++i) buf[i] = is_norm ? 1.0f : noise.Next(scale);
    if (t->type == GGML_TYPE_F16) {
      half.resize(k);
      ggml_fp32_to_fp16_row(buf.data(), half.data(), static_cast<int64_t>(k));
      RETURN_IF_ERROR(WriteAll(f, half.data(), k * sizeof(ggml_fp16_t)));
    } else {
      RETURN_IF_ERROR(WriteAll(f, buf.data(), k * sizeof(float)));
    }
    done += static_cast<int64_t>(k);
  }
  static const char kZeros[GGUF_DEFAULT_ALIGNMENT] = {};
  const size_t pad = (GGUF_DEFAULT_ALIGNMENT - ggml_nbytes(t) % GGUF_DEFAULT_ALIGNMENT) % GGUF_DEFAULT_ALIGNMENT;
  return WriteAll(f, kZeros, pad);
}

Status FsyncPath(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return InternalError("open " + path + ": " + std::strerror(errno));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return InternalError("fsync " + path + ": " + std::strerror(errno));
  return Status::Ok();
}

}  // namespace

Result<TestModelOptions> ParseTestModelArgs(const std::vector<std::string>& args) {
  TestModelOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) {
      if (!o.out_path.empty()) return InvalidArgumentError("make-test-model takes one output path, got '" + a + "' too");
      o.out_path = a;
      continue;
    }
    if (i + 1 >= args.size()) return InvalidArgumentError(a + " needs a value");
    const std::string& v = args[++i];
    if (a == "--layers") {
      ASSIGN_OR_RETURN(o.layers, ParseInt(a, v, 1, 1024));
    } else if (a == "--embd") {
      ASSIGN_OR_RETURN(o.embd, ParseInt(a, v, 16, kMaxDim));
      if (o.embd % 16 != 0) return InvalidArgumentError("--embd must be a multiple of 16");
    } else if (a == "--ff") {
      ASSIGN_OR_RETURN(o.ff, ParseInt(a, v, 1, 4 * kMaxDim));
    } else if (a == "--ctx") {
      ASSIGN_OR_RETURN(o.ctx, ParseInt(a, v, 16, 1 << 20));
    } else if (a == "--size-mb") {
      ASSIGN_OR_RETURN(o.size_mb, ParseInt(a, v, 1, 64 * 1024));
    } else if (a == "--seed") {
      ASSIGN_OR_RETURN(int64_t seed, ParseInt(a, v, 0, INT64_MAX));
      o.seed = static_cast<uint64_t>(seed);
    } else if (a == "--type") {
      if (v != "f16" && v != "f32") return InvalidArgumentError("--type must be f16 or f32");
      o.f32 = v == "f32";
    } else if (a == "--vocab") {
      o.vocab_path = v;
    } else {
      return InvalidArgumentError("unknown option '" + a + "'");
    }
  }
  if (o.out_path.empty()) return InvalidArgumentError("make-test-model needs an output path (OUT.gguf)");
  return o;
}

Result<std::string> FindTestVocab() {
  std::vector<std::string> tried;
  if (const char* env = std::getenv("MODELWARDEN_TEST_VOCAB"); env != nullptr && *env != '\0') {
    if (::access(env, R_OK) == 0) return std::string(env);
    tried.push_back(std::string(env) + " (MODELWARDEN_TEST_VOCAB)");
  }
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    std::string beside = (exe.parent_path().parent_path() / "share/modelwarden/ggml-vocab-llama-spm.gguf").string();
    if (::access(beside.c_str(), R_OK) == 0) return beside;
    tried.push_back(beside);
  }
  if (::access(MW_TEST_VOCAB, R_OK) == 0) return std::string(MW_TEST_VOCAB);
  tried.push_back(MW_TEST_VOCAB);
  std::string list;
  for (const auto& t : tried) list += (list.empty() ? "" : ", ") + t;
  return NotFoundError("tokenizer GGUF for make-test-model not found; tried " + list);
}

Result<TestModelSummary> WriteTestModel(const TestModelOptions& options) {
  std::string vocab_path = options.vocab_path;
  if (vocab_path.empty()) {
    ASSIGN_OR_RETURN(vocab_path, FindTestVocab());
  }
  std::unique_ptr<gguf_context, GgufFree> vocab(gguf_init_from_file(vocab_path.c_str(), {true, nullptr}));
  if (!vocab) return DataLossError("cannot read tokenizer GGUF '" + vocab_path + "'");
  int64_t tokens_id = gguf_find_key(vocab.get(), "tokenizer.ggml.tokens");
  if (tokens_id < 0) return DataLossError("'" + vocab_path + "' has no tokenizer.ggml.tokens");
  const auto n_vocab = static_cast<int64_t>(gguf_get_arr_n(vocab.get(), tokens_id));

  TestModelSummary s;
  ChooseDimensions(options, n_vocab, s);
  if (s.embd % s.heads != 0 || s.embd > kMaxDim || s.ff > 4 * kMaxDim) {
    return InvalidArgumentError("impossible dimensions: embd " + std::to_string(s.embd));
  }

  std::unique_ptr<gguf_context, GgufFree> out(gguf_init_empty());
  gguf_set_kv(out.get(), vocab.get());  // the whole tokenizer, and nothing else it may carry
  for (int64_t i = gguf_get_n_kv(out.get()) - 1; i >= 0; --i) {
    std::string key = gguf_get_key(out.get(), i);
    if (key.rfind("tokenizer.", 0) != 0) gguf_remove_key(out.get(), key.c_str());
  }
  gguf_set_val_str(out.get(), "general.architecture", "llama");
  gguf_set_val_str(out.get(), "general.name", "modelwarden-test-model");
  gguf_set_val_u32(out.get(), "general.file_type", options.f32 ? 0 : 1);
  gguf_set_val_u32(out.get(), "llama.context_length", static_cast<uint32_t>(s.ctx));
  gguf_set_val_u32(out.get(), "llama.embedding_length", static_cast<uint32_t>(s.embd));
  gguf_set_val_u32(out.get(), "llama.block_count", static_cast<uint32_t>(s.layers));
  gguf_set_val_u32(out.get(), "llama.feed_forward_length", static_cast<uint32_t>(s.ff));
  gguf_set_val_u32(out.get(), "llama.attention.head_count", static_cast<uint32_t>(s.heads));
  gguf_set_val_u32(out.get(), "llama.attention.head_count_kv", static_cast<uint32_t>(s.heads));
  gguf_set_val_u32(out.get(), "llama.rope.dimension_count", static_cast<uint32_t>(s.embd / s.heads));
  gguf_set_val_f32(out.get(), "llama.attention.layer_norm_rms_epsilon", 1e-5f);
  gguf_set_val_u32(out.get(), "llama.vocab_size", static_cast<uint32_t>(n_vocab));

  // Tensor descriptions only (no_alloc): data is streamed below.
  const size_t n_tensors = 3 + 9 * static_cast<size_t>(s.layers);
  std::unique_ptr<ggml_context, GgmlFree> meta(
      ggml_init({/*mem_size=*/ggml_tensor_overhead() * (n_tensors + 1), /*mem_buffer=*/nullptr, /*no_alloc=*/true}));
  const ggml_type wtype = options.f32 ? GGML_TYPE_F32 : GGML_TYPE_F16;
  std::vector<ggml_tensor*> tensors;
  auto add = [&](const std::string& name, ggml_type type, int64_t ne0, int64_t ne1) {
    ggml_tensor* t = ne1 == 1 ? ggml_new_tensor_1d(meta.get(), type, ne0) : ggml_new_tensor_2d(meta.get(), type, ne0, ne1);
    ggml_set_name(t, name.c_str());
    gguf_add_tensor(out.get(), t);
    tensors.push_back(t);
  };
  add("token_embd.weight", wtype, s.embd, n_vocab);
  add("output_norm.weight", GGML_TYPE_F32, s.embd, 1);
  add("output.weight", wtype, s.embd, n_vocab);
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", GGML_TYPE_F32, s.embd, 1);
    add(p + "attn_q.weight", wtype, s.embd, s.embd);
    add(p + "attn_k.weight", wtype, s.embd, s.embd);
    add(p + "attn_v.weight", wtype, s.embd, s.embd);
    add(p + "attn_output.weight", wtype, s.embd, s.embd);
    add(p + "ffn_norm.weight", GGML_TYPE_F32, s.embd, 1);
    add(p + "ffn_gate.weight", wtype, s.embd, s.ff);
    add(p + "ffn_down.weight", wtype, s.ff, s.embd);
    add(p + "ffn_up.weight", wtype, s.embd, s.ff);
  }
  for (const ggml_tensor* t : tensors) s.parameter_count += static_cast<uint64_t>(ggml_nelements(t));

  const std::string tmp = options.out_path + ".tmp." + std::to_string(::getpid());
  Status st = [&]() -> Status {
    std::unique_ptr<FILE, FileClose> f(std::fopen(tmp.c_str(), "wb"));
    if (!f) return InternalError("cannot create '" + tmp + "': " + std::strerror(errno));
    if (!gguf_write_to_file_ptr(out.get(), f.get(), /*only_meta=*/true)) return InternalError("writing GGUF header failed");
    Noise noise(options.seed);
    std::vector<float> buf;
    std::vector<ggml_fp16_t> half;
    for (const ggml_tensor* t : tensors) RETURN_IF_ERROR(WriteTensorData(f.get(), t, noise, buf, half));
    if (std::fflush(f.get()) != 0 || ::fsync(::fileno(f.get())) != 0) {
      return InternalError("flushing '" + tmp + "' failed: " + std::strerror(errno));
    }
    s.file_size = static_cast<uint64_t>(std::ftell(f.get()));
    if (std::fclose(f.release()) != 0) return InternalError("closing '" + tmp + "' failed");
    if (std::rename(tmp.c_str(), options.out_path.c_str()) != 0) {
      return InternalError("rename to '" + options.out_path + "' failed: " + std::strerror(errno));
    }
    std::string dir = std::filesystem::path(options.out_path).parent_path().string();
    return FsyncPath(dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY);
  }();
  if (!st.ok()) {
    std::remove(tmp.c_str());
    return st;
  }
  return s;
}

}  // namespace mw::worker
