#include "app/command_policy.h"

#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include <nlohmann/json.hpp>

namespace mw::app {
namespace {

std::string PresetNames(const config::Config& config) {
  std::string names;
  for (const auto& preset : config.engine_presets) names += (names.empty() ? "" : ", ") + preset.name;
  return names.empty() ? "none" : names;
}

// A program the API may not choose: argv itself, or an environment (which
// can make the preset's program load other code, e.g. LD_PRELOAD).
bool NamesAProgram(const loadconfig::CommandConfig& command) { return !command.argv.empty() || !command.env.empty(); }

// A TOML snippet the user can paste into the configuration file.
std::string PresetSnippet(const std::string& name, const loadconfig::CommandConfig& command) {
  std::string argv = nlohmann::json(command.argv).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string snippet = "[engines." + name + "] argv = " + argv;
  if (!command.env.empty()) {
    snippet += ", env = { ";
    bool first = true;
    for (const auto& [k, v] : command.env) {
      snippet += (first ? "" : ", ") + k + " = " + nlohmann::json(v).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      first = false;
    }
    snippet += " }";
  }
  return snippet;
}

}  // namespace

Status ValidatePresets(const config::Config& config) {
  for (const auto& preset : config.engine_presets) {
    nlohmann::json j{{"argv", preset.argv}};
    if (!preset.ready_pattern.empty()) j["ready_pattern"] = preset.ready_pattern;
    if (!preset.health_path.empty()) j["health_path"] = preset.health_path;
    for (const auto& [k, v] : preset.env) j["env"][k] = v;
    auto validated = loadconfig::ValidateLoadConfig(loadconfig::Engine::kCommand,
                                                    j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    if (!validated.ok()) {
      return InvalidArgumentError("[engines." + preset.name + "]: " + validated.status().message());
    }
  }
  return Status::Ok();
}

Status ValidateProbeCommand(const config::Config& config) {
  if (config.probe_command.empty()) return Status::Ok();
  const std::string& program = config.probe_command.front();
  if (program.find('/') != std::string::npos) {
    if (::access(program.c_str(), X_OK) != 0) {
      return InvalidArgumentError("probe_command: '" + program + "' is not an executable file");
    }
    return Status::Ok();
  }
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (::access(((dir.empty() ? "." : dir) + "/" + program).c_str(), X_OK) == 0) return Status::Ok();
  }
  return InvalidArgumentError("probe_command: no executable '" + program + "' on PATH");
}

Status CheckApiLoadConfig(const loadconfig::LoadConfig& load_config, const config::Config& config) {
  const loadconfig::CommandConfig* command = load_config.command();
  if (command == nullptr) return Status::Ok();
  if (NamesAProgram(*command) && !config.allow_api_commands) {
    return ForbiddenError(
        "load_config sets 'argv' or 'env': this server does not run programs chosen over HTTP. Define the program "
        "in the server's configuration file as [engines.NAME] (argv, ready_pattern or health_path, env) and use "
        "load_config {\"preset\": \"NAME\"} (configured presets: " + PresetNames(config) +
        "); to let API clients choose programs, set allow_api_commands = true (unsafe: any web page or local user "
        "that reaches the API can then run programs)");
  }
  if (command->preset && config.FindPreset(*command->preset) == nullptr) {
    return InvalidArgumentError("unknown engine preset '" + *command->preset +
                                "' (configured presets: " + PresetNames(config) +
                                "); presets are [engines.NAME] tables in the server's configuration file");
  }
  return Status::Ok();
}

Status ResolveCommand(const std::string& model_name, const loadconfig::CommandConfig& command,
                      const config::Config& config, LoadRequest& request) {
  if (command.preset) {
    const config::EnginePreset* preset = config.FindPreset(*command.preset);
    if (preset == nullptr) {
      return FailedPreconditionError("model '" + model_name + "' uses engine preset '" + *command.preset +
                                     "', which is not in the server's configuration (configured presets: " +
                                     PresetNames(config) + "); add [engines." + *command.preset + "] or change its load_config");
    }
    request.argv = preset->argv;
    request.ready_pattern = command.ready_pattern.value_or(preset->ready_pattern);
    request.health_path = command.health_path.value_or(preset->health_path);
    request.env = preset->env;
  } else {
    if (!config.allow_api_commands) {
      return ForbiddenError("model '" + model_name + "' has a program stored in its load_config (argv" +
                            std::string(command.env.empty() ? "" : " and env") +
                            "), set through the API; this server runs only programs defined in its configuration "
                            "file. Move it there: " + PresetSnippet(model_name, command) +
                            " — then set the model's load_config to {\"preset\": \"" + model_name +
                            "\"} (modelwarden models set " + model_name + " --load-config '{\"preset\": \"" +
                            model_name + "\"}'); or set allow_api_commands = true (unsafe)");
    }
    request.argv = command.argv;
    request.ready_pattern = command.ready_pattern.value_or("");
    request.health_path = command.health_path.value_or("");
  }
  if (config.allow_api_commands) {
    for (const auto& [k, v] : command.env) request.env.emplace_back(k, v);
  }
  return Status::Ok();
}

}  // namespace mw::app
