// EnvironmentWatch's device probe (SPEC §11): the configured probe_command (or
// `modelwarden-worker probe`) runs at start, every probe_interval_s and
// after each device-level failure, on one thread of its own. A probe that no
// longer sees a device of the last good probe makes the environment
// `failing`; their return makes it `ok`. A probe that fails or hangs
// (killed after kProbeTimeout) changes nothing but the log: the server never
// waits for it. The environment state is kept in the registry (schema
// version 5) and restored at start (RestoreEnvironment).
#include <algorithm>
#include <chrono>

#include "app/environment_watch.h"
#include "classifier/crash_catalog.h"
#include "common/log.h"
#include "common/time_util.h"

namespace mw::app {
namespace {

constexpr std::chrono::seconds kProbeTimeout{30};

std::string Join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : separator) + p;
  return out;
}
std::string ArgvText(const std::vector<std::string>& argv) { return Join(argv, " "); }

std::vector<std::string> KeysOf(const std::vector<api::DeviceInfo>& devices) {
  std::vector<EnvironmentDevice> identities;
  for (const auto& d : devices) identities.push_back({d.name, d.kind, d.memory_total, d.backend});
  return DeviceKeys(identities);
}

// "Vulkan: 1 device; CUDA skipped: no CUDA driver on this machine (...)".
std::string BackendsText(const std::vector<api::BackendView>& backends) {
  std::vector<std::string> parts;
  for (const auto& b : backends) {
    parts.push_back(b.state == "loaded" ? b.name + ": " + std::to_string(b.devices) + " device(s)"
                                        : b.name + " " + b.state + ": " + b.reason);
  }
  return parts.empty() ? "none (CPU only)" : Join(parts, "; ");
}

// SPEC §15: the backends that failed to initialise, one "name: reason" each.
std::string FailedBackends(const std::vector<api::BackendView>& backends) {
  std::vector<std::string> parts;
  for (const auto& b : backends) {
    if (b.state == "failed") parts.push_back(b.name + ": " + b.reason);
  }
  return Join(parts, "; ");
}

}  // namespace

std::chrono::milliseconds EnvironmentWatch::ProbeInterval() const {
  return std::chrono::seconds(hooks_.config()->probe_interval_s);
}

void EnvironmentWatch::ProbeOnce() {
  const auto config = hooks_.config();
  const bool custom = !config->probe_command.empty();
  const std::string what = custom ? "probe_command " + ArgvText(config->probe_command) : "modelwarden-worker probe";
  Result<protocol::Message> answer = custom ? supervisor_.RunOneShot(config->probe_command, kProbeTimeout, what)
                                            : supervisor_.RunWorkerCommand({"probe"}, kProbeTimeout);
  if (hooks_.shutting_down()) return;
  std::string error;
  protocol::ProbeMessage probe;
  if (!answer.ok()) {
    error = "device probe failed: " + answer.status().message();
  } else if (const auto* e = std::get_if<protocol::ErrorMessage>(&*answer)) {
    error = "device probe failed: " + e->message;
  } else if (const auto* p = std::get_if<protocol::ProbeMessage>(&*answer)) {
    probe = *p;
  } else {
    error = "device probe (" + what + ") answered with a message that is not a probe";
  }
  if (!error.empty()) {
    // No evidence either way: the devices last seen stay, the state too.
    // Logged when it starts failing or fails differently (not every interval).
    std::vector<api::DeviceInfo> keep;
    bool news;
    {
      std::lock_guard lock(mu_);
      news = error != last_probe_error_;
      last_probe_error_ = error;
      keep = devices_;
    }
    ::mw::LogLine(news ? LogLevel::kWarn : LogLevel::kDebug, "probe") << error;
    SetDevices(std::move(keep), error);
    return;
  }
  std::vector<api::DeviceInfo> devices;
  for (const auto& d : probe.devices) {
    api::DeviceInfo info;
    info.name = d.description.empty() ? d.name : d.name + " (" + d.description + ")";
    info.kind = std::string(protocol::DeviceKindName(d.kind));
    info.memory_total = static_cast<int64_t>(d.memory_total);
    info.memory_free = static_cast<int64_t>(d.memory_free);
    info.id = d.name;
    info.backend = d.backend;
    info.description = d.description;
    devices.push_back(std::move(info));
  }
  std::vector<api::BackendView> backends;
  for (const auto& b : probe.backends) backends.push_back({b.name, b.state, b.reason, b.devices});
  const std::vector<std::string> keys = KeysOf(devices);
  {
    std::lock_guard lock(mu_);
    const bool first = devices_error_ == kProbeStillRunning;
    if (!last_probe_error_.empty() || first || keys != KeysOf(devices_)) {
      MW_LOG(kInfo, "probe") << "device probe: " << devices.size() << " device(s)"
                             << (keys.empty() ? "" : ": " + Join(keys, "; ").substr(0, 1000));
    }
    if (first || BackendsText(backends) != BackendsText(backends_)) {
      MW_LOG(kInfo, "probe") << "GPU backends: " << BackendsText(backends).substr(0, 2000);
    }
    last_probe_error_.clear();
    backends_ = backends;
  }
  SetDevices(std::move(devices), FailedBackends(backends));

  bool changed = false;
  bool good_changed = false;
  std::vector<std::string> missing;
  {
    std::lock_guard lock(mu_);
    if (!good_devices_.empty()) missing = MissingDevices(good_devices_, keys);
    changed = detector_.OnProbe(missing, NowIso8601());
    if (missing.empty() && good_devices_ != keys) {
      good_devices_ = keys;
      good_changed = true;
    }
  }
  if (changed) {
    Changed(missing.empty() ? "environment ok again: the device probe sees every device again"
                                       : "environment failing: " + Now().reason.value_or(""),
                       missing.empty());
  } else if (good_changed) {
    Persist(false);
  }
}

