// config: the server's configuration, from a TOML file and command-line flags.
//
// Precedence (highest first): command-line flags, the TOML file, defaults.
// The file is the one named by --config (an error if it does not exist), else
// the default per-user file ($XDG_CONFIG_HOME/modelwarden/config.toml or
// ~/.config/modelwarden/config.toml) when it exists, else none.
//
// Example file (every key optional):
//   [server]
//   host = "127.0.0.1"
//   port = 8080
//   data_dir = "/var/lib/modelwarden"   # holds registry.db
//   registry = "postgresql://mw@db.lan/modelwarden"  # keep the registry in PostgreSQL (SPEC §14);
//                                       # default: SQLite file <data_dir>/registry.db
//   api_key = "..."                     # required when host is not loopback
//   load_timeout_s = 300
//   crash_patterns = "patterns.toml"    # extra classifier catalog entries (format: data/crash_patterns.toml)
//   worker = "/opt/modelwarden/bin/modelwarden-worker"
//   verify = "decode"                   # or "load": see Config::verify
//   log_format = "text"                 # or "json": one JSON object per log line
//   allow_api_commands = false          # true: API clients may set argv/env of command models (unsafe)
//   allowed_hosts = ["mybox.lan"]       # extra names accepted in the Host header ("*": any)
//   allowed_origins = ["http://localhost:3000"]  # browser apps allowed to call the API (CORS)
//   retest_stale = "ask"                # "auto": a stale incompatible verdict gets one unforced attempt (SPEC §11)
//   probe_command = ["/opt/probe", "x"] # lists the devices (default: modelwarden-worker probe; format: docs/operations.md)
//   probe_interval_s = 30               # re-probe the devices this often (and after each device-level failure)
//   lease_s = 30                        # a fleet node silent this long loses its lease (SPEC §14)
//   registry_connect_timeout_s = 5      # PostgreSQL: give up connecting after this long (issue 26)
//   registry_statement_timeout_s = 10   # PostgreSQL: a statement (and its answer) may take this long
//   registry_keepalive_s = 10           # PostgreSQL: TCP keepalive idle time; a dead peer is noticed in ~2x
//   advertise_url = "http://10.0.0.5:8080"  # where the fleet's other nodes reach this one (SPEC §21; default
//                                       # http://host:port when host is not a wildcard, else none)
//   route_to_peers = true               # /v1 and loads for a model another node serves better go there
//                                       # (default: true with a PostgreSQL registry, false otherwise)
//   max_queue = 64                      # /v1: requests waiting per model beyond n_parallel
//   keep_alive = "5m"                   # /v1: idle unload ("0" after each response, "-1" never)
//   health_interval_s = 10              # probe every loaded engine's /health this often (SPEC §19)
//   hang_timeout_s = 60                 # silent, or a request with no progress, this long: stopped as hung
//   request_timeout_s = 600             # /v1: 504 request_timeout past this (a request's "timeout" may lower it)
//   [engines.vllm]                      # a command-engine preset: the only programs the server runs
//   argv = ["/opt/vllm/bin/serve", "{model_path}", "--port", "{port}"]
//   health_path = "/health"             # or ready_pattern = "..."
//   env = { CUDA_VISIBLE_DEVICES = "0" }
//   memory_margin_mib = 1024            # kept free on each device by the fit check (default 1024 per GPU, 512 for RAM)
//   auto_fix = true                     # one retry with the computed suggestion after a failed load (SPEC §11)
//   auto_fit = true                     # lower unset n_gpu_layers / n_ctx so a load fits (SPEC §12)
//   max_loaded_models = 0               # models loaded at once (0: as many as fit); LRU idle ones are unloaded to make room
//   hf_endpoint = "https://huggingface.co"  # where `pull` downloads from (SPEC §17)
//   hf_token = "hf_..."                 # for gated repositories (else $HF_TOKEN)
//   scan_on_start = false               # register the GGUF files of the locations at start-up
//   [locations]
//   primary = "/models"                 # default <data_dir>/models
//   hf = "~/.cache/huggingface/hub"
// (For convenience the [server] keys are also accepted at the top level.)
// Relative paths in the file are relative to the file's directory; "~/" is
// the user's home.
//
// Everything here is pure parsing with no side effects (no directories are
// created); thread-compatible.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/status.h"

