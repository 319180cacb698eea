// Supervisor: model loads in supervised processes, seen from the server.
//
// One *session* per model name. The sessions are the process bookkeeping
// (pid, pipes, watcher), kept here; the server's owner of each model's live
// state is app/ModelRuntimeTable, which drives this: a model is loaded for
// the server when the runtime says so (a load's end asks FindLoaded under
// the runtime's lock), and a death or an unload is marked there.
//
//
//   Load() ──spawn──> loading ──ready──> loaded ──Unload()──> (gone, stop: never a failure)
//                        │                  └──dies on its own──> (gone, on_unexpected_exit fires)
//                        └──fails / times out / Unload()──> (gone, Load() returns the report)
//
// Engines (SPEC §5, §6):
//   kLlamaCpp  `modelwarden-worker load --model PATH --config JSON --verify V
//              --socket SOCK` (V: decode, load or request; see LoadRequest), with the protocol pipe on fd 3
//              (docs/worker-protocol.md); SOCK is a fresh name in the runtime
//              directory (runtime_dir.h: mode 0700). The
//              worker runs llama.cpp's own server code on the model (the engine
//              that serves is the engine that was judged). Ready when the
//              worker sends `loaded` (after the first decode with verify
//              "decode"); a worker `error` ends the load (failed).
//   kCommand   argv from load_config with {model_path}, {model_name}, {port}
//              (a free loopback port) and {api_key} (a per-load random
//              secret, 64 hex digits) filled in anywhere inside each argument,
//              in one pass (a value is never expanded again: a file named
//              "x{port}.gguf" reaches the program verbatim); env
//              MODELWARDEN_LOAD_CONFIG = the whole load_config, and the
//              secret as MODELWARDEN_ENGINE_API_KEY and LLAMA_API_KEY (which
//              llama.cpp's llama-server checks). Ready when `ready_pattern`
//              (RE2, partial match) matches an output line, or when GET
//              `health_path` on 127.0.0.1:{port} answers 200 (checked every
//              health_interval; the request carries the secret). With neither, the
//              process is taken as ready once it has run `command_settle`
//              (default 2 s) without exiting: a server that gives no sign can
//              only be judged by staying up.
//
// THE SERVING CONTRACT (what the /v1 edge relies on): a loaded model's engine
// answers OpenAI paths (/v1/chat/completions, /v1/completions,
// /v1/embeddings, /v1/models) and GET /health at LoadedModel.endpoint: the
// Unix socket llama.cpp's server listens on inside the worker (confirmed in
// `loaded`), or 127.0.0.1:{port} of a command engine (meaningful only when
// its argv uses {port}) with its secret, which every request carries as
// "Authorization: Bearer <secret>" (an engine that checks it is reachable
// by nobody else; one that ignores it is reachable by every local user).
//
// Load timeout (stall-based): the process is killed, outcome kTimeout, when
// it shows no sign of life for load_timeout_s (request's, else the
// default 300 s). Signs of life restart the clock: every protocol message
// (progress reports) and every output line, for both engines, since a loader
// that is still printing is still working.
// Outcomes of a load that did not succeed:
//   kCrashed    the process died of a signal (SIGSEGV, SIGABRT, the OOM
//               killer's SIGKILL...), with or without an error message first
//   kFailed     it exited (any code, even 0) before being ready, sent a worker
//               `error`, could not be executed, or broke the protocol
//               (garbage line, or closed its protocol pipe while running:
//               it is then killed)
//   kTimeout    killed by us after the stall timeout
//   kCancelled  Unload() or Shutdown() during the load (never a failure)
//
// Thread-safety: every method is thread-safe. Load() blocks its caller until
// the load ends; loads of different models may run concurrently (the server's
// load queue decides whether they do). The LoadObserver runs on the thread
// that called Load(). on_unexpected_exit runs on a supervisor thread, after
// the session is removed (so IsLoaded() is already false), with no
// supervisor lock held: it may call any method.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http_client/loopback_http.h"
#include "common/status.h"
#include "protocol/protocol.h"
#include "supervisor/child_process.h"

