#include "worker/engine_args.h"

#include <sys/un.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>

extern char** environ;

namespace mw::worker {
namespace {

constexpr int64_t kDefaultMaxCtx = 4096;

std::string Number(double v) {
  std::string s = std::to_string(v);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

int64_t EffectiveNCtx(const loadconfig::LlamaConfig& c, int64_t n_ctx_train) {
  if (c.n_ctx) return *c.n_ctx == 0 && n_ctx_train > 0 ? n_ctx_train : static_cast<int64_t>(*c.n_ctx);
  return n_ctx_train > 0 ? std::min(kDefaultMaxCtx, n_ctx_train) : kDefaultMaxCtx;
}

Status CheckEngineSocketPath(const std::string& path) {
  constexpr std::string_view kSuffix = ".sock";
  if (path.empty() || path.front() != '/' || path.size() <= kSuffix.size() ||
      path.compare(path.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
    return InvalidArgumentError("--socket must be an absolute path ending in .sock");
  }
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return InvalidArgumentError("--socket is longer than a Unix socket path may be (107 bytes)");
  }
  return Status::Ok();
}

std::vector<std::string> BuildEngineArgs(const EngineArgsInput& in) {
  const loadconfig::LlamaConfig& c = in.config;
  std::vector<std::string> a = {"modelwarden-worker", "--model", in.model_path, "--host", in.socket_path,
                                "--no-webui"};
  auto add = [&a](std::string flag, std::string value) {
    a.push_back(std::move(flag));
    a.push_back(std::move(value));
  };
  add("--ctx-size", std::to_string(EffectiveNCtx(c, in.n_ctx_train)));
  add("--parallel", std::to_string(c.n_parallel.value_or(1)));
  if (c.n_gpu_layers) add("--n-gpu-layers", *c.n_gpu_layers < 0 ? "all" : std::to_string(*c.n_gpu_layers));
  if (!c.devices.empty()) {
    std::string joined;
    for (const std::string& d : c.devices) joined += (joined.empty() ? "" : ",") + d;
    add("--device", joined);
  }
  if (c.main_gpu) add("--main-gpu", std::to_string(*c.main_gpu));
  if (c.split_mode) add("--split-mode", std::string(loadconfig::SplitModeName(*c.split_mode)));
  if (!c.tensor_split.empty()) {
    std::string joined;
    for (float f : c.tensor_split) joined += (joined.empty() ? "" : ",") + Number(f);
    add("--tensor-split", joined);
  }
  if (c.flash_attn) add("--flash-attn", std::string(loadconfig::FlashAttnName(*c.flash_attn)));
  if (c.n_batch) add("--batch-size", std::to_string(*c.n_batch));
  if (c.n_ubatch) add("--ubatch-size", std::to_string(*c.n_ubatch));
  if (c.n_threads) add("--threads", std::to_string(*c.n_threads));
  if (c.n_threads_batch) add("--threads-batch", std::to_string(*c.n_threads_batch));
  if (c.cache_type_k) add("--cache-type-k", std::string(loadconfig::CacheTypeName(*c.cache_type_k)));
  if (c.cache_type_v) add("--cache-type-v", std::string(loadconfig::CacheTypeName(*c.cache_type_v)));
  if (c.use_mmap) a.push_back(*c.use_mmap ? "--mmap" : "--no-mmap");
  if (c.use_mlock && *c.use_mlock) a.push_back("--mlock");
  if (c.offload_kqv) a.push_back(*c.offload_kqv ? "--kv-offload" : "--no-kv-offload");
  if (c.seed) add("--seed", std::to_string(*c.seed));
  if (c.embeddings && *c.embeddings) a.push_back("--embeddings");
  if (c.pooling) {
    add("--pooling", std::string(loadconfig::PoolingName(*c.pooling)));
  } else if (c.embeddings && *c.embeddings && !in.model_pools) {
    // SPEC §18: "embeddings": true alone serves /v1/embeddings; a generative
    // model has no pooling of its own, which /v1/embeddings refuses.
    add("--pooling", "mean");
  }
  // Never llama.cpp's warm-up decode: with verify "decode" the first decode
  // (the worker's own; with "request" the first request's) warms up the same
  // paths, and two would double the cold start (SPEC §16); with "load" no
  // forward pass runs at load time.
  a.push_back("--no-warmup");
  return a;
}

void ClearEngineEnvironment() {
  std::vector<std::string> names;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::string_view name = entry.substr(0, entry.find('='));
    if (name.rfind("LLAMA_ARG_", 0) == 0 || name == "LLAMA_API_KEY" || name.rfind("AIP_", 0) == 0) {
      names.emplace_back(name);
    }
  }
  for (const std::string& n : names) ::unsetenv(n.c_str());
}

}  // namespace mw::worker
