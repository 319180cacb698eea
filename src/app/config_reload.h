// app/config_reload.h: SIGHUP (SPEC §13) — re-reads the configuration from
// the same file and flags, and applies its reloadable parts to the running
// server: crash patterns (the file is re-read), [locations], api_key,
// load_timeout_s, log_format. host, port, data_dir and worker need a restart:
// a change to them is logged and not applied.
//
// A new configuration that does not load (syntax, bad value, a crash
// pattern that does not compile, a non-loopback host left without api_key)
// changes nothing: the server keeps the old one and logs why. Every reload
// logs what changed (never a key's value).
#pragma once

#include "api/http_server.h"
#include "app/model_service.h"
#include "common/status.h"
#include "config/config.h"

namespace mw::app {

class ConfigReloader {
 public:
  // `current` is the configuration the server started with; the references must outlive the reloader.
  ConfigReloader(config::ServeFlags flags, config::Config current, ModelService& service, api::HttpServer& http);

  // Re-reads and applies. OK when the new configuration is in effect (even
  // if nothing changed); otherwise the error, and nothing was changed. Logs
  // either way. Not thread-safe: call from one thread (the signal thread).
  Status Reload();

  const config::Config& current() const { return current_; }

 private:
  const config::ServeFlags flags_;
  config::Config current_;
  ModelService& service_;
  api::HttpServer& http_;
};

}  // namespace mw::app
