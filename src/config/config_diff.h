// config/config_diff.h: what changed between two configurations, for the
// SIGHUP reload (SPEC §13). Pure; thread-compatible.
//
// Reloadable while the server runs: api_key, load_timeout_s, memory_margin_mib,
// max_loaded_models, [locations], crash_patterns (the file is re-read on
// every reload even when its path is the same), log_format. Needing a
// restart: host, port, data_dir, worker.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace mw::config {

struct ConfigChanges {
  // One phrase per change that a reload applies, e.g. "load_timeout_s 300 -> 60",
  // "api_key changed" (never the key itself), "location 'hf' added (/models/hf)".
  std::vector<std::string> applied;
  // Changes a reload cannot apply, e.g. "port 8080 -> 9090".
  std::vector<std::string> need_restart;
};

ConfigChanges DiffConfig(const Config& before, const Config& after);

}  // namespace mw::config
