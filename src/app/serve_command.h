// app/serve_command.h: `modelwarden serve` — the server process.
#pragma once

#include <string>
#include <vector>

namespace mw::app {

// Runs the server until SIGINT/SIGTERM. Order of start-up (each step's
// failure is a clear message on stderr and exit code 1; bad flags exit 2):
// systemd notify target taken from the environment -> configuration (log
// format set) -> data directory and its lock (<data_dir>/modelwarden.lock: a
// second server on the directory exits 1 naming the first's pid) -> registry
// (migrations) -> startup cleanup (SPEC §1.4 lines on stdout) -> crash
// catalog (+ user patterns) -> supervisor -> the environment state kept in
// the registry (SPEC §11) -> listen (prints "modelwarden listening on
// http://H:P", then READY=1 to systemd and the watchdog) -> the device probe
// thread (probe_command, every probe_interval_s). SIGHUP reloads the configuration's
// reloadable parts (app/config_reload.h). Shutdown: STOPPING=1, stop
// accepting, release queued loads, stop every worker, close the registry; exit 0.
int RunServe(const std::vector<std::string>& args);

}  // namespace mw::app