namespace mw {

namespace supervisor_internal {
struct Session;
}  // namespace supervisor_internal

enum class EngineKind { kLlamaCpp, kCommand };
// "llama.cpp" | "command"
std::string_view EngineKindName(EngineKind engine);
// kInvalidArgument for anything else.
Result<EngineKind> ParseEngineKind(std::string_view name);

// What to load, in native types. The caller has validated load_config (with
// src/loadconfig/) and copied the fields the supervisor needs out of it.
struct LoadRequest {
  std::string model_name;               // one session per name
  std::string model_path;               // the model file (or directory)
  EngineKind engine = EngineKind::kLlamaCpp;
  std::string load_config_json = "{}";  // verbatim: worker --config / MODELWARDEN_LOAD_CONFIG
  std::optional<int> load_timeout_s;    // load_config.load_timeout_s, if set
  // kLlamaCpp only: SPEC §10 server option `verify`: "decode" (a short prompt
  // runs through the engine before the load counts as loaded) or "load"; or
  // "request" (SPEC §16, an on-demand load): LoadObserver::on_ready fires
  // when the engine listens, and the load is verified by Verify().
  std::string verify = "decode";
  // kCommand only:
  std::vector<std::string> argv;
  std::string ready_pattern;            // RE2; empty: none
  std::string health_path;              // e.g. "/health"; empty: none
  std::vector<std::pair<std::string, std::string>> env;  // load_config.env
};

enum class LoadOutcome { kSuccess, kFailed, kCrashed, kTimeout, kCancelled };
// "success" | "failed" | "crashed" | "timeout" | "cancelled" (the attempt outcome names)
std::string_view LoadOutcomeName(LoadOutcome outcome);

// error_code values set by the supervisor itself (worker codes pass through).
inline constexpr const char* kLoadErrExecFailed = "exec_failed";          // could not execute argv[0]
inline constexpr const char* kLoadErrTimeout = "load_timeout";            // stalled past the load timeout
inline constexpr const char* kLoadErrExited = "exited_before_ready";      // ended without a worker error
inline constexpr const char* kLoadErrProtocol = "protocol_error";         // garbage on the protocol pipe
inline constexpr const char* kLoadErrProtocolClosed = "protocol_closed";  // closed fd 3 while running
inline constexpr const char* kLoadErrCancelled = "cancelled";

struct LoadReport {
  LoadOutcome outcome = LoadOutcome::kFailed;
  int64_t duration_ms = 0;  // from spawn to the end of the load
  int pid = 0;              // 0 if never started
  // kSuccess:
  std::vector<protocol::DeviceUsage> devices;  // llama.cpp: memory per device
  int64_t n_ctx = 0;
  int64_t load_ms = 0;     // the worker's own figure; command: duration_ms
  uint64_t model_size = 0;
  uint64_t n_params = 0;
  EngineEndpoint endpoint;  // where the engine answers HTTP (see the serving contract)
  int64_t n_layers = 0, offloaded_layers = 0;  // SPEC §15 (0/0: not reported)
  // Not kSuccess:
  std::optional<ProcessExit> exit;  // how the process ended (absent: never started)
  std::string error_code;           // worker code, or a kLoadErr* value
  std::string error_message;        // one sentence for notes and logs
  // Every outcome: the captured stdout+stderr (last log_capacity bytes).
  std::string log_tail;

  bool ok() const { return outcome == LoadOutcome::kSuccess; }
  std::optional<int> exit_code() const;          // set when it exited normally
  std::optional<std::string> signal_name() const;  // "SIGSEGV" when killed by a signal
};

// Called on the Load() caller's thread while the load runs.
struct LoadObserver {
  std::function<void(int pid)> on_started;
  std::function<void(double progress)> on_progress;  // 0..1, llama.cpp worker reports only
  // verify "request" only: the engine listens at `endpoint` (the worker's
  // `ready`) but the load is not verified yet; Load() goes on waiting until
  // Verify() (or a failure) ends it.
  std::function<void(int pid, const EngineEndpoint& endpoint)> on_ready;
};

// A loaded process that ended without being asked to.
struct UnexpectedExit {
  std::string model_name;
  EngineKind engine = EngineKind::kLlamaCpp;
  int pid = 0;
  ProcessExit exit;
  std::string log_tail;
  int64_t uptime_ms = 0;  // since it became loaded
};

struct LoadedModel {
  std::string model_name;
  EngineKind engine = EngineKind::kLlamaCpp;
  int pid = 0;
  EngineEndpoint endpoint;  // where the engine answers OpenAI paths (the serving contract above)
  std::vector<protocol::DeviceUsage> devices;
  int64_t n_ctx = 0;
  int64_t load_ms = 0;
  std::string loaded_at;  // ISO-8601
  int64_t n_layers = 0, offloaded_layers = 0;  // SPEC §15 (0/0: not reported)
};

struct SupervisorOptions {
  std::string worker_path;  // empty: DefaultHelperPath("modelwarden-worker")
  std::string keeper_path;  // empty: DefaultHelperPath("mw-keeper")
  // Where llama.cpp engines' sockets go (PrepareRuntimeDir, at the first
  // load): e.g. <data_dir>/run; empty: a private directory under
  // $XDG_RUNTIME_DIR or /tmp, removed by the destructor.
  std::string runtime_dir;
  int default_load_timeout_s = 300;
  std::chrono::milliseconds command_settle{2000};
  std::chrono::milliseconds health_interval{100};
  size_t log_capacity = kDefaultLogCapacity;
  // Unload/shutdown of a worker: "stop" on stdin, then SIGTERM, then SIGKILL.
  StopOptions worker_stop{"stop", std::chrono::milliseconds(10000), std::chrono::milliseconds(5000),
                          std::chrono::milliseconds(5000)};
  // Unload/shutdown of a command engine: stdin closed, SIGTERM at once.
  StopOptions command_stop{"", std::chrono::milliseconds(0), std::chrono::milliseconds(10000),
                           std::chrono::milliseconds(5000)};
  std::function<void(const UnexpectedExit&)> on_unexpected_exit;
  // A pre-started worker (SPEC §16): one llama.cpp worker process kept
  // started ahead (`modelwarden-worker load --standby --socket SOCK`, under
  // its own mw-keeper like every load: the same tree, lifeline and
  // PR_SET_PDEATHSIG, so a server SIGKILL takes it too), its libraries and
  // ggml backends loaded, waiting for a model on stdin. A llama.cpp Load()
  // hands the model to it (one `load` line) when it has said `standby`
  // (waiting up to 5 s for that), is alive and runs the worker binary as it is
  // on disk now; else it is killed and the load spawns a worker as usual.
  // After each llama.cpp Load() a new one is started (one use each: its log
  // is that load's output only, from the worker's start); PrepareRuntime()
  // starts the first. A worker that ends or answers without ever saying
  // `standby` (one that does not know the option) turns this off.
  bool prestart_worker = false;
};

class Supervisor {
 public:
  explicit Supervisor(SupervisorOptions options);
  // Shutdown(). Never throws.
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Starts the model's process and blocks until it is loaded, fails, times
  // out or is cancelled; every such end is a LoadReport (the attempt's
  // outcome). On kSuccess the process stays up as the model's session until
  // Unload(), Shutdown() or its own death. A Status error means no attempt
  // was made: kAlreadyExists (this name is loading or loaded),
  // kInvalidArgument (empty name/argv, bad ready_pattern, timeout <= 0),
  // kFailedPrecondition (modelwarden-worker or mw-keeper missing, or the
  // runtime directory unusable: an installation problem, not the model's),
  // kUnavailable (shutting down).
  Result<LoadReport> Load(const LoadRequest& request, const LoadObserver& observer = {});

