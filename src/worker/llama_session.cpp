#include "worker/llama_session.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include "ggml-backend.h"
#include "llama.h"
#include "worker/backends.h"
#include "worker/gguf_inspect.h"

// llama.cpp's memory breakdown, declared as src/llama-ext.h of the pinned
// release declares it (a staging header llama.cpp does not install). Weak: a
// llama.cpp without it leaves the address null (ProjectedMemory then says so).
struct llama_memory_breakdown_data {
  size_t model = 0;    // memory allocated for the model
  size_t context = 0;  // memory allocated for the context
  size_t compute = 0;  // memory allocated for temporary compute buffers
  size_t total() const { return model + context + compute; }
};
using llama_memory_breakdown = std::map<ggml_backend_buffer_type_t, llama_memory_breakdown_data>;
LLAMA_API llama_memory_breakdown llama_get_memory_breakdown(const struct llama_context* ctx) __attribute__((weak));

namespace mw::worker {
namespace {

constexpr uint32_t kDefaultMaxCtx = 4096;

}  // namespace

ggml_type ToGgml(loadconfig::CacheType t) {
  using loadconfig::CacheType;
  switch (t) {
    case CacheType::kF32: return GGML_TYPE_F32;
    case CacheType::kF16: return GGML_TYPE_F16;
    case CacheType::kBF16: return GGML_TYPE_BF16;
    case CacheType::kQ8_0: return GGML_TYPE_Q8_0;
    case CacheType::kQ4_0: return GGML_TYPE_Q4_0;
    case CacheType::kQ4_1: return GGML_TYPE_Q4_1;
    case CacheType::kIQ4_NL: return GGML_TYPE_IQ4_NL;
    case CacheType::kQ5_0: return GGML_TYPE_Q5_0;
    case CacheType::kQ5_1: return GGML_TYPE_Q5_1;
  }
  return GGML_TYPE_F16;
}

namespace {

llama_load_mode LoadMode(const loadconfig::LlamaConfig& c) {
  if (!c.use_mmap && !c.use_mlock) return LLAMA_LOAD_MODE_AUTO;
  const bool mmap = c.use_mmap.value_or(true);
  const bool mlock = c.use_mlock.value_or(false);
  if (mmap) return mlock ? LLAMA_LOAD_MODE_MMAP_MLOCK : LLAMA_LOAD_MODE_MMAP;
  return mlock ? LLAMA_LOAD_MODE_MLOCK : LLAMA_LOAD_MODE_NONE;
}

// What a llama_model_params points into (it must outlive the load).
struct ParamStorage {
  std::vector<float> split;
  std::vector<ggml_backend_dev_t> devices;  // null-terminated
};

// llama.cpp's model parameters for `c`; `storage` holds the tensor split and
// the device list the result points into.
Result<llama_model_params> ModelParams(const loadconfig::LlamaConfig& c, ParamStorage& storage) {
  llama_model_params mp = llama_model_default_params();
  std::vector<float>& split = storage.split;
  if (!c.devices.empty()) {
    for (const std::string& id : c.devices) {
      ggml_backend_dev_t dev = ggml_backend_dev_by_name(id.c_str());
      if (dev == nullptr) return FailedPreconditionError("invalid device: " + id + " (no such device here)");
      storage.devices.push_back(dev);
    }
    storage.devices.push_back(nullptr);
    mp.devices = storage.devices.data();
  }
  if (c.n_gpu_layers) mp.n_gpu_layers = *c.n_gpu_layers;
  if (c.main_gpu) mp.main_gpu = *c.main_gpu;
  if (c.split_mode) {
    switch (*c.split_mode) {
      case loadconfig::SplitMode::kNone: mp.split_mode = LLAMA_SPLIT_MODE_NONE; break;
      case loadconfig::SplitMode::kLayer: mp.split_mode = LLAMA_SPLIT_MODE_LAYER; break;
      case loadconfig::SplitMode::kRow: mp.split_mode = LLAMA_SPLIT_MODE_ROW; break;
      case loadconfig::SplitMode::kTensor: mp.split_mode = LLAMA_SPLIT_MODE_TENSOR; break;
    }
  }
  split.assign(llama_max_devices(), 0.0f);
  if (!c.tensor_split.empty()) {
    if (c.tensor_split.size() > split.size()) {
      return InvalidArgumentError("tensor_split has " + std::to_string(c.tensor_split.size()) +
                                  " entries; this llama.cpp build supports at most " + std::to_string(split.size()));
    }
    std::copy(c.tensor_split.begin(), c.tensor_split.end(), split.begin());
    mp.tensor_split = split.data();
  }
  mp.load_mode = LoadMode(c);
  return mp;
}

llama_context_params ContextParams(const loadconfig::LlamaConfig& c, uint32_t n_ctx) {
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = n_ctx;
  if (c.n_batch) cp.n_batch = *c.n_batch;
  if (c.n_ubatch) cp.n_ubatch = *c.n_ubatch;
  const int32_t cpus = static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  cp.n_threads = c.n_threads.value_or(cpus);
  cp.n_threads_batch = c.n_threads_batch.value_or(cp.n_threads);
  if (c.flash_attn) {
    cp.flash_attn_type = *c.flash_attn == loadconfig::FlashAttn::kOn    ? LLAMA_FLASH_ATTN_TYPE_ENABLED
                         : *c.flash_attn == loadconfig::FlashAttn::kOff ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                                                        : LLAMA_FLASH_ATTN_TYPE_AUTO;
  }
  if (c.cache_type_k) cp.type_k = ToGgml(*c.cache_type_k);
  if (c.cache_type_v) cp.type_v = ToGgml(*c.cache_type_v);
  if (c.offload_kqv) cp.offload_kqv = *c.offload_kqv;
  if (c.embeddings) cp.embeddings = *c.embeddings;
  return cp;
}

void QuietLog(ggml_log_level, const char*, void*) {}

}  // namespace

Result<std::vector<protocol::DeviceUsage>> ProjectedMemory(const std::string& path, const loadconfig::LlamaConfig& c,
                                                           uint32_t n_ctx, uint32_t n_seq_max, bool quiet) {
  if (&llama_get_memory_breakdown == nullptr) return UnavailableError("this llama.cpp has no memory breakdown");
  ParamStorage split;
  ASSIGN_OR_RETURN(llama_model_params mp, ModelParams(c, split));
  mp.no_alloc = true;
  mp.load_mode = LLAMA_LOAD_MODE_NONE;
  llama_context_params cp = ContextParams(c, n_ctx);
  cp.n_seq_max = std::max<uint32_t>(1, n_seq_max);
  if (quiet) llama_log_set(QuietLog, nullptr);
  struct RestoreLog {
    bool active;
    ~RestoreLog() {
      if (active) llama_log_set(nullptr, nullptr);  // llama.cpp's default: stderr
    }
  } restore{quiet};
  llama_model* model = llama_model_load_from_file(path.c_str(), mp);
  if (model == nullptr) return AbortedError("llama.cpp could not size the model");
  llama_context* ctx = llama_init_from_model(model, cp);
  if (ctx == nullptr) {
    llama_model_free(model);
    return ResourceExhaustedError("llama.cpp could not size the context");
  }
  uint64_t host = 0;
  std::map<std::string, std::pair<protocol::DeviceKind, uint64_t>> devices;
  uint64_t weights = 0, context = 0, compute = 0;
  for (const auto& [buft, mb] : llama_get_memory_breakdown(ctx)) {
    weights += mb.model;
    context += mb.context;
    compute += mb.compute;
    ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
    if (ggml_backend_buft_is_host(buft) || dev == nullptr || ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU) {
      host += mb.total();
      continue;
    }
    const protocol::DeviceKind kind = ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_IGPU
                                          ? protocol::DeviceKind::kIgpu
                                      : ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_ACCEL
                                          ? protocol::DeviceKind::kAccel
                                          : protocol::DeviceKind::kGpu;
    auto& entry = devices[ggml_backend_dev_name(dev)];
    entry.first = kind;
    entry.second += mb.total();
  }
  llama_free(ctx);
  llama_model_free(model);
  std::fprintf(stderr, "modelwarden-worker: llama.cpp sizes this load at %llu bytes of weights, %llu of context, "
               "%llu of compute buffers\n", static_cast<unsigned long long>(weights),
               static_cast<unsigned long long>(context), static_cast<unsigned long long>(compute));
  ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  std::vector<protocol::DeviceUsage> out;
  out.push_back({cpu != nullptr ? ggml_backend_dev_name(cpu) : "CPU", protocol::DeviceKind::kCpu, host});
  for (const auto& [name, usage] : devices) out.push_back({name, usage.first, usage.second});
  return out;
}

namespace {

struct ProgressState {
  const LlamaSession::ProgressFn* fn;
  const std::atomic<bool>* cancel;
  int last_percent = -1;
};

bool OnProgress(float progress, void* user_data) {
  auto* st = static_cast<ProgressState*>(user_data);
  int percent = static_cast<int>(std::floor(std::clamp(progress, 0.0f, 1.0f) * 100.0f));
  if (percent > st->last_percent) {
    st->last_percent = percent;
    if (*st->fn) (*st->fn)(percent / 100.0);
  }
  return st->cancel == nullptr || !st->cancel->load();
}

// The host share of the load: weights plus the KV cache.
uint64_t HostEstimate(const llama_model* model, const llama_context* ctx, ggml_type type_k, ggml_type type_v) {
  const int64_t n_embd_kv = static_cast<int64_t>(llama_model_n_embd(model)) * llama_model_n_head_kv(model) /
                            std::max<int32_t>(1, llama_model_n_head(model));
  const uint64_t kv_bytes = static_cast<uint64_t>(llama_n_ctx(ctx)) * static_cast<uint64_t>(llama_model_n_layer(model)) *
                            (ggml_row_size(type_k, n_embd_kv) + ggml_row_size(type_v, n_embd_kv));
  return llama_model_size(model) + kv_bytes;
}

}  // namespace

const char* ProtocolErrorCode(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument: return protocol::kErrInvalidConfig;
    case StatusCode::kNotFound: return protocol::kErrFileNotFound;
    case StatusCode::kDataLoss: return protocol::kErrInvalidModel;
    case StatusCode::kAborted: return protocol::kErrModelLoadFailed;
    case StatusCode::kResourceExhausted: return protocol::kErrContextFailed;
    default: return protocol::kErrInternal;
  }
}

