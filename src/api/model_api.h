// api/model_api.h: the native interface between the HTTP edge and the core.
//
// The HTTP layer (api/http_server.h) parses each request into one of the
// request structs below, calls ModelApi, and turns the answer back into JSON.
// Nothing in this header depends on a JSON or HTTP library: load_config
// travels as the text of a JSON object (validated by the core), and the core
// never sees a request it has to parse.
//
// The implementation (app/model_service.h) wires the registry, the
// compatibility state machine, the load queue, the supervisor and the crash
// classifier. Every method is thread-safe and may block (Load blocks until
// the attempt ends); none throws.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http_client/loopback_http.h"
#include "common/status.h"

namespace mw::api {

// Where a model is in its load lifecycle, independent of its compatibility status.
//   idle --Load--> queued --turn--> loading --ok--> loaded --Unload/death--> idle
//                                          \--fail--> idle
enum class LoadState { kIdle, kQueued, kLoading, kLoaded };
std::string_view LoadStateName(LoadState state);

struct AttemptView {
  int64_t id = 0;
  std::string started_at;
  std::optional<std::string> finished_at;
  std::string outcome;  // empty while open
  bool forced = false;
  std::string status_before;
  std::string status_after;
  std::optional<int> exit_code;
  std::optional<std::string> signal;  // "SIGSEGV"
  std::string category;
  std::string pattern_id;
  std::string summary;
  std::string matched_line;
  std::string log_excerpt;
  std::optional<int64_t> duration_ms;
};

struct DeviceMemory {
  std::string name;
  std::string kind;
  int64_t memory_used = 0;
};

// The memory estimate before a load (SPEC §12), GET /api/models/{name} only.
struct FitDevice {
  std::string device;
  int64_t bytes = 0;
  int64_t free_bytes = 0;
};
struct FitView {
  int64_t estimate_bytes = 0;
  int64_t n_ctx = 0;  // the context the estimate is for
  std::vector<FitDevice> per_device;
  int64_t weights = 0, kv_cache = 0, compute = 0;  // "breakdown"
  bool fits = true;
  std::optional<std::string> reason;         // why it does not fit; null when it fits
  std::optional<int64_t> largest_fitting_ctx;  // null when it fits as configured
  std::optional<int64_t> memory_used;        // while loaded: the engine's report, summed over devices
};

// A loaded model's residency (SPEC §12), GET /api/status `loaded_models` only.
struct ResidencyView {
  int64_t memory_used = 0;                     // the engine's report, summed over devices
  std::optional<std::string> last_used_at;     // ISO-8601: the end of its last /v1 request, or its load
  std::optional<std::string> keep_alive_until; // ISO-8601: when it is unloaded for idleness; null: never
  int requests_in_flight = 0;                  // /v1 requests in its engine or waiting for a slot
};

// SPEC §14: one environment class's verdict on a model (GET /api/models/{name}
// "verdicts"). On SQLite there is one, this node's.
struct ClassVerdictView {
  std::string environment_class;  // "" before this node's first probe answered
  std::string status;              // compatibility status in that class
  std::optional<std::string> notes;
  std::vector<std::string> nodes;  // nodes that made attempts of the model in that class, sorted
  int64_t total_loads = 0;
  int64_t total_failures = 0;
  bool this_node_class = false;    // the class this server reads and writes verdicts in
};

struct ModelView {
  std::string model_name;
  std::string hf_path;
  std::string cache_location;
  std::string file_path;
  std::string engine;
  std::string compatibility_status;
  std::string compatibility_notes;
  std::string load_config_json = "{}";  // text of a JSON object
  int64_t total_loads = 0;
  int64_t total_failures = 0;
  std::string created_at;
  std::string updated_at;
  std::optional<std::string> last_loaded_at;
  std::optional<std::string> last_failed_at;
  bool loaded = false;
  LoadState load_state = LoadState::kIdle;
  std::optional<double> load_progress;
  std::optional<std::string> last_error;
  // SPEC §19: when the health watch last stopped its engine for hanging (ISO-8601), or nullopt.
  std::optional<std::string> last_hung_at;
  std::vector<DeviceMemory> memory;  // per device, while loaded
  std::optional<int64_t> n_layers, offloaded_layers;  // while loaded, when the engine says (SPEC §15)
  // SPEC §11: the environment fingerprint its current status was decided
  // under (unset: decided by hand, reverted, or before fingerprints), and
  // whether that environment differs from today's in a component that
  // matters to this model.
  std::optional<std::string> verdict_fingerprint;
  bool verdict_stale = false;
  std::optional<std::string> verdict_stale_reason;
  std::vector<AttemptView> attempts;  // newest first; filled by GetModel only
  std::vector<ClassVerdictView> verdicts;  // GetModel only: this node's class first
  std::optional<FitView> fit;         // GetModel only; none for a command engine or an unreadable file
  std::optional<ResidencyView> residency;  // GetStatus's loaded_models only
};

struct RegisterRequest {
  std::string model_name;
  std::string hf_path;
  std::string cache_location;                   // empty: "primary"
  std::optional<std::string> file_path;
  std::optional<std::string> engine;            // default "llama.cpp"
  std::optional<std::string> load_config_json;  // text of a JSON object
};

struct ConfigPatch {
  std::optional<std::string> compatibility_status;
  std::optional<std::string> compatibility_notes;
  std::optional<std::string> load_config_json;
};

struct Classification {
  std::string category;
  std::string pattern_id;
  std::string summary;
  std::string matched_line;
  std::string suggested_load_config_json;  // empty: none
  std::string outcome;                     // attempt outcome: failed, crashed, timeout, ...
  std::optional<int> exit_code;
  std::optional<std::string> signal;
  std::string log_excerpt;
};

// auto_fix (SPEC §11): the load failed once and was retried at once with a
// computed load_config.
struct AutoFix {
  std::string changed_json;  // JSON object: each changed key with its new value
  std::string changed_text;  // "n_ctx 16777216 → 2048", for messages and notes
  std::optional<int64_t> first_attempt_id;
  Classification first_failure;  // the first attempt's failure
};

struct LoadResult {
  enum class Kind {
    kLoaded,         // 200: loaded by this or a joined attempt
    kAlreadyLoaded,  // 200: was loaded already, no attempt
    kIncompatible,   // 409 model_incompatible
    kFailed,         // 422 load_failed
    kInsufficientMemory,  // 507 insufficient_memory: refused before any attempt (body adds "fit")
    kModelsBusy,     // 503 models_busy: max_loaded_models reached and every loaded model has requests in flight
  };
  Kind kind = Kind::kLoaded;
  ModelView model;
  std::string warning;  // non-empty for a degraded model that loaded
  std::string notes;    // the model's notes (kIncompatible)
  std::string message;  // human text for kIncompatible / kFailed / kInsufficientMemory / kModelsBusy
  std::optional<int64_t> attempt_id;
  bool joined = false;  // joined an attempt already in progress
  Classification classification;  // kFailed
  std::optional<AutoFix> auto_fix;   // kLoaded (healed) or kFailed (the retry failed too)
  std::string adjusted_json;         // auto_fit (SPEC §12): unset settings it chose, JSON object; empty: none
  std::vector<std::string> busy_models;  // kModelsBusy: the loaded models with requests in flight
  // kLoaded / kAlreadyLoaded: the engine that was loaded (the /v1 edge
  // proxies to it without asking again): its pid, and where it answers
  // HTTP (empty: it does not).
  int engine_pid = 0;
  EngineEndpoint engine;
};

struct DeviceInfo {
  std::string name;  // "id (description)": what the environment fingerprint names
  std::string kind;  // "cpu", "gpu", ...
  int64_t memory_total = 0;
  int64_t memory_free = 0;
  // SPEC §15.
  std::string id;           // the engine's device name: "CPU", "CUDA0", "Vulkan0"
  std::string backend;      // "CPU", "CUDA", "Vulkan", "ROCm", "Metal"...
  std::string description;  // e.g. "NVIDIA H200", "llvmpipe (LLVM 15.0.6, 256 bits)"
  std::optional<std::string> driver;  // driver version when known
};

// A GPU backend library the probe found and what became of it (SPEC §15).
struct BackendView {
  std::string name;    // "CUDA", "Vulkan", ...
  std::string state;   // "loaded" | "skipped" | "failed"
  std::string reason;  // "" when loaded
  int64_t devices = 0;
};

// SPEC §11: GET /api/status -> "environment".
struct EnvironmentView {
  std::string fingerprint;
  std::map<std::string, std::string> components;
  bool failing = false;                 // "state": "failing" | "ok"
  std::optional<std::string> reason;    // set while failing
  std::optional<std::string> since;     // ISO-8601 UTC, set while failing
  std::string retest_stale = "ask";     // the server option
};

struct QueueEntry {
  std::string model_name;
  LoadState state = LoadState::kQueued;
  std::optional<double> progress;
};

// GET /api/status "memory": the machine's memory now (SPEC §12).
struct MemorySummary {
  int64_t in_use = 0;  // held by loaded models, as their engines report it
  int64_t free = 0;    // free now: RAM's MemAvailable plus each GPU's free memory
};

// SPEC §14: one server of the fleet sharing the registry (GET /api/nodes).
struct NodeView {
  std::string node_id;
  std::string host;
  std::string environment_class;  // "" until the node's first probe answered
  std::string lease_state;        // "held", "expired" (another node closed its attempts), "stopped" (left)
  bool live = false;              // held and heard from within lease_s
  int64_t lease_s = 0;
  std::string heartbeat_at;       // ISO-8601 UTC, the database's clock
  int64_t heartbeat_age_ms = 0;   // how long ago, on the database's clock
  std::string started_at;         // ISO-8601 UTC, when it last joined
  std::vector<std::string> loaded_models;  // as of its last heartbeat
  std::optional<std::string> expired_by;   // the node that closed its attempts after its lease expired
  std::string advertise_url;      // SPEC §21: where its peers reach it; "" none (never routed to)
};

struct NodeList {
  std::string this_node;  // this server's node_id ("" when it has not joined the fleet)
  std::vector<NodeView> nodes;  // by node_id
  int64_t live = 0;             // how many are live
};

// GET /api/status "node": this server in the fleet (SPEC §14).
struct NodeSummary {
  std::string node_id;            // "" when it has not joined
  std::string environment_class;  // "" until the first probe answered
  int64_t nodes_live = 0;
};

struct ServerStatus {
  std::string version;
  int64_t uptime_s = 0;
  std::vector<DeviceInfo> devices;
  std::string devices_error;  // non-empty when the probe failed or a backend failed to initialise
  std::vector<BackendView> backends;
  std::vector<ModelView> loaded_models;
  std::vector<QueueEntry> load_queue;
  std::map<std::string, int64_t> counts;  // by compatibility status, all five present
  std::vector<std::string> engine_presets;  // [engines.NAME] of the configuration, names only
  EnvironmentView environment;
  MemorySummary memory;
  int max_loaded_models = 0;  // the server option (0: as many as fit)
  NodeSummary node;
};

// Pushed to subscribers (the SSE endpoint) whenever a model's status,
// load_state or progress changes, and whenever the counts change.
struct Event {
  enum class Kind { kModel, kStatus, kEnvironment };
  Kind kind = Kind::kModel;
  ModelView model;                        // kModel
  std::map<std::string, int64_t> counts;  // kStatus
  EnvironmentView environment;            // kEnvironment (SPEC §11: on every change of state)
};
using EventListener = std::function<void(const Event&)>;

// --- /v1 inference (SPEC §10) ---

// What the gate needs to know about one /v1 request (the body itself goes
// to the engine untouched by the core).
struct InferenceRequest {
  std::string model_name;
  std::optional<int64_t> keep_alive_ms;  // the request's keep_alive (-1 never, 0 at once); nullopt: the server's
  bool embeddings = false;               // POST /v1/embeddings
  std::optional<int64_t> timeout_ms;     // the request's "timeout" (SPEC §19); nullopt: request_timeout_s
};

// A request's place in a loaded model's engine. While it exists the request
// holds one of the model's n_parallel slots; destroying it frees the slot
// and (when it was the last) starts the model's idle clock (keep_alive).
class InferenceLease {
 public:
  virtual ~InferenceLease() = default;
  EngineEndpoint engine;  // where the engine answers OpenAI paths (a Unix socket, or a port and its key)
  int engine_pid = 0;   // for AwaitEngineDeath
  std::string warning;  // non-empty when the model is degraded (X-Modelwarden-Warning)
  std::string auto_fix_json;  // the load this request made was healed (X-Modelwarden-Auto-Fix), compact JSON
  std::string adjusted_json;  // the load this request made was fitted (X-Modelwarden-Adjusted), compact JSON
  // SPEC §19: the generation may take this long from when the engine is
  // asked (the request's "timeout", at most request_timeout_s); past it the
  // edge cancels it (closes the engine connection) and answers 504.
  int64_t timeout_ms = 600000;
  // The edge cancelled the generation past timeout_ms (counted in metrics).
  virtual void TimedOut() {}
  // SPEC §16: the engine's answer carries its first token: the first SSE
  // event with data that is not an error, or a whole 200 plain answer (not
  // the 200 head: llama.cpp sends it before the prompt runs, and SSE pings
  // while it waits). For a request whose own first token verifies its
  // model's load, this verifies it; a lease that ends without it has the
  // worker run its own short decode.
  virtual void FirstToken() {}
  // The engine broke the connection before its answer was complete: for a
  // request that was to verify its model's load, that load's failure
  // (classified, kFailed), once known within wait_ms; else nullopt.
  virtual std::optional<LoadResult> LoadFailure(int64_t /*wait_ms*/) { return std::nullopt; }
};

// How an engine that broke a request's connection ended (AwaitEngineDeath).
struct EngineEnd {
  bool hung = false;    // stopped by the health watch (SPEC §19): 502 engine_hung; else it crashed
  std::string summary;  // the classified summary (the model's last_error)
};

struct InferenceAdmission {
  enum class Kind {
    kReady,         // lease set
    kIncompatible,  // 409 model_incompatible (load.message has the notes); an inference never forces
    kLoadFailed,    // the on-demand load failed (load.classification)
    kQueueFull,     // 429 queue_full (message)
    kInsufficientMemory,  // 507 insufficient_memory: the on-demand load would not fit (load.message)
    kModelsBusy,    // 503 models_busy: no room to load it, every loaded model is busy (message)
    kEngineHung,    // 502 engine_hung: the engine it waited for was stopped as hung meanwhile (message, SPEC §19)
  };
  Kind kind = Kind::kReady;
  std::unique_ptr<InferenceLease> lease;
  LoadResult load;
  std::string message;
};

class ModelApi {
 public:
  virtual ~ModelApi() = default;

