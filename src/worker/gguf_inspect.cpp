#include "worker/gguf_inspect.h"

#include "common/gguf_header.h"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <utility>

#include "gguf.h"

namespace mw::worker {
namespace {

struct GgufFree {
  void operator()(gguf_context* ctx) const { gguf_free(ctx); }
};

std::string StringValue(const gguf_context* ctx, const char* key) {
  int64_t id = gguf_find_key(ctx, key);
  if (id < 0 || gguf_get_kv_type(ctx, id) != GGUF_TYPE_STRING) return "";
  const char* v = gguf_get_val_str(ctx, id);
  return v != nullptr ? v : "";
}

// Any integer-typed value as int64; `fallback` if absent or not an integer.
int64_t IntValue(const gguf_context* ctx, const std::string& key, int64_t fallback) {
  int64_t id = gguf_find_key(ctx, key.c_str());
  if (id < 0) return fallback;
  switch (gguf_get_kv_type(ctx, id)) {
    case GGUF_TYPE_UINT8: return gguf_get_val_u8(ctx, id);
    case GGUF_TYPE_INT8: return gguf_get_val_i8(ctx, id);
    case GGUF_TYPE_UINT16: return gguf_get_val_u16(ctx, id);
    case GGUF_TYPE_INT16: return gguf_get_val_i16(ctx, id);
    case GGUF_TYPE_UINT32: return gguf_get_val_u32(ctx, id);
    case GGUF_TYPE_INT32: return gguf_get_val_i32(ctx, id);
    case GGUF_TYPE_UINT64: return static_cast<int64_t>(gguf_get_val_u64(ctx, id));
    case GGUF_TYPE_INT64: return gguf_get_val_i64(ctx, id);
    default: return fallback;
  }
}

// The model's shape for the memory estimate; absent keys fall back the way
// llama.cpp's loader does (KV heads = heads, head size = embedding / heads).
void ReadShape(const gguf_context* g, protocol::MetadataMessage& m) {
  if (m.architecture.empty()) return;
  const std::string a = m.architecture + ".";
  m.block_count = IntValue(g, a + "block_count", 0);
  m.embedding_length = IntValue(g, a + "embedding_length", 0);
  m.head_count = IntValue(g, a + "attention.head_count", 0);
  m.head_count_kv = IntValue(g, a + "attention.head_count_kv", m.head_count);
  const int64_t head_size = m.head_count > 0 ? m.embedding_length / m.head_count : 0;
  m.key_length = IntValue(g, a + "attention.key_length", head_size);
  m.value_length = IntValue(g, a + "attention.value_length", head_size);
  m.vocab_size = IntValue(g, a + "vocab_size", 0);
  if (m.vocab_size == 0) {
    int64_t tokens = gguf_find_key(g, "tokenizer.ggml.tokens");
    if (tokens >= 0 && gguf_get_kv_type(g, tokens) == GGUF_TYPE_ARRAY) {
      m.vocab_size = static_cast<int64_t>(gguf_get_arr_n(g, tokens));
    }
  }
}

}  // namespace

std::string FileTypeName(int64_t file_type) {
  static const std::map<int64_t, const char*> kNames = {
      {0, "F32"},      {1, "F16"},      {2, "Q4_0"},     {3, "Q4_1"},    {7, "Q8_0"},    {8, "Q5_0"},
      {9, "Q5_1"},     {10, "Q2_K"},    {11, "Q3_K_S"},  {12, "Q3_K_M"}, {13, "Q3_K_L"}, {14, "Q4_K_S"},
      {15, "Q4_K_M"},  {16, "Q5_K_S"},  {17, "Q5_K_M"},  {18, "Q6_K"},   {19, "IQ2_XXS"}, {20, "IQ2_XS"},
      {21, "Q2_K_S"},  {22, "IQ3_XS"},  {23, "IQ3_XXS"}, {24, "IQ1_S"},  {25, "IQ4_NL"}, {26, "IQ3_S"},
      {27, "IQ3_M"},   {28, "IQ2_S"},   {29, "IQ2_M"},   {30, "IQ4_XS"}, {31, "IQ1_M"},  {32, "BF16"},
      {36, "TQ1_0"},   {37, "TQ2_0"},   {38, "MXFP4_MOE"}, {39, "NVFP4"}, {40, "Q1_0"},  {41, "Q2_0"},
  };
  auto it = kNames.find(file_type);
  return it == kNames.end() ? "" : it->second;
}

namespace {

// The header read once: what InspectGguf answers, and gguf's context for
// ReadModelShape (a cold load's worker reads it before llama.cpp parses the
// file again; one parse, not two).
struct Inspected {
  protocol::MetadataMessage metadata;
  std::unique_ptr<gguf_context, GgufFree> ctx;
};

Result<Inspected> Inspect(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return NotFoundError("cannot read model file '" + path + "': " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return NotFoundError("model path '" + path + "' is not a regular file");

  gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
  std::unique_ptr<gguf_context, GgufFree> ctx(gguf_init_from_file(path.c_str(), params));
  if (!ctx) {
    // Our own reader names the reason (gguf's went to the worker's stderr only).
    if (Result<GgufHeader> header = ReadGgufHeader(path); !header.ok()) return DataLossError(header.status().message());
    return DataLossError("'" + path + "' is not a valid GGUF file (bad magic, unsupported version, or a "
                         "truncated/corrupt header; see the log for gguf's reason)");
  }
  const gguf_context* g = ctx.get();
  protocol::MetadataMessage m;
  m.file_size = static_cast<uint64_t>(st.st_size);
  m.architecture = StringValue(g, "general.architecture");
  m.name = StringValue(g, "general.name");
  m.file_type = IntValue(g, "general.file_type", -1);
  m.context_length = m.architecture.empty() ? 0 : IntValue(g, m.architecture + ".context_length", 0);
  m.tensor_count = gguf_get_n_tensors(g);

  const uint64_t data_offset = gguf_get_data_offset(g);
  std::map<ggml_type, uint64_t> bytes_by_type;
  for (int64_t i = 0; i < m.tensor_count; ++i) {
    const int64_t* ne = gguf_get_tensor_ne(g, i);
    uint64_t elements = 1;
    for (int d = 0; d < GGML_MAX_DIMS; ++d) elements *= static_cast<uint64_t>(ne[d]);
    m.parameter_count += elements;
    m.tensor_bytes += gguf_get_tensor_size(g, i);
    const uint64_t size = gguf_get_tensor_size(g, i);
    const uint64_t end = data_offset + gguf_get_tensor_offset(g, i) + size;
    if (end > m.file_size) {
      return DataLossError("'" + path + "' is truncated: tensor '" + gguf_get_tensor_name(g, i) +
                           "' ends at byte " + std::to_string(end) + " but the file has " +
                           std::to_string(m.file_size) + " bytes");
    }
    if (gguf_get_tensor_ne(g, i)[1] > 1) bytes_by_type[gguf_get_tensor_type(g, i)] += size;
  }
  ReadShape(g, m);
  m.quantization = FileTypeName(m.file_type);
  if (m.quantization.empty() && !bytes_by_type.empty()) {
    // No (known) general.file_type: name the type holding most of the weights.
    auto best = bytes_by_type.begin();
    for (auto it = bytes_by_type.begin(); it != bytes_by_type.end(); ++it) {
      if (it->second > best->second) best = it;
    }
    m.quantization = ggml_type_name(best->first);
    for (char& ch : m.quantization) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  return Inspected{std::move(m), std::move(ctx)};
}

}  // namespace

Result<protocol::MetadataMessage> InspectGguf(const std::string& path) {
  ASSIGN_OR_RETURN(Inspected inspected, Inspect(path));
  return std::move(inspected.metadata);
}

Result<ModelShape> ReadModelShape(const std::string& path) {
  ASSIGN_OR_RETURN(Inspected inspected, Inspect(path));  // checks the file first
  const protocol::MetadataMessage& m = inspected.metadata;
  ModelShape s;
  s.n_params = m.parameter_count;
  s.n_ctx_train = m.context_length;
  s.weight_bytes = m.tensor_bytes;
  // The shape ReadShape read, with its fallbacks (KV heads = heads, head size
  // = embedding / heads).
  s.n_layer = m.block_count;
  s.n_embd_k = m.key_length * m.head_count_kv;
  s.n_embd_v = m.value_length * m.head_count_kv;
  s.pooling_type = IntValue(inspected.ctx.get(), m.architecture + ".pooling_type", 0);
  return s;
}

}  // namespace mw::worker