Result<std::unique_ptr<LlamaSession>> LlamaSession::Load(const std::string& path, const loadconfig::LlamaConfig& c,
                                                         const ProgressFn& progress, const std::atomic<bool>* cancel) {
  const auto start = std::chrono::steady_clock::now();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return NotFoundError("cannot read model file '" + path + "': " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return NotFoundError("model path '" + path + "' is not a regular file");

  ParamStorage split;
  ASSIGN_OR_RETURN(llama_model_params mp, ModelParams(c, split));
  ProgressState ps{&progress, cancel};
  mp.progress_callback = OnProgress;
  mp.progress_callback_user_data = &ps;

  const std::vector<size_t> free_before = FreeMemoryPerDevice();
  std::unique_ptr<LlamaSession> s(new LlamaSession());
  s->model_ = llama_model_load_from_file(path.c_str(), mp);
  if (s->model_ == nullptr) {
    if (cancel != nullptr && cancel->load()) return AbortedError("cancelled: stop requested during the load");
    Result<protocol::MetadataMessage> header = InspectGguf(path);  // only on failure: name the cause
    if (!header.ok()) return header.status();
    return AbortedError("llama.cpp could not load '" + path + "' (architecture '" + header->architecture +
                        "'); see the log for the reason");
  }
  if (cancel != nullptr && cancel->load()) return AbortedError("cancelled: stop requested during the load");

  const int32_t n_ctx_train = llama_model_n_ctx_train(s->model_);
  llama_context_params cp = ContextParams(
      c, c.n_ctx ? *c.n_ctx : n_ctx_train > 0 ? std::min<uint32_t>(kDefaultMaxCtx, n_ctx_train) : kDefaultMaxCtx);
  s->ctx_ = llama_init_from_model(s->model_, cp);
  if (s->ctx_ == nullptr) {
    return ResourceExhaustedError("the model loaded but llama.cpp could not create a context with n_ctx " +
                                  std::to_string(cp.n_ctx) + "; see the log for the reason");
  }
  s->report_.devices = MemoryUsedSince(free_before, HostEstimate(s->model_, s->ctx_, cp.type_k, cp.type_v));
  s->report_.n_ctx = llama_n_ctx(s->ctx_);
  s->report_.model_size = llama_model_size(s->model_);
  s->report_.n_params = llama_model_n_params(s->model_);
  s->report_.load_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  return s;
}

LlamaSession::~LlamaSession() {
  if (ctx_ != nullptr) llama_free(ctx_);
  if (model_ != nullptr) llama_model_free(model_);
}

}  // namespace mw::worker