  // Stops the model's process gracefully (worker_stop / command_stop) and
  // waits until it and its children are gone; a load in progress is
  // cancelled (its Load() returns kCancelled). Returns how it ended.
  // kNotFound if the name has no session. Never reported as a failure.
  Result<ProcessExit> Unload(std::string_view model_name);
  // The same for a loaded engine that stopped answering (SPEC §19), stopped
  // with `how` (e.g. SIGTERM at once, then SIGKILL), if the model's process
  // is still `pid`; kNotFound if not (unloaded, died, reloaded meanwhile).
  Result<ProcessExit> StopHung(std::string_view model_name, int pid, const StopOptions& how);

  // verify "request" (SPEC §16): after on_ready, the request that asked for
  // the load tells how it went. first_token: its first token exists, the load
  // is verified (the worker sends `loaded` without a decode of its own); else
  // it ended without one (client gone, an error answer) and the worker runs
  // its short decode now. Until then Load() waits (its stall timeout runs);
  // a crash meanwhile is a failed load as always. kNotFound if the model's
  // load with `pid` is not waiting for this (ended, or another attempt).
  Status Verify(std::string_view model_name, int pid, bool first_token);

  // Prepares the runtime directory (SupervisorOptions::runtime_dir) now,
  // rather than at the first load: its errors (kFailedPrecondition) show at
  // start-up. Idempotent; thread-safe.
  Status PrepareRuntime();

  bool IsLoaded(std::string_view model_name) const;
  // Loaded sessions (not those still loading), sorted by name.
  std::vector<LoadedModel> Loaded() const;
  std::optional<LoadedModel> FindLoaded(std::string_view model_name) const;
  // The captured output of a session (loading or loaded); nullopt if none.
  std::optional<std::string> LogTail(std::string_view model_name) const;

  // Stops every session concurrently (loads are cancelled) and refuses new
  // loads; waits for on_unexpected_exit calls in progress, and fires no new
  // one after it returns (so the owner may then destroy what the callback
  // uses). Idempotent.
  void Shutdown();

  // Runs a one-shot worker command (`probe`, `inspect PATH`) and returns the
  // message it answered with (an ErrorMessage is a value, not a Status).
  // kUnavailable with the exit and last log line if it sent nothing,
  // kDeadlineExceeded after `timeout` (it is killed), kFailedPrecondition if
  // the worker is missing.
  Result<protocol::Message> RunWorkerCommand(const std::vector<std::string>& args,
                                             std::chrono::milliseconds timeout);
  // The same for any program (argv[0] a path or a name on PATH), e.g. the
  // configured probe command: the answer is the first message it writes on
  // the protocol pipe (fd MW_PROTOCOL_FD), else the last line of its output
  // that is one. `what` names it in errors. Shutdown() kills it and answers
  // kUnavailable at once.
  Result<protocol::Message> RunOneShot(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                                       const std::string& what);

  struct Impl;

 private:
  // After a load's RunLoad: a failed session ends; a new worker is pre-started.
  void EndLoad(const std::shared_ptr<supervisor_internal::Session>& session, const LoadReport& report);
  std::shared_ptr<Impl> impl_;
};

}  // namespace mw