Status EnvironmentWatch::CheckPlacement(const loadconfig::LoadConfig& load_config) {
  const loadconfig::LlamaConfig* llama = load_config.llama();
  if (llama == nullptr) return Status::Ok();
  std::vector<loadconfig::PresentDevice> present;
  {
    std::lock_guard lock(mu_);
    if (devices_error_ == kProbeStillRunning || devices_.empty()) return Status::Ok();
    for (const auto& d : devices_) present.push_back({d.id.empty() ? d.name : d.id, d.kind != "cpu"});
  }
  return loadconfig::CheckPlacement(*llama, present);
}

void EnvironmentWatch::Persist(bool streak_now) {
  std::lock_guard write_lock(write_mu_);
  EnvironmentStateRecord record;
  {
    std::lock_guard lock(mu_);
    const EnvironmentState& state = detector_.state();
    record.failing = state.failing;
    if (state.failing) record.reason = state.reason;
    record.since = state.since;
    record.devices_missing = state.devices_missing;
    record.good_devices = JoinLines(good_devices_);
    record.streak_after = streak_after_;
  }
  Status st = [&] {
    ASSIGN_OR_RETURN(Transaction tx, registry_.BeginWrite());
    RETURN_IF_ERROR(tx.WriteEnvironmentState(record, streak_now));
    return tx.Commit();
  }();
  if (!st.ok()) {
    MW_LOG(kError, "environment") << "cannot record the environment state (it is kept in memory; a restart "
                                     "would not see it): " << st.ToString();
    return;
  }
  if (streak_now) {
    // Read back what the row now says, so later writes keep it.
    auto stored = registry_.GetEnvironmentState();
    if (stored.ok() && *stored) {
      std::lock_guard lock(mu_);
      streak_after_ = (*stored)->streak_after;
    }
  }
}

void EnvironmentWatch::Changed(const std::string& log_line, bool streak_reset) {
  bool failing;
  {
    std::lock_guard lock(mu_);
    failing = detector_.state().failing;
  }
  ::mw::LogLine(failing ? LogLevel::kWarn : LogLevel::kInfo, "environment") << log_line;
  metrics_.SetEnvironmentFailing(failing);
  Persist(streak_reset);
  hooks_.publish();
}

void EnvironmentWatch::Restore() {
  auto stored = registry_.GetEnvironmentState();
  if (!stored.ok()) {
    MW_LOG(kError, "environment") << "cannot read the environment state; starting ok: " << stored.status().ToString();
    return;
  }
  EnvironmentState state;
  AttemptId after = 0;
  std::vector<std::string> good;
  if (*stored) {
    const EnvironmentStateRecord& r = **stored;
    state.failing = r.failing;
    state.reason = r.reason.value_or("");
    state.since = r.since;
    state.devices_missing = r.devices_missing;
    after = r.streak_after;
    good = SplitLines(r.good_devices);
  }
  // The failed attempts that still count toward a streak: those after the
  // last success (and after streak_after), newest first in the registry.
  std::vector<SystemFailureDetector::FailedAttempt> recent;
  auto attempts = registry_.ListRecentLoadOutcomes(after, kSystemFailureStreak);
  if (!attempts.ok()) {
    MW_LOG(kError, "environment") << "cannot read the recent attempts; the streak starts empty: "
                                  << attempts.status().ToString();
  } else {
    for (const AttemptRecord& a : *attempts) {
      if (a.outcome == AttemptOutcome::kSuccess) break;
      SystemFailureDetector::FailedAttempt f;
      f.attempt_id = a.id;
      f.model_name = a.model_name;
      f.category = a.category.value_or("other");
      f.summary = a.summary.value_or("");
      f.at = ParseIso8601(a.finished_at.value_or("")).value_or(SystemFailureDetector::Clock::time_point{});
      recent.push_back(std::move(f));
    }
    std::reverse(recent.begin(), recent.end());  // oldest first
  }
  std::vector<int64_t> revert;
  {
    std::lock_guard lock(mu_);
    detector_.Restore(state, recent);
    good_devices_ = good;
    streak_after_ = after;
    // A streak completed just before the server stopped, whose state was
    // not written yet: decide it now (reverting is idempotent). Only a
    // recent one: an old streak (a registry from before schema version 5,
    // whose state was kept in memory) is history, not today's environment.
    if (!recent.empty() && SystemFailureDetector::Clock::now() - recent.back().at <= kSystemFailureWindow) {
      revert = detector_.Evaluate(NowIso8601());
    }
  }
  metrics_.SetEnvironmentFailing(state.failing || !revert.empty());
  if (state.failing) {
    MW_LOG(kWarn, "environment") << "environment still failing (since " << state.since.value_or("?")
                                 << "): " << state.reason;
  }
  if (!recent.empty()) {
    MW_LOG(kInfo, "environment") << recent.size() << " failed attempt(s) since the last success still count "
                                 << "toward a streak of device-level failures";
  }
  if (!revert.empty()) {
    hooks_.revert_streak(revert);
    Changed("environment failing: " + Now().reason.value_or(""), false);
  }
}

}  // namespace mw::app