namespace mw::config {

inline constexpr int kDefaultPort = 8080;
inline constexpr int kDefaultLoadTimeoutS = 300;
inline constexpr std::string_view kDefaultHost = "127.0.0.1";
inline constexpr std::string_view kPrimaryLocation = "primary";
inline constexpr int kDefaultMaxQueue = 64;
inline constexpr int64_t kDefaultKeepAliveMs = 5 * 60 * 1000;  // "5m"
inline constexpr int kDefaultProbeIntervalS = 30;
inline constexpr int kDefaultHealthIntervalS = 10;   // SPEC §19
inline constexpr int kDefaultHangTimeoutS = 60;
inline constexpr int kDefaultRequestTimeoutS = 600;
inline constexpr int kDefaultLeaseS = 30;
// PostgreSQL connections (issue 26; the reasons for these defaults are in
// docs/operations.md): all well under lease_s, so a stuck database shows as
// a clear 503 long before any node's lease runs out.
inline constexpr int kDefaultRegistryConnectTimeoutS = 5;
inline constexpr int kDefaultRegistryStatementTimeoutS = 10;
inline constexpr int kDefaultRegistryKeepaliveS = 10;

// A named directory that may hold model files.
struct Location {
  std::string name;
  std::filesystem::path path;
};

// A program the server may run for `command` models (SPEC §9.1): only the
// configuration file defines these; API clients name one with
// load_config {"preset": NAME}.
struct EnginePreset {
  std::string name;
  std::vector<std::string> argv;  // non-empty; {model_path} {model_name} {port} filled in at load
  std::string ready_pattern;      // empty: none
  std::string health_path;        // empty: none
  std::vector<std::pair<std::string, std::string>> env;
};

struct Config {
  std::string host{kDefaultHost};
  int port = kDefaultPort;  // 0 = any free port (the server prints the one it got)
  std::filesystem::path data_dir;
  // SPEC §14: a postgresql:// (or postgres://) URL; empty: the SQLite file
  // RegistryPath(). Restart-only.
  std::string registry_url;
  // "primary" is always present and always first.
  std::vector<Location> locations;
  int load_timeout_s = kDefaultLoadTimeoutS;
  std::filesystem::path crash_patterns_file;  // empty: built-in catalog only
  std::string api_key;                        // empty: no authentication
  std::filesystem::path worker_path;          // empty: next to the modelwarden binary
  // SPEC §10: "decode" (default): a llama.cpp load counts as a success only
  // after a short prompt ran through the engine; "load": no first decode.
  std::string verify = "decode";
  std::filesystem::path config_file;          // the file that was read; empty if none
  // Browser and local-attacker defences (SPEC §9.1).
  std::vector<EnginePreset> engine_presets;   // sorted by name
  bool allow_api_commands = false;            // API may set argv/env of command models
  std::vector<std::string> allowed_hosts;     // extra Host names; "*" = any
  std::vector<std::string> allowed_origins;   // origins given CORS and allowed to change state
  // Fit before load (SPEC §12): memory kept free on every device; unset =
  // 1024 MiB per GPU, 512 MiB of RAM.
  std::optional<int64_t> memory_margin_mib;
  // Residency (SPEC §12): at most this many models loaded at once; 0 = as
  // many as fit. Idle models are unloaded least recently used first to make room.
  int max_loaded_models = 0;
  bool retest_stale_auto = false;             // retest_stale = "auto" (default "ask": only shown)
  // SPEC §11 device re-probe: the program that lists the devices (empty:
  // `modelwarden-worker probe`) and how often it runs.
  std::vector<std::string> probe_command;
  int probe_interval_s = kDefaultProbeIntervalS;
  // SPEC §14: how long this node keeps its lease in the registry without a
  // heartbeat (heartbeats come every lease_s / 3); after that another node
  // closes its open attempts.
  int lease_s = kDefaultLeaseS;
  // The PostgreSQL registry's connections (issue 26). Restart-only.
  int registry_connect_timeout_s = kDefaultRegistryConnectTimeoutS;
  int registry_statement_timeout_s = kDefaultRegistryStatementTimeoutS;
  int registry_keepalive_s = kDefaultRegistryKeepaliveS;
  // SPEC §21 (any node answers): the address peers reach this node at
  // ("http://host:port"; empty: derived from host and the bound port when
  // host is not a wildcard, else none and no peer routes here), and whether
  // /v1 requests and loads may be proxied to a peer (unset: true when the
  // registry is shared, i.e. PostgreSQL). Restart-only.
  std::string advertise_url;
  std::optional<bool> route_to_peers;
  // Self-healing and fitting loads (SPEC §11, §12; issue 12).
  bool auto_fix = true;                       // retry a failed load once with the computed suggestion
  bool auto_fit = true;                       // lower settings the user left unset so the estimate fits
  // Getting models (SPEC §17).
  std::string hf_endpoint;                    // empty: $HF_ENDPOINT, else https://huggingface.co
  std::string hf_token;                       // empty: $HF_TOKEN
  bool scan_on_start = false;                 // `models scan` at start-up

