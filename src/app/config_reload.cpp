#include "app/config_reload.h"

#include "app/command_policy.h"

#include <filesystem>
#include <utility>

#include "classifier/crash_classifier.h"
#include "common/log.h"
#include "config/config_diff.h"

namespace mw::app {
namespace {

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

}  // namespace

ConfigReloader::ConfigReloader(config::ServeFlags flags, config::Config current, ModelService& service,
                               api::HttpServer& http)
    : flags_(std::move(flags)), current_(std::move(current)), service_(service), http_(http) {}

Status ConfigReloader::Reload() {
  const std::string source = current_.config_file.empty() ? std::string("defaults and flags (no file)")
                                                          : current_.config_file.string();
  auto fail = [&](const Status& st) {
    MW_LOG(kError, "config") << "reload failed, keeping the previous configuration: " << st.message();
    return st;
  };
  auto loaded = config::LoadConfig(flags_, config::Environment::FromProcess());
  if (!loaded.ok()) return fail(loaded.status());
  config::Config next = std::move(loaded).value();
  // What needs a restart stays as it is.
  const config::ConfigChanges changes = config::DiffConfig(current_, next);
  next.host = current_.host;
  next.port = current_.port;
  next.data_dir = current_.data_dir;
  next.worker_path = current_.worker_path;
  if (Status st = config::ValidateConfig(next); !st.ok()) return fail(st);
  if (Status st = ValidatePresets(next); !st.ok()) return fail(st);
  if (Status st = ValidateProbeCommand(next); !st.ok()) return fail(st);
  // The HTTP guard's lists are fixed at start (the server would have to be
  // rebuilt to change them).
  next.allowed_hosts = current_.allowed_hosts;
  next.allowed_origins = current_.allowed_origins;
  auto classifier = CrashClassifier::Load(next.crash_patterns_file.string());
  if (!classifier.ok()) return fail(classifier.status().WithContext("crash patterns"));

  // Everything checked: apply (none of these can fail).
  std::error_code ec;
  std::filesystem::create_directories(next.locations.front().path, ec);  // primary, as at start-up
  service_.Reconfigure(next, *classifier);
  http_.SetApiKey(next.api_key);
  SetLogFormat(next.log_format);
  current_ = std::move(next);

  MW_LOG(kInfo, "config") << "configuration reloaded from " << source << ": "
                          << (changes.applied.empty() ? std::string("no changes") : Join(changes.applied))
                          << (current_.crash_patterns_file.empty()
                                  ? std::string()
                                  : "; crash patterns re-read from " + current_.crash_patterns_file.string());
  if (!changes.need_restart.empty()) {
    MW_LOG(kWarn, "config") << "not applied until a restart: " << Join(changes.need_restart);
  }
  return Status::Ok();
}

}  // namespace mw::app
