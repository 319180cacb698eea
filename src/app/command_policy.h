// app/command_policy.h: which programs a `command` model may run (SPEC §9.1).
//
// A local server is reachable from every web page the user opens (a
// `text/plain` POST needs no CORS preflight) and from every local user, so a
// registration endpoint that accepts a program is remote code execution.
// The rule: programs come from the configuration file ([engines.NAME]
// presets); API clients name a preset and may set only fields that run
// nothing (ready_pattern, health_path, load_timeout_s). `argv` and `env`
// (env can run code too: LD_PRELOAD) are accepted from the API, and run when
// stored, only with the server option allow_api_commands = true.
//
// Pure functions over the validated load_config and the configuration;
// thread-safe.
#pragma once

#include "common/status.h"
#include "config/config.h"
#include "loadconfig/loadconfig.h"
#include "supervisor/supervisor.h"

namespace mw::app {

// For a load_config arriving through the API (register, PATCH).
// OK for llama.cpp configs and for command configs naming a configured
// preset. kForbidden (403 command_argv_disabled) for argv/env unless
// config.allow_api_commands; kInvalidArgument for an unknown preset (the
// message lists the configured ones).
[[nodiscard]] Status CheckApiLoadConfig(const loadconfig::LoadConfig& load_config, const config::Config& config);

// At load time, fills request.argv / ready_pattern / health_path / env from
// the stored command config: the preset's program and environment, with the
// model's own ready_pattern / health_path when set. kForbidden for a stored
// argv/env (registered before presets existed, or while allowed) unless
// config.allow_api_commands — the message shows the preset to write;
// kFailedPrecondition when the named preset is no longer configured.
[[nodiscard]] Status ResolveCommand(const std::string& model_name, const loadconfig::CommandConfig& command,
                                    const config::Config& config, LoadRequest& request);

// At start-up: every [engines.NAME] is a valid command load_config (argv,
// ready_pattern compiles, health_path). kInvalidArgument naming the preset.
[[nodiscard]] Status ValidatePresets(const config::Config& config);

// At start-up and on SIGHUP: the configured probe_command (SPEC §11) names a
// program that exists and is executable (a path, or a name found on PATH).
// OK when none is configured (the worker probes). kInvalidArgument naming it.
[[nodiscard]] Status ValidateProbeCommand(const config::Config& config);


}  // namespace mw::app