  // All models, ordered by name.
  [[nodiscard]] virtual Result<std::vector<ModelView>> ListModels() = 0;
  // A number that grows whenever anything ListModels() returns may have
  // changed, bumped only after the change is visible to ListModels(): a list
  // read after reading value V is at least as new as V. The HTTP layer reuses
  // the body it encoded while the value stays the same. nullopt (the
  // default): not tracked, every list is built afresh.
  [[nodiscard]] virtual std::optional<uint64_t> ModelListVersion() { return std::nullopt; }
  // One model with its recent attempts. kNotFound; kInvalidArgument for a bad name.
  [[nodiscard]] virtual Result<ModelView> GetModel(const std::string& name) = 0;
  // kInvalidArgument (name, engine, location, file, load_config), kAlreadyExists;
  // kDataLoss: a llama.cpp model file that is not a GGUF (HTTP 400 invalid_model, SPEC §18).
  [[nodiscard]] virtual Result<ModelView> RegisterModel(const RegisterRequest& request) = 0;
  // kNotFound; kInvalidArgument (status "testing" or unknown, bad load_config).
  [[nodiscard]] virtual Result<ModelView> UpdateConfig(const std::string& name, const ConfigPatch& patch) = 0;
  // Unloads first. kNotFound; kFailedPrecondition while an attempt is running.
  [[nodiscard]] virtual Status DeleteModel(const std::string& name) = 0;
  // Blocks until the model is loaded or the attempt failed (see LoadResult).
  // Errors: kNotFound, kInvalidArgument, kUnavailable (shutting down).
  [[nodiscard]] virtual Result<LoadResult> Load(const std::string& name, bool force) = 0;
  // Stops the model's worker; OK if it was not loaded. kNotFound.
  [[nodiscard]] virtual Result<ModelView> Unload(const std::string& name) = 0;
  [[nodiscard]] virtual Result<ServerStatus> GetStatus() = 0;
  // SPEC §14: every node of the fleet sharing the registry, by node_id.
  // Errors: the registry's (kUnavailable when it cannot be read).
  [[nodiscard]] virtual Result<NodeList> ListNodes() = 0;
  // SPEC §11: status -> unknown (a note says why), then a load with the same
  // answers as Load(name, false). Errors as Load; kFailedPrecondition while
  // an attempt of it runs.
  [[nodiscard]] virtual Result<LoadResult> Retest(const std::string& name) {
    (void)name;
    return InternalError("retest is not supported by this server");
  }
  // SPEC §11: POST /api/environment/reset: the environment is ok again.
  [[nodiscard]] virtual Result<EnvironmentView> ResetEnvironment() {
    return InternalError("environment reset is not supported by this server");
  }
  // Returns a subscription id; the listener runs on the notifying thread and must not block.
  virtual int64_t Subscribe(EventListener listener) = 0;
  virtual void Unsubscribe(int64_t id) = 0;

  // /v1: admits a request to the model's engine, loading the model first if
  // needed exactly as Load(name, /*force=*/false) does (queue, durable
  // testing, classification, verdict, events). Blocks while it waits for a
  // slot or the load. Errors: kNotFound (no such model), kInvalidArgument
  // (embeddings asked of a model without load_config "embeddings": true),
  // kFailedPrecondition (the model's engine cannot serve HTTP),
  // kUnavailable (shutting down, or the engine stopped right after loading).
  [[nodiscard]] virtual Result<InferenceAdmission> BeginInference(const InferenceRequest& request) {
    (void)request;
    return UnavailableError("this server does not serve /v1");
  }
  // After the engine broke a request's connection: waits up to `timeout` for
  // the death of the engine process `pid` of `model_name` to be recorded, and
  // returns its classified summary (the model's last_error) and whether the
  // health watch stopped it as hung; nullopt if it did not die in that time.
  [[nodiscard]] virtual std::optional<EngineEnd> AwaitEngineDeath(const std::string& model_name, int pid,
                                                                  int64_t timeout_ms) {
    (void)model_name;
    (void)pid;
    (void)timeout_ms;
    return std::nullopt;
  }
};

}  // namespace mw::api
