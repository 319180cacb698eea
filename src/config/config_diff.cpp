#include "config/config_diff.h"

#include <tuple>

namespace mw::config {
namespace {

std::string Quoted(const std::string& s) { return "'" + s + "'"; }

const char* FormatName(LogFormat f) { return f == LogFormat::kJson ? "json" : "text"; }

}  // namespace

ConfigChanges DiffConfig(const Config& before, const Config& after) {
  ConfigChanges c;
  if (before.api_key != after.api_key) {
    if (before.api_key.empty()) {
      c.applied.push_back("api_key set (requests now need it)");
    } else if (after.api_key.empty()) {
      c.applied.push_back("api_key removed (no authentication)");
    } else {
      c.applied.push_back("api_key changed");
    }
  }
  if (before.load_timeout_s != after.load_timeout_s) {
    c.applied.push_back("load_timeout_s " + std::to_string(before.load_timeout_s) + " -> " +
                        std::to_string(after.load_timeout_s));
  }
  if (before.memory_margin_mib != after.memory_margin_mib) {
    auto shown = [](const std::optional<int64_t>& m) { return m ? std::to_string(*m) : std::string("default"); };
    c.applied.push_back("memory_margin_mib " + shown(before.memory_margin_mib) + " -> " + shown(after.memory_margin_mib));
  }
  if (before.max_loaded_models != after.max_loaded_models) {
    c.applied.push_back("max_loaded_models " + std::to_string(before.max_loaded_models) + " -> " +
                        std::to_string(after.max_loaded_models));
  }
  if (before.crash_patterns_file != after.crash_patterns_file) {
    c.applied.push_back("crash_patterns " + Quoted(before.crash_patterns_file.string()) + " -> " +
                        Quoted(after.crash_patterns_file.string()));
  }
  if (before.log_format != after.log_format) {
    c.applied.push_back(std::string("log_format ") + FormatName(before.log_format) + " -> " +
                        FormatName(after.log_format));
  }
  if (before.retest_stale_auto != after.retest_stale_auto) {
    c.applied.push_back(std::string("retest_stale ") + (before.retest_stale_auto ? "auto" : "ask") + " -> " +
                        (after.retest_stale_auto ? "auto" : "ask"));
  }
  if (before.probe_command != after.probe_command) {
    auto show = [](const std::vector<std::string>& argv) {
      if (argv.empty()) return std::string("(modelwarden-worker probe)");
      std::string out;
      for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
      return out;
    };
    c.applied.push_back("probe_command " + show(before.probe_command) + " -> " + show(after.probe_command));
  }
  if (before.probe_interval_s != after.probe_interval_s) {
    c.applied.push_back("probe_interval_s " + std::to_string(before.probe_interval_s) + " -> " +
                        std::to_string(after.probe_interval_s));
  }
  for (auto [key, b, a] : {std::tuple{"health_interval_s", before.health_interval_s, after.health_interval_s},
                           std::tuple{"hang_timeout_s", before.hang_timeout_s, after.hang_timeout_s},
                           std::tuple{"request_timeout_s", before.request_timeout_s, after.request_timeout_s}}) {
    if (b != a) c.applied.push_back(std::string(key) + " " + std::to_string(b) + " -> " + std::to_string(a));
  }
  if (before.auto_fix != after.auto_fix) c.applied.push_back(std::string("auto_fix ") + (after.auto_fix ? "true" : "false"));
  if (before.auto_fit != after.auto_fit) c.applied.push_back(std::string("auto_fit ") + (after.auto_fit ? "true" : "false"));
  for (const Location& old_loc : before.locations) {
    const Location* now = after.FindLocation(old_loc.name);
    if (now == nullptr) {
      c.applied.push_back("location " + Quoted(old_loc.name) + " removed");
    } else if (now->path != old_loc.path) {
      c.applied.push_back("location " + Quoted(old_loc.name) + " " + old_loc.path.string() + " -> " +
                          now->path.string());
    }
  }
  for (const Location& new_loc : after.locations) {
    if (before.FindLocation(new_loc.name) == nullptr) {
      c.applied.push_back("location " + Quoted(new_loc.name) + " added (" + new_loc.path.string() + ")");
    }
  }
  if (before.host != after.host) c.need_restart.push_back("host " + before.host + " -> " + after.host);
  if (before.port != after.port) {
    c.need_restart.push_back("port " + std::to_string(before.port) + " -> " + std::to_string(after.port));
  }
  if (before.registry_url != after.registry_url) c.need_restart.push_back("registry");  // may hold a password
  if (before.lease_s != after.lease_s) {
    c.need_restart.push_back("lease_s " + std::to_string(before.lease_s) + " -> " + std::to_string(after.lease_s));
  }
  if (before.registry_connect_timeout_s != after.registry_connect_timeout_s ||
      before.registry_statement_timeout_s != after.registry_statement_timeout_s ||
      before.registry_keepalive_s != after.registry_keepalive_s) {
    c.need_restart.push_back("registry timeouts");
  }
  if (before.advertise_url != after.advertise_url || before.route_to_peers != after.route_to_peers) {
    c.need_restart.push_back("advertise_url / route_to_peers");
  }
  if (before.data_dir != after.data_dir) {
    c.need_restart.push_back("data_dir " + before.data_dir.string() + " -> " + after.data_dir.string());
  }
  if (before.worker_path != after.worker_path) {
    c.need_restart.push_back("worker " + Quoted(before.worker_path.string()) + " -> " +
                             Quoted(after.worker_path.string()));
  }
  return c;
}

}  // namespace mw::config
