// A llama.cpp model plus its inference context, owned together (RAII).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "ggml.h"
#include "loadconfig/loadconfig.h"
#include "protocol/protocol.h"

struct llama_model;
struct llama_context;

namespace mw::worker {

class LlamaSession {
 public:
  // Called with load progress in [0, 1], at most once per 1 % step.
  using ProgressFn = std::function<void(double)>;

  // Loads `path` with `config` and creates the context. Requires
  // InitBackendsOnce(). Setting *cancel aborts the weight loading at the next
  // progress step (returns kAborted with "cancelled").
  // Errors: kNotFound (file missing), kDataLoss (not a valid GGUF),
  // kAborted (llama.cpp refused the model), kResourceExhausted (context not
  // created, usually memory), kInvalidArgument (settings llama.cpp cannot take).
  static Result<std::unique_ptr<LlamaSession>> Load(const std::string& path, const loadconfig::LlamaConfig& config,
                                                   const ProgressFn& progress, const std::atomic<bool>* cancel);
  ~LlamaSession();
  LlamaSession(const LlamaSession&) = delete;
  LlamaSession& operator=(const LlamaSession&) = delete;

  llama_model* model() const { return model_; }
  llama_context* context() const { return ctx_; }
  // The "loaded" report: memory per device (best effort), n_ctx, load time.
  const protocol::LoadedMessage& report() const { return report_; }

 private:
  LlamaSession() = default;
  llama_model* model_ = nullptr;
  llama_context* ctx_ = nullptr;
  protocol::LoadedMessage report_;
};

// The ggml type of a KV cache type.
ggml_type ToGgml(loadconfig::CacheType type);

// What a load with `config` and a context of `n_ctx` for `n_seq_max`
// sequences allocates per device, as llama.cpp itself sizes it: weights,
// context (KV cache) and compute buffers. llama.cpp computes the sizes
// without allocating anything (no_alloc: what its own --fit measures, and the
// same code that sizes the real buffers). With `quiet` its log is silenced
// meanwhile, which sets llama.cpp's global log callback: only before any
// other llama.cpp user (llama_server) is running; without it the loader's
// lines go wherever the current callback sends them.
// CPU (host buffers) first. Requires InitBackendsOnce(). kUnavailable when
// this llama.cpp has no memory breakdown; any error: the load itself will
// say what is wrong.
Result<std::vector<protocol::DeviceUsage>> ProjectedMemory(const std::string& path,
                                                           const loadconfig::LlamaConfig& config, uint32_t n_ctx,
                                                           uint32_t n_seq_max, bool quiet = true);

// Maps a Status from LlamaSession::Load / InspectGguf to the protocol error code.
const char* ProtocolErrorCode(const Status& status);

}  // namespace mw::worker
