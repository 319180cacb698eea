// app/environment_watch.h: the machine a load runs on (SPEC §11, §14, §15;
// a collaborator of ModelService: the environment).
//
// Contract:
//   Devices: the probe thread (Start; the first probe at once, then every
//     probe_interval_s and after each RequestProbe, i.e. each device-level
//     failure) runs probe_command or `modelwarden-worker probe` (killed
//     after 30 s). A failed probe changes nothing but the log; a probe that
//     no longer sees a device of the last good one makes the environment
//     `failing`, their return makes it `ok`. Stop() stops and joins it.
//   Environment: base components (drivers, kernel, llama.cpp build, devices)
//     and the class handed to Registry::SetEnvironmentClass (Refresh); each
//     model's fingerprint (plus its model file and, for a command engine,
//     its binary), recorded before the attempt that names it; whether a
//     verdict is stale (FillVerdict).
//   Streak: NoteAttempt feeds SystemFailureDetector; 3 models in a row
//     failing at the device level make it `failing` and hooks.revert_streak
//     reverts their verdicts (the verdicts first, then the state row).
//     Reset() clears it by request; Restore() reads the state the registry
//     kept (call once, before any load).
//   Every state change: log, metrics gauge, registry row, hooks.publish.
// Thread-safe: one lock for devices and the streak (mu_), one for known
// environments and engine binaries (env_mu_), one state write at a time
// (write_mu_, taken before mu_), the probe thread's own (a WakeableThread). No
// lock is held while a hook runs or the registry is written.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "api/model_api.h"
#include "app/model_file_identity.h"
#include "common/wakeable_thread.h"
#include "compat/environment.h"
#include "compat/state_machine.h"
#include "compat/system_failure.h"
#include "config/config.h"
#include "loadconfig/loadconfig.h"
#include "metrics/metrics.h"
#include "registry/registry.h"
#include "supervisor/supervisor.h"

namespace mw::app {

struct EnvironmentWatchHooks {
  std::function<std::shared_ptr<const config::Config>()> config;  // the configuration now (SIGHUP)
  std::function<bool()> shutting_down;  // a probe answered then is dropped
  std::function<void()> list_changed;   // a cached model list may hold a stale verdict_stale or class
  std::function<void(const std::vector<int64_t>& attempts)> revert_streak;  // not the models' fault
  std::function<void()> publish;  // SSE `environment`: the state changed
};

class EnvironmentWatch {
 public:
  // The references must outlive the watch.
  EnvironmentWatch(Registry& registry, Supervisor& supervisor, metrics::Metrics& metrics, std::string version,
                   EnvironmentWatchHooks hooks);
  ~EnvironmentWatch() { Stop(); }  // the probe thread ends before the members it uses

  void Start() { probe_thread_.Start(); }  // the probe thread (once; never after Stop)
  void RequestProbe() { probe_thread_.Wake(); }  // probe again now
  void Stop() { probe_thread_.Stop(); }
  void ProbeOnce();     // one probe on the caller's thread (a fleet node, before it listens)
  void Restore();
  // Devices seen by the startup probe (or the reason there are none).
  void SetDevices(std::vector<api::DeviceInfo> devices, std::string error);
  // Re-reads the driver files and the devices into the base components.
  void Refresh();

  struct Devices {
    std::vector<api::DeviceInfo> devices;
    std::string error;  // "device probe still running" until one answers
    std::vector<api::BackendView> backends;  // the last answered probe's GPU backends
  };
  Devices DevicesNow();
  // SPEC §15: a llama.cpp load_config's placement keys against the devices
  // the last probe saw (400 naming them); Ok while no probe has answered.
  Status CheckPlacement(const loadconfig::LoadConfig& load_config);

  api::EnvironmentView Now();
  bool Blames(const std::string& category);  // a device-level category while failing
  // After an attempt is recorded: failure == nullptr for a success.
  void NoteAttempt(AttemptId attempt, const std::string& name, const FailureInfo* failure);
  void Reset();  // POST /api/environment/reset: ok, the streak and the good devices forgotten

  // The model's fingerprint now; its components are recorded in the registry.
  std::string Fingerprint(const ModelRecord& model);
  void FillVerdict(const ModelRecord& record, api::ModelView& view);
  // An engine binary or a model file changed on disk since last seen
  // (hooks.list_changed has been called for it).
  bool InputsChanged();

 private:
  EnvironmentComponents ModelComponents(const ModelRecord& model);
  std::string ModelFileIdentity(const ModelRecord& model);  // SPEC §18; "" when no readable file
  bool CheckEngineBinaries();
  std::chrono::milliseconds ProbeInterval() const;
  void Persist(bool streak_now);  // the state row (streak_now: the streak so far no longer counts)
  void Changed(const std::string& log_line, bool streak_reset);

  Registry& registry_;
  Supervisor& supervisor_;
  metrics::Metrics& metrics_;
  const std::string version_;
  const EnvironmentWatchHooks hooks_;

  std::mutex mu_;  // guards everything down to env_mu_
  std::vector<api::DeviceInfo> devices_;
  static constexpr const char* kProbeStillRunning = "device probe still running";
  std::string devices_error_ = kProbeStillRunning;
  std::vector<api::BackendView> backends_;
  EnvironmentComponents base_components_;
  std::string environment_class_;  // SPEC §14: as handed to Registry::SetEnvironmentClass
  SystemFailureDetector detector_;
  std::vector<std::string> good_devices_;  // the last good probe's DeviceKeys (empty: none yet)
  AttemptId streak_after_ = 0;             // as in the registry's environment_state row
  std::string last_probe_error_;           // "" when the last probe answered

  std::mutex env_mu_;  // guards the two maps
  std::map<std::string, EnvironmentComponents> known_environments_;  // fingerprint -> components
  std::map<std::string, std::string> engine_binaries_;  // program path -> its identity when last seen
  ModelFileIdentities model_files_;  // its own lock

  std::mutex write_mu_;  // one state write at a time (taken before mu_)

  WakeableThread probe_thread_{[this] { ProbeOnce(); }, [this] { return ProbeInterval(); }, /*work_first=*/true};
};

}  // namespace mw::app