  const EnginePreset* FindPreset(std::string_view name) const;

  // Running as a service (SPEC §13).
  LogFormat log_format = LogFormat::kText;

  // --- /v1 serving (SPEC §10) ---
  int max_queue = kDefaultMaxQueue;           // requests waiting per model beyond n_parallel (429 past it)
  int64_t keep_alive_ms = kDefaultKeepAliveMs;  // idle unload after a /v1 request; -1 never, 0 at once
  // --- engines that stop answering (SPEC §19) ---
  int health_interval_s = kDefaultHealthIntervalS;  // every loaded engine's /health is probed this often
  int hang_timeout_s = kDefaultHangTimeoutS;        // silent or without progress this long: stopped as hung
  int request_timeout_s = kDefaultRequestTimeoutS;  // a /v1 request's generation past this: 504

  // The path of a location by name, or nullptr.
  const Location* FindLocation(std::string_view name) const;
  std::filesystem::path RegistryPath() const { return data_dir / "registry.db"; }
  // What Registry::Open takes: registry_url if set, else RegistryPath().
  std::string RegistryLocation() const { return registry_url.empty() ? RegistryPath().string() : registry_url; }
};

// The parts of the process environment the defaults depend on (injectable for tests).
struct Environment {
  std::string home;             // $HOME
  std::string xdg_data_home;    // $XDG_DATA_HOME
  std::string xdg_config_home;  // $XDG_CONFIG_HOME
  std::string api_key;          // $MODELWARDEN_API_KEY (overrides the file's api_key)
  static Environment FromProcess();
};

// Flags of `modelwarden serve`. Unset flags leave the file's value.
struct ServeFlags {
  std::optional<std::string> host;
  std::optional<int> port;
  std::optional<std::filesystem::path> data_dir;
  std::optional<std::filesystem::path> config_file;
};

// Parses `--host H --port P --data-dir DIR --config FILE` (also --flag=value).
// kInvalidArgument on an unknown flag, a missing value or a bad port.
[[nodiscard]] Result<ServeFlags> ParseServeFlags(const std::vector<std::string>& args);

// $XDG_DATA_HOME/modelwarden, else ~/.local/share/modelwarden.
std::filesystem::path DefaultDataDir(const Environment& env);
// $XDG_CONFIG_HOME/modelwarden/config.toml, else ~/.config/modelwarden/config.toml.
std::filesystem::path DefaultConfigPath(const Environment& env);

// Applies the TOML text onto `config` (keys absent from the text keep their
// value). `base_dir` resolves relative paths. kInvalidArgument with the line
// number on a syntax error, an unknown key, a wrong type or a bad value.
[[nodiscard]] Status ApplyToml(std::string_view text, const std::filesystem::path& base_dir,
                               const Environment& env, Config& config);

// Builds the effective configuration: defaults, then the file, then flags,
// then derived defaults (primary location = <data_dir>/models). Errors:
// kNotFound if --config names a missing file; kInvalidArgument for a bad file
// or flag value.
[[nodiscard]] Result<Config> LoadConfig(const ServeFlags& flags, const Environment& env);

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackHost(std::string_view host);

// Checks cross-field rules: a non-loopback host needs an api_key
// (kFailedPrecondition), ports in range, location names well-formed.
[[nodiscard]] Status ValidateConfig(const Config& config);

}  // namespace mw::config
