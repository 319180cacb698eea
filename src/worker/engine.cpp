#include "worker/engine.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "http_client/loopback_http.h"
#include "common/time_util.h"
#include "ggml.h"
#include "loadconfig/loadconfig.h"
#include "worker/backends.h"
#include "worker/channel.h"
#include "worker/gguf_inspect.h"
#include "worker/llama_session.h"
#include "worker/stop_watcher.h"

// llama.cpp's server entry points (tools/server/server.cpp, exported by
// libmw-llama-server.so). llama_server blocks until the server stops;
// llama_server_terminate asks a running server to stop (once it is loaded).
int llama_server(int argc, char** argv);
void llama_server_terminate();

namespace mw::worker {
namespace {

using namespace std::chrono_literals;

// How often the watcher asks whether the engine answers yet: the cold
// request waits for that answer (half an interval on average; a refused
// connect to a socket not yet bound costs microseconds).
constexpr auto kPollInterval = 2ms;
constexpr auto kHttpTimeout = 10s;
// The first decode of a huge model on a slow CPU can take long; the server's
// stall timeout (llama.cpp logs while it works) is the real bound.
constexpr auto kVerifyTimeout = 1h;
// The first decode: the prompt through every layer (a batch: the prompt
// path), then two generated tokens (greedy; the second is a one-token decode:
// the generation path). The prompt is two tokens (BOS and one word): on a CPU
// the prompt's cost grows with its length, and a longer one proves nothing
// more (SPEC §16: a cold request waits for this decode). The grammar keeps the generated text printable ASCII, so
// the answer never depends on whether the sampled bytes form valid UTF-8:
// llama.cpp's output parser answers 500 for such text (seen with random-weight
// models), which is a text problem, not an engine failure. It constrains the
// sampler only; the forward passes are the same.
constexpr const char* kVerifyRequest =
    R"({"prompt": "Hello", "n_predict": 2, "temperature": 0,)"
    R"( "grammar": "root ::= [ -~]*", "cache_prompt": false, "stream": false})";

enum class Phase { kLoading, kLoaded, kEnded };

// What the watcher thread and the thread running llama_server share.
struct Shared {
  std::mutex mu;
  Phase phase = Phase::kLoading;
  bool stop_requested = false;
};

uint64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

ggml_type GgmlCacheType(std::optional<loadconfig::CacheType> t) { return t ? ToGgml(*t) : GGML_TYPE_F16; }

// Everything the watcher needs, fixed before the engine starts.
struct Plan {
  EngineOptions options;
  loadconfig::LlamaConfig config;
  ModelShape shape;
  int64_t n_ctx = 0;
  std::vector<size_t> free_before;
  int64_t start_ms = 0;
  int64_t backends_ms = 0;  // InitBackendsOnce done (monotonic)
};

// One stderr line with the load's phases (SPEC §16), for the cold-start
// breakdown: the start on the wall clock (comparable with the server log),
// then each phase's end in ms after it. The supervisor logs it at `loaded`.
// A pre-started worker: "started" is when its `load` line came (its
// backends were loaded before, in standby: "backends +0 ms", and the line
// says how long before and how long they took).
void PrintPhases(const Plan& plan, int64_t ready_ms, int64_t decoded_ms, int64_t loaded_ms) {
  std::string line = "modelwarden-worker: phases: started " +
                     Iso8601FromUnixMillis(MonotonicToUnixMillis(plan.start_ms)) +
                     "; backends +" + std::to_string(plan.backends_ms - plan.start_ms) +
                     " ms, engine ready +" + std::to_string(ready_ms - plan.start_ms) + " ms";
  if (plan.options.prestarted_ms > 0) {
    line += " (pre-started " + std::to_string(plan.start_ms - plan.options.prestarted_ms) +
            " ms before, its backends took " +
            std::to_string(plan.options.prestart_backends_ms - plan.options.prestarted_ms) + " ms)";
  }
  if (decoded_ms > 0) line += ", first decode +" + std::to_string(decoded_ms - plan.start_ms) + " ms";
  line += ", loaded +" + std::to_string(loaded_ms - plan.start_ms) + " ms\n";
  std::fputs(line.c_str(), stderr);
}

// The error of the first decode, from the engine's answer.
std::string DescribeFailedDecode(const HttpAnswer& answer) {
  std::string message = answer.body.substr(0, 300);
  const nlohmann::json body = nlohmann::json::parse(answer.body, nullptr, false);
  if (body.is_object()) {
    auto error = body.find("error");
    if (error != body.end() && error->is_object()) {
      auto text = error->find("message");
      if (text != error->end() && text->is_string()) message = text->get<std::string>();
    }
  }
  return "the first decode failed (HTTP " + std::to_string(answer.status) + "): " + message;
}

// The context the engine really has (llama.cpp may raise a small n_ctx):
// its slots times each slot's context, from its own GET /props.
std::optional<int64_t> EngineContextSize(const EngineEndpoint& engine) {
  Result<HttpAnswer> props = HttpRequest(engine, "GET", "/props", "", kHttpTimeout);
  if (!props.ok() || props->status != 200) return std::nullopt;
  const nlohmann::json body = nlohmann::json::parse(props->body, nullptr, false);
  if (!body.is_object()) return std::nullopt;
  auto settings = body.find("default_generation_settings");
  auto slots = body.find("total_slots");
  if (settings == body.end() || !settings->is_object() || slots == body.end() || !slots->is_number_integer()) {
    return std::nullopt;
  }
  auto n_ctx = settings->find("n_ctx");
  if (n_ctx == settings->end() || !n_ctx->is_number_integer()) return std::nullopt;
  return n_ctx->get<int64_t>() * slots->get<int64_t>();
}

// Sends an error and ends the process at once (llama_server may still be
// running on the main thread: its clean-up is not waited for).
[[noreturn]] void FailNow(Shared& shared, const char* code, const std::string& message) {
  {
    std::lock_guard<std::mutex> lock(shared.mu);
    shared.phase = Phase::kEnded;
    ProtocolChannel::Get().SendError(code, message);
  }
  std::fflush(stderr);
  ::_exit(1);
}

// A stop (or stdin EOF) before `loaded`: `stopped`, exit 0 at once
// (llama.cpp's load cannot be interrupted). Returns only if the main thread
// has already ended the load (it reports).
[[noreturn]] void StopDuringLoad(Shared& shared) {
  std::unique_lock<std::mutex> lock(shared.mu);
  if (shared.phase != Phase::kLoading) {
    lock.unlock();
    for (;;) std::this_thread::sleep_for(1h);  // the main thread reports and exits
  }
  shared.phase = Phase::kEnded;
  ProtocolChannel::Get().Send(protocol::StoppedMessage{});
  std::fflush(stderr);
  ::_exit(0);
}

// The short verification decode (kVerifyRequest); a failure ends the process.
void FirstDecode(const EngineEndpoint& engine, Shared& shared) {
  Result<HttpAnswer> answer = HttpRequest(engine, "POST", "/completion", kVerifyRequest, kVerifyTimeout);
  if (!answer.ok()) {
    // The engine broke the connection: usually it is dying (the exit is
    // then what the server judges); if it lives on, this is the failure.
    std::this_thread::sleep_for(1s);
    FailNow(shared, "decode_failed", "the first decode got no answer from the engine: " + answer.status().message());
  }
  if (answer->status != 200) FailNow(shared, "decode_failed", DescribeFailedDecode(*answer));
  std::fprintf(stderr, "modelwarden-worker: first decode ok: %s\n", answer->body.substr(0, 200).c_str());
}

// The watcher: waits for the engine to answer, verifies, reports `loaded`,
// then waits for the stop. Runs on its own thread while llama_server runs
// on the main one.
// llama.cpp's own sizes of the buffers this load allocates (weights, KV
// cache, compute), per device, computed beside the load (ProjectedMemory).
using Sizing = std::shared_future<Result<std::vector<protocol::DeviceUsage>>>;

void Watch(const Plan& plan, const Sizing& sizing, const std::shared_ptr<Shared>& shared, StopWatcher& stop) {
  ProtocolChannel& channel = ProtocolChannel::Get();
  const uint64_t rss_before = ResidentBytes();
  const double expected = std::max<double>(1.0, static_cast<double>(plan.shape.weight_bytes));
  double reported = 0;
  EngineEndpoint engine;
  engine.socket_path = plan.options.socket_path;
  for (;;) {
    if (stop.WaitFor(kPollInterval)) StopDuringLoad(*shared);
    {
      std::lock_guard<std::mutex> lock(shared->mu);
      if (shared->phase != Phase::kLoading) return;  // llama_server returned: the main thread reports
    }
    const uint64_t rss = ResidentBytes();
    const double p = std::min(0.99, static_cast<double>(rss > rss_before ? rss - rss_before : 0) / expected);
    if (p >= reported + 0.01) {
      reported = p;
      channel.Send(protocol::ProgressMessage{static_cast<double>(static_cast<int>(p * 100)) / 100.0});
    }
    {
      // Nothing answers (ENOENT, ECONNREFUSED) until llama.cpp has bound its socket.
      // /health is 200 as soon as the model is loaded, a moment BEFORE
      // llama.cpp's main thread installs the handler llama_server_terminate()
      // calls and enters its task loop (whose start sets running = true):
      // a stop sent in that moment is lost, and the engine runs on until the
      // supervisor's SIGKILL. GET /slots is answered by the task loop itself,
      // so once it answers, a stop stops. (With verify = "decode" the first
      // decode waited for the loop too; with "load" nothing did.)
      Result<int> health = HttpGetStatus(engine, "/health", kHttpTimeout);
      if (health.ok() && *health == 200) {
        Result<int> slots = HttpGetStatus(engine, "/slots", kHttpTimeout);
        if (slots.ok() && *slots == 200) break;
      }
    }
  }
  const int64_t ready_ms = MonotonicMillis();
  int64_t decoded_ms = 0;
  bool decode_now = plan.options.verify == Verify::kDecode;
  if (plan.options.verify == Verify::kRequest) {
    // SPEC §16: the engine listens; the server forwards the request that
    // asked for this load, and its first token is the verification.
    {
      std::lock_guard<std::mutex> lock(shared->mu);
      if (shared->phase != Phase::kLoading) return;
      channel.Send(protocol::ReadyMessage{engine.socket_path});
    }
    std::fprintf(stderr, "modelwarden-worker: engine ready on unix:%s; waiting for the first request's token\n",
                 engine.socket_path.c_str());
    switch (stop.WaitVerification()) {
      case StopWatcher::Verification::kStopped: StopDuringLoad(*shared);
      case StopWatcher::Verification::kVerified:
        std::fputs("modelwarden-worker: first decode ok: the first request's own (its first token exists)\n", stderr);
        decoded_ms = MonotonicMillis();
        break;
      case StopWatcher::Verification::kDecodeNow:
      case StopWatcher::Verification::kNone:
        std::fputs("modelwarden-worker: the first request ended without a token: decoding now\n", stderr);
        decode_now = true;
        break;
    }
  }
  if (decode_now) {
    FirstDecode(engine, *shared);
    decoded_ms = MonotonicMillis();
  }

  protocol::LoadedMessage loaded;
  loaded.socket = engine.socket_path;
  loaded.n_ctx = EngineContextSize(engine).value_or(plan.n_ctx);
  loaded.model_size = plan.shape.weight_bytes;
  loaded.n_params = plan.shape.n_params;
  const uint64_t kv_bytes = static_cast<uint64_t>(plan.n_ctx) * static_cast<uint64_t>(plan.shape.n_layer) *
                            (ggml_row_size(GgmlCacheType(plan.config.cache_type_k), plan.shape.n_embd_k) +
                             ggml_row_size(GgmlCacheType(plan.config.cache_type_v), plan.shape.n_embd_v));
  std::vector<protocol::DeviceUsage> projected;
  if (const auto& sized = sizing.get(); sized.ok()) {
    projected = *sized;
  } else {
    std::fprintf(stderr, "modelwarden-worker: no memory breakdown from llama.cpp (%s); memory_used is estimated\n",
                 sized.status().message().c_str());
  }
  loaded.devices = !projected.empty() ? projected
                                      : MemoryUsedSince(plan.free_before, plan.shape.weight_bytes + kv_bytes);
  loaded.offloaded_layers = OffloadedLayers(plan.config.n_gpu_layers, plan.shape.n_layer, loaded.devices,
                                            &loaded.n_layers);  // SPEC §15
  loaded.load_ms = MonotonicMillis() - plan.start_ms;
  // Before `loaded`, so the supervisor finds it in the log when that arrives.
  PrintPhases(plan, ready_ms, decoded_ms, plan.start_ms + loaded.load_ms);
  {
    std::lock_guard<std::mutex> lock(shared->mu);
    if (shared->phase != Phase::kLoading) return;
    shared->phase = Phase::kLoaded;
    channel.Send(protocol::ProgressMessage{1.0});
    channel.Send(loaded);
  }
  std::fprintf(stderr, "modelwarden-worker: serving %s on unix:%s (n_ctx %lld, %lld ms); waiting for stop\n",
               plan.options.model_path.c_str(), engine.socket_path.c_str(), static_cast<long long>(plan.n_ctx),
               static_cast<long long>(loaded.load_ms));
  stop.Wait();
  {
    std::lock_guard<std::mutex> lock(shared->mu);
    if (shared->phase != Phase::kLoaded) return;
    shared->stop_requested = true;
  }
  llama_server_terminate();
}

}  // namespace

int RunEngine(const EngineOptions& options) {
  ProtocolChannel& channel = ProtocolChannel::Get();
  Plan plan;
  plan.options = options;
  plan.start_ms = MonotonicMillis();
  Result<loadconfig::LoadConfig> config = loadconfig::ValidateLoadConfig(loadconfig::Engine::kLlamaCpp, options.config_json);
  if (!config.ok()) {
    channel.SendError(ProtocolErrorCode(config.status()), config.status().message());
    return 1;
  }
  const loadconfig::LlamaConfig* llama = config->llama();
  if (llama == nullptr) {
    channel.SendError(protocol::kErrInvalidConfig, "not a llama.cpp load_config");
    return 1;
  }
  plan.config = *llama;
  Result<ModelShape> shape = ReadModelShape(options.model_path);  // file_not_found / invalid_model before the engine
  if (!shape.ok()) {
    channel.SendError(ProtocolErrorCode(shape.status()), shape.status().message());
    return 1;
  }
  plan.shape = *shape;
  plan.n_ctx = EffectiveNCtx(plan.config, plan.shape.n_ctx_train);

  InitBackendsOnce();  // llama_server needs the backend plugins loaded from our lib dir
  plan.backends_ms = MonotonicMillis();
  ClearEngineEnvironment();
  // No load-time probe decode in llama.cpp's server (SPEC §16: one decode per
  // load; cmake/llama-serverlib/engine_seq_rm_probe.cpp says which models).
  ::setenv("MW_ENGINE_NO_PROBE_DECODE", "1", 1);
  plan.free_before = FreeMemoryPerDevice();
  // memory_used as llama.cpp sizes it, compute buffers included (the formula
  // above knows only weights and KV cache). It runs beside the engine's own
  // load: run first, it was ~88 ms of a 1 GB model's ~500 ms load. It leaves
  // the log callback alone (llama_server owns it by then), so the loader's
  // lines appear in the log once more. Both the report of `loaded` and every
  // return below wait for it: no llama.cpp call outlives the process.
  Sizing sizing =
      std::async(std::launch::async, [path = options.model_path, config = plan.config,
                                      n_ctx = static_cast<uint32_t>(plan.n_ctx),
                                      n_seq = static_cast<uint32_t>(plan.config.n_parallel.value_or(1))] {
        return ProjectedMemory(path, config, n_ctx, n_seq, /*quiet=*/false);
      }).share();
  // With a GPU device the sizing runs first: two threads initialising the
  // same ggml GPU device at once (its context, its pipelines) crashed the
  // Vulkan backend (SIGSEGV on lavapipe, SPEC §15).
  if (HasGpuDevice()) sizing.wait();
  std::vector<std::string> args =
      BuildEngineArgs({options.model_path, plan.config, plan.shape.n_ctx_train, options.verify, options.socket_path,
                       /*model_pools=*/plan.shape.pooling_type > 0});
  std::string line;
  for (const std::string& a : args) line += " " + a;
  std::fprintf(stderr, "modelwarden-worker: starting llama.cpp's server:%s\n", line.c_str());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  auto shared = std::make_shared<Shared>();
  auto stop = std::make_shared<StopWatcher>();
  stop->Start();
  channel.Send(protocol::ProgressMessage{0});
  // Detached: on a failed load the main thread reports and exits while the
  // watcher may still be polling.
  std::thread([plan, sizing, shared, stop] { Watch(plan, sizing, shared, *stop); }).detach();

  const int rc = llama_server(static_cast<int>(argv.size()) - 1, argv.data());
  sizing.wait();

  std::lock_guard<std::mutex> lock(shared->mu);
  const Phase phase = shared->phase;
  shared->phase = Phase::kEnded;
  if (phase == Phase::kLoading) {
    channel.SendError(protocol::kErrModelLoadFailed,
                      "llama.cpp's server stopped during the load (status " + std::to_string(rc) +
                          "): the model or its context was refused; see the log for the reason");
    return 1;
  }
  // Loaded, then stopped: by a `stop`, or by SIGTERM (llama.cpp's handler).
  channel.Send(protocol::StoppedMessage{});
  return rc == 0 ? 0 : 1;
}

}  // namespace mw::worker
