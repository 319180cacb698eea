#include "config/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "common/duration.h"

namespace mw::config {
namespace fs = std::filesystem;

namespace {

std::string GetEnv(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

fs::path ExpandPath(std::string_view raw, const fs::path& base_dir, const Environment& env) {
  std::string s(raw);
  if (s == "~") return fs::path(env.home);
  if (s.rfind("~/", 0) == 0) return fs::path(env.home) / s.substr(2);
  fs::path p(s);
  if (p.is_relative() && !base_dir.empty()) p = base_dir / p;
  return p.lexically_normal();
}

bool IsLocationName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string Where(const toml::node& node) {
  std::ostringstream out;
  out << "line " << node.source().begin.line;
  return out.str();
}

Result<int> ParsePort(std::string_view text) {
  int value = 0;
  if (text.empty() || text.size() > 5) return InvalidArgumentError("invalid port '" + std::string(text) + "'");
  for (char c : text) {
    if (c < '0' || c > '9') return InvalidArgumentError("invalid port '" + std::string(text) + "'");
    value = value * 10 + (c - '0');
  }
  if (value > 65535) return InvalidArgumentError("port out of range: " + std::string(text));
  return value;
}

std::string LowerAscii(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

Result<std::vector<std::string>> StringList(std::string_view what, const toml::node& node) {
  const toml::array* array = node.as_array();
  if (!array) return InvalidArgumentError(std::string(what) + " must be a list of strings (" + Where(node) + ")");
  std::vector<std::string> out;
  for (const auto& item : *array) {
    if (!item.is_string()) return InvalidArgumentError(std::string(what) + " must be a list of strings (" + Where(item) + ")");
    out.push_back(*item.value<std::string>());
  }
  return out;
}

// Applies one key of the [server] table (or the top level).
Status ApplyServerKey(std::string_view key, const toml::node& node, const fs::path& base_dir,
                      const Environment& env, Config& config) {
  auto want_string = [&](std::string_view what) -> Result<std::string> {
    if (auto v = node.value<std::string>(); v && node.is_string()) return *v;
    return InvalidArgumentError(std::string(what) + " must be a string (" + Where(node) + ")");
  };
  auto want_int = [&](std::string_view what) -> Result<int64_t> {
    if (node.is_integer()) return *node.value<int64_t>();
    return InvalidArgumentError(std::string(what) + " must be an integer (" + Where(node) + ")");
  };
  if (key == "host") {
    ASSIGN_OR_RETURN(config.host, want_string("host"));
    if (config.host.empty()) return InvalidArgumentError("host must not be empty");
  } else if (key == "port") {
    ASSIGN_OR_RETURN(int64_t port, want_int("port"));
    if (port < 0 || port > 65535) return InvalidArgumentError("port out of range (" + Where(node) + ")");
    config.port = static_cast<int>(port);
  } else if (key == "data_dir") {
    ASSIGN_OR_RETURN(std::string s, want_string("data_dir"));
    config.data_dir = ExpandPath(s, base_dir, env);
  } else if (key == "registry") {  // SPEC §14
    ASSIGN_OR_RETURN(config.registry_url, want_string("registry"));
    if (!config.registry_url.starts_with("postgresql://") && !config.registry_url.starts_with("postgres://")) {
      return InvalidArgumentError("registry must be a PostgreSQL URL like \"postgresql://user@host/db\" (leave it "
                                  "out for the SQLite file in data_dir) (" + Where(node) + ")");
    }
  } else if (key == "api_key") {
    ASSIGN_OR_RETURN(config.api_key, want_string("api_key"));
  } else if (key == "load_timeout_s") {
    ASSIGN_OR_RETURN(int64_t t, want_int("load_timeout_s"));
    if (t <= 0 || t > 7 * 24 * 3600) return InvalidArgumentError("load_timeout_s out of range (" + Where(node) + ")");
    config.load_timeout_s = static_cast<int>(t);
  } else if (key == "memory_margin_mib") {
    ASSIGN_OR_RETURN(int64_t m, want_int("memory_margin_mib"));
    if (m < 0 || m > 1024 * 1024) return InvalidArgumentError("memory_margin_mib out of range (" + Where(node) + ")");
    config.memory_margin_mib = m;
  } else if (key == "max_loaded_models") {
    ASSIGN_OR_RETURN(int64_t n, want_int("max_loaded_models"));
    if (n < 0 || n > 1000) {
      return InvalidArgumentError("max_loaded_models must be in [0, 1000] (0: as many as fit) (" + Where(node) + ")");
    }
    config.max_loaded_models = static_cast<int>(n);
  } else if (key == "crash_patterns") {
    ASSIGN_OR_RETURN(std::string s, want_string("crash_patterns"));
    config.crash_patterns_file = ExpandPath(s, base_dir, env);
  } else if (key == "allow_api_commands") {
    if (!node.is_boolean()) return InvalidArgumentError("allow_api_commands must be true or false (" + Where(node) + ")");
    config.allow_api_commands = *node.value<bool>();
  } else if (key == "allowed_hosts" || key == "allowed_origins") {
    ASSIGN_OR_RETURN(std::vector<std::string> list, StringList(key, node));
    for (auto& item : list) {
      if (key == "allowed_hosts") item = LowerAscii(item);
      // An origin is compared with the browser's exactly: scheme://host[:port], no path.
      if (key == "allowed_origins" && (item.find("://") == std::string::npos || item.back() == '/')) {
        return InvalidArgumentError("allowed_origins entries look like \"http://localhost:3000\" (no path, no trailing /), got '" +
                                    item + "' (" + Where(node) + ")");
      }
    }
    (key == "allowed_hosts" ? config.allowed_hosts : config.allowed_origins) = std::move(list);
  } else if (key == "retest_stale") {
    ASSIGN_OR_RETURN(std::string s, want_string("retest_stale"));
    if (s != "ask" && s != "auto") {
      return InvalidArgumentError("retest_stale must be \"ask\" or \"auto\", got '" + s + "' (" + Where(node) + ")");
    }
    config.retest_stale_auto = s == "auto";
  } else if (key == "probe_command") {
    ASSIGN_OR_RETURN(std::vector<std::string> argv, StringList("probe_command", node));
    if (argv.empty() || argv[0].empty()) {
      return InvalidArgumentError("probe_command must name a program first, e.g. [\"/usr/local/bin/my-probe\"] (" +
                                  Where(node) + ")");
    }
    if (argv[0].find('/') != std::string::npos) argv[0] = ExpandPath(argv[0], base_dir, env).string();
    config.probe_command = std::move(argv);
  } else if (key == "lease_s") {  // SPEC §14
    ASSIGN_OR_RETURN(int64_t t, want_int("lease_s"));
    if (t < 1 || t > 3600) return InvalidArgumentError("lease_s must be in [1, 3600] (" + Where(node) + ")");
    config.lease_s = static_cast<int>(t);
  } else if (key == "registry_connect_timeout_s" || key == "registry_statement_timeout_s" ||
             key == "registry_keepalive_s") {  // issue 26
    ASSIGN_OR_RETURN(int64_t t, want_int(key));
    if (t < 1 || t > 3600) return InvalidArgumentError(std::string(key) + " must be in [1, 3600] (" + Where(node) + ")");
    (key == "registry_connect_timeout_s"     ? config.registry_connect_timeout_s
     : key == "registry_statement_timeout_s" ? config.registry_statement_timeout_s
                                             : config.registry_keepalive_s) = static_cast<int>(t);
  } else if (key == "advertise_url") {  // SPEC §21
    ASSIGN_OR_RETURN(std::string s, want_string("advertise_url"));
    if (s.rfind("http://", 0) != 0 || s.size() <= 7) {
      return InvalidArgumentError("advertise_url must be an http:// URL like \"http://10.0.0.5:8080\" (" +
                                  Where(node) + ")");
    }
    while (s.size() > 7 && s.back() == '/') s.pop_back();
    config.advertise_url = std::move(s);
  } else if (key == "route_to_peers") {
    if (!node.is_boolean()) return InvalidArgumentError("route_to_peers must be true or false (" + Where(node) + ")");
    config.route_to_peers = *node.value<bool>();
  } else if (key == "probe_interval_s") {
    ASSIGN_OR_RETURN(int64_t t, want_int("probe_interval_s"));
    if (t < 1 || t > 24 * 3600) return InvalidArgumentError("probe_interval_s must be in [1, 86400] (" + Where(node) + ")");
    config.probe_interval_s = static_cast<int>(t);
  } else if (key == "health_interval_s" || key == "hang_timeout_s" || key == "request_timeout_s") {  // SPEC §19
    ASSIGN_OR_RETURN(int64_t t, want_int(key));
    const int64_t max = key == "health_interval_s" ? 3600 : 7 * 24 * 3600;
    if (t < 1 || t > max) {
      return InvalidArgumentError(std::string(key) + " must be in [1, " + std::to_string(max) + "] (" + Where(node) + ")");
    }
    (key == "health_interval_s" ? config.health_interval_s
     : key == "hang_timeout_s"  ? config.hang_timeout_s
                                : config.request_timeout_s) = static_cast<int>(t);
  } else if (key == "auto_fix" || key == "auto_fit") {  // --- self-healing and fitting loads (issue 12) ---
    if (!node.is_boolean()) return InvalidArgumentError(std::string(key) + " must be true or false (" + Where(node) + ")");
    (key == "auto_fix" ? config.auto_fix : config.auto_fit) = *node.value<bool>();
  } else if (key == "hf_endpoint" || key == "hf_token") {  // --- getting models (SPEC §17) ---
    ASSIGN_OR_RETURN(std::string s, want_string(key));
    if (key == "hf_endpoint" && s.rfind("http://", 0) != 0 && s.rfind("https://", 0) != 0) {
      return InvalidArgumentError("hf_endpoint must be an http:// or https:// URL (" + Where(node) + ")");
    }
    (key == "hf_endpoint" ? config.hf_endpoint : config.hf_token) = s;
  } else if (key == "scan_on_start") {
    if (!node.is_boolean()) return InvalidArgumentError("scan_on_start must be true or false (" + Where(node) + ")");
    config.scan_on_start = *node.value<bool>();
  } else if (key == "max_queue") {  // --- /v1 serving (SPEC §10) ---
    ASSIGN_OR_RETURN(int64_t n, want_int("max_queue"));
    if (n < 0 || n > 100000) return InvalidArgumentError("max_queue must be in [0, 100000] (" + Where(node) + ")");
    config.max_queue = static_cast<int>(n);
  } else if (key == "keep_alive") {
    Result<int64_t> ms = node.is_integer() ? DurationFromSeconds(static_cast<double>(*node.value<int64_t>()))
                         : node.is_string() ? ParseDurationMs(*node.value<std::string>())
                                            : Result<int64_t>(InvalidArgumentError("keep_alive must be a string like \"5m\" or a number of seconds"));
    if (!ms.ok()) return InvalidArgumentError("keep_alive: " + ms.status().message() + " (" + Where(node) + ")");
    config.keep_alive_ms = *ms;
  } else if (key == "worker") {
    ASSIGN_OR_RETURN(std::string s, want_string("worker"));
    config.worker_path = ExpandPath(s, base_dir, env);
  } else if (key == "log_format") {
    ASSIGN_OR_RETURN(std::string s, want_string("log_format"));
    if (s != "text" && s != "json") {
      return InvalidArgumentError("log_format must be \"text\" or \"json\" (" + Where(node) + ")");
    }
    config.log_format = s == "json" ? LogFormat::kJson : LogFormat::kText;
  } else if (key == "verify") {  // SPEC §10 (engine)
    ASSIGN_OR_RETURN(config.verify, want_string("verify"));
    if (config.verify != "decode" && config.verify != "load") {
      return InvalidArgumentError("verify must be \"decode\" or \"load\" (" + Where(node) + ")");
    }
  } else {
    return InvalidArgumentError("unknown configuration key '" + std::string(key) + "' (" + Where(node) +
                                "); known keys: host, port, data_dir, registry, api_key, load_timeout_s, "
                                "crash_patterns, worker, log_format, verify, max_queue, keep_alive, memory_margin_mib, "
                                "allow_api_commands, allowed_hosts, allowed_origins, retest_stale, probe_command, probe_interval_s, "
                                "lease_s, registry_connect_timeout_s, registry_statement_timeout_s, "
                                "registry_keepalive_s, advertise_url, route_to_peers, auto_fix, auto_fit, max_loaded_models, hf_endpoint, hf_token, "
                                "scan_on_start, health_interval_s, hang_timeout_s, request_timeout_s, [locations], "
                                "[engines.NAME]");
  }
  return Status::Ok();
}

// Presets name the programs the server may run; checked here for shape only
// (the server compiles ready_pattern at start-up).
Status ApplyEnginePreset(std::string name, const toml::node& node, Config& config) {
  if (!IsLocationName(name)) return InvalidArgumentError("engine preset name '" + name + "' must match [A-Za-z0-9_-]{1,64}");
  const toml::table* table = node.as_table();
  if (!table) return InvalidArgumentError("[engines." + name + "] must be a table (" + Where(node) + ")");
  EnginePreset preset;
  preset.name = name;
  for (const auto& [key, value] : *table) {
    std::string_view k = key.str();
    std::string where = "[engines." + name + "] " + std::string(k);
    if (k == "argv") {
      ASSIGN_OR_RETURN(preset.argv, StringList(where, value));
      if (preset.argv.empty() || preset.argv.front().empty()) {
        return InvalidArgumentError(where + " must be a non-empty list whose first item is the program (" + Where(value) + ")");
      }
    } else if (k == "ready_pattern" || k == "health_path") {
      if (!value.is_string()) return InvalidArgumentError(where + " must be a string (" + Where(value) + ")");
      (k == "ready_pattern" ? preset.ready_pattern : preset.health_path) = *value.value<std::string>();
    } else if (k == "env") {
      const toml::table* env = value.as_table();
      if (!env) return InvalidArgumentError(where + " must be a table of strings (" + Where(value) + ")");
      for (const auto& [var, text] : *env) {
        if (!text.is_string()) return InvalidArgumentError(where + "." + std::string(var.str()) + " must be a string");
        preset.env.emplace_back(std::string(var.str()), *text.value<std::string>());
      }
    } else {
      return InvalidArgumentError("unknown key '" + std::string(k) + "' in [engines." + name +
                                  "] (known: argv, ready_pattern, health_path, env)");
    }
  }
  if (preset.argv.empty()) return InvalidArgumentError("[engines." + name + "] needs argv (a list of strings)");
  if (!preset.health_path.empty() && preset.health_path[0] != '/') {
    return InvalidArgumentError("[engines." + name + "] health_path must start with '/'");
  }
  std::erase_if(config.engine_presets, [&](const EnginePreset& p) { return p.name == name; });
  config.engine_presets.push_back(std::move(preset));
  std::sort(config.engine_presets.begin(), config.engine_presets.end(),
            [](const EnginePreset& a, const EnginePreset& b) { return a.name < b.name; });
  return Status::Ok();
}

Status ApplyLocations(const toml::table& table, const fs::path& base_dir, const Environment& env,
                      Config& config) {
  for (const auto& [key, node] : table) {
    std::string name(key.str());
    if (!IsLocationName(name)) {
      return InvalidArgumentError("location name '" + name + "' must match [A-Za-z0-9_-]{1,64}");
    }
    if (!node.is_string()) return InvalidArgumentError("location '" + name + "' must be a path string (" + Where(node) + ")");
    fs::path path = ExpandPath(*node.value<std::string>(), base_dir, env);
    bool replaced = false;
    for (auto& loc : config.locations) {
      if (loc.name == name) {
        loc.path = path;
        replaced = true;
      }
    }
    if (!replaced) config.locations.push_back({name, path});
  }
  return Status::Ok();
}

}  // namespace

const Location* Config::FindLocation(std::string_view name) const {
  for (const auto& loc : locations) {
    if (loc.name == name) return &loc;
  }
  return nullptr;
}

const EnginePreset* Config::FindPreset(std::string_view name) const {
  for (const auto& preset : engine_presets) {
    if (preset.name == name) return &preset;
  }
  return nullptr;
}

Environment Environment::FromProcess() {
  Environment env;
  env.home = GetEnv("HOME");
  env.xdg_data_home = GetEnv("XDG_DATA_HOME");
  env.xdg_config_home = GetEnv("XDG_CONFIG_HOME");
  env.api_key = GetEnv("MODELWARDEN_API_KEY");
  return env;
}

Result<ServeFlags> ParseServeFlags(const std::vector<std::string>& args) {
  ServeFlags flags;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    std::optional<std::string> value;
    if (auto eq = name.find('='); name.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name != "--host" && name != "--port" && name != "--data-dir" && name != "--config") {
      return InvalidArgumentError("unknown option '" + name + "' (serve takes --host, --port, --data-dir, --config)");
    }
    if (!value) {
      if (i + 1 >= args.size()) return InvalidArgumentError("option " + name + " needs a value");
      value = args[++i];
    }
    if (name == "--host") {
      if (value->empty()) return InvalidArgumentError("--host must not be empty");
      flags.host = *value;
    } else if (name == "--port") {
      ASSIGN_OR_RETURN(flags.port, ParsePort(*value));
    } else if (name == "--data-dir") {
      if (value->empty()) return InvalidArgumentError("--data-dir must not be empty");
      flags.data_dir = fs::path(*value);
    } else {
      if (value->empty()) return InvalidArgumentError("--config must not be empty");
      flags.config_file = fs::path(*value);
    }
  }
  return flags;
}

fs::path DefaultDataDir(const Environment& env) {
  if (!env.xdg_data_home.empty()) return fs::path(env.xdg_data_home) / "modelwarden";
  return fs::path(env.home.empty() ? "." : env.home) / ".local" / "share" / "modelwarden";
}

fs::path DefaultConfigPath(const Environment& env) {
  if (!env.xdg_config_home.empty()) return fs::path(env.xdg_config_home) / "modelwarden" / "config.toml";
  return fs::path(env.home.empty() ? "." : env.home) / ".config" / "modelwarden" / "config.toml";
}

Status ApplyToml(std::string_view text, const fs::path& base_dir, const Environment& env, Config& config) {
  // toml++ throws on syntax errors (the system library is built with exceptions).
  toml::table root;
  try {
    root = toml::parse(text);
  } catch (const toml::parse_error& err) {
    std::ostringstream out;
    out << "TOML syntax error at line " << err.source().begin.line << ": " << err.description();
    return InvalidArgumentError(out.str());
  }
  for (const auto& [key, node] : root) {
    std::string_view k = key.str();
    if (k == "server") {
      const toml::table* server = node.as_table();
      if (!server) return InvalidArgumentError("[server] must be a table");
      for (const auto& [skey, snode] : *server) {
        RETURN_IF_ERROR(ApplyServerKey(skey.str(), snode, base_dir, env, config));
      }
    } else if (k == "engines") {
      const toml::table* engines = node.as_table();
      if (!engines) return InvalidArgumentError("[engines] must hold tables: [engines.NAME]");
      for (const auto& [name, preset] : *engines) {
        RETURN_IF_ERROR(ApplyEnginePreset(std::string(name.str()), preset, config));
      }
    } else if (k == "locations") {
      const toml::table* locations = node.as_table();
      if (!locations) return InvalidArgumentError("[locations] must be a table");
      RETURN_IF_ERROR(ApplyLocations(*locations, base_dir, env, config));
    } else {
      RETURN_IF_ERROR(ApplyServerKey(k, node, base_dir, env, config));
    }
  }
  return Status::Ok();
}

Result<Config> LoadConfig(const ServeFlags& flags, const Environment& env) {
  Config config;
  fs::path file;
  bool explicit_file = flags.config_file.has_value();
  if (explicit_file) {
    file = *flags.config_file;
  } else {
    file = DefaultConfigPath(env);
  }
  std::error_code ec;
  bool exists = fs::is_regular_file(file, ec);
  if (explicit_file && !exists) {
    return NotFoundError("configuration file " + file.string() + " does not exist or is not a file");
  }
  if (exists) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return PermissionDeniedError("cannot read configuration file " + file.string());
    std::ostringstream text;
    text << in.rdbuf();
    fs::path base = fs::absolute(file, ec).parent_path();
    Status st = ApplyToml(text.str(), base, env, config);
    if (!st.ok()) return Status(st.code(), file.string() + ": " + st.message());
    config.config_file = file;
  }
  if (!env.api_key.empty()) config.api_key = env.api_key;
  if (flags.host) config.host = *flags.host;
  if (flags.port) config.port = *flags.port;
  if (flags.data_dir) config.data_dir = *flags.data_dir;
  if (config.data_dir.empty()) config.data_dir = DefaultDataDir(env);
  config.data_dir = fs::absolute(config.data_dir, ec).lexically_normal();
  // "primary" first, defaulting to <data_dir>/models.
  std::vector<Location> ordered;
  const Location* primary = config.FindLocation(kPrimaryLocation);
  ordered.push_back({std::string(kPrimaryLocation), primary ? primary->path : config.data_dir / "models"});
  for (const auto& loc : config.locations) {
    if (loc.name != kPrimaryLocation) ordered.push_back(loc);
  }
  for (auto& loc : ordered) loc.path = fs::absolute(loc.path, ec).lexically_normal();
  config.locations = std::move(ordered);
  RETURN_IF_ERROR(ValidateConfig(config));
  return config;
}

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  // A literal IPv4 address in 127.0.0.0/8 (not a name that merely starts with "127.").
  in_addr addr{};
  std::string h(host);
  if (inet_pton(AF_INET, h.c_str(), &addr) != 1) return false;
  return (ntohl(addr.s_addr) >> 24) == 127;
}

Status ValidateConfig(const Config& config) {
  if (config.port < 0 || config.port > 65535) return InvalidArgumentError("port out of range");
  if (config.host.empty()) return InvalidArgumentError("host must not be empty");
  if (!IsLoopbackHost(config.host) && config.api_key.empty()) {
    return FailedPreconditionError("refusing to listen on " + config.host +
                                   " without an API key: set api_key in the configuration file "
                                   "(or MODELWARDEN_API_KEY), or listen on 127.0.0.1");
  }
  if (config.FindLocation(kPrimaryLocation) == nullptr) return InvalidArgumentError("no primary location");
  // allow_api_commands off loopback needs a key too (SPEC §9.1): the rule above covers it.
  return Status::Ok();
}

}  // namespace mw::config
