// EnvironmentWatch (SPEC §11): the fingerprint each attempt
// is made under, stale verdicts, retest, and the system-wide failure state.
// The rules are pure and tested in compat/ (environment.h,
// system_failure.h); this file reads the machine and wires them in.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "app/command_policy.h"
#include "app/model_paths.h"
#include "app/environment_watch.h"
#include "classifier/crash_catalog.h"
#include "common/log.h"
#include "common/time_util.h"
#include "loadconfig/loadconfig.h"

#ifndef MW_LLAMA_BUILD
#define MW_LLAMA_BUILD ""
#endif
#ifndef MW_LLAMA_LIB
#define MW_LLAMA_LIB ""
#endif

namespace mw::app {
namespace {

// The whole (small) file, or nullopt when it cannot be read.
std::optional<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text(4096, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

// "resolved-path size mtime" of a file, or "" when it cannot be found.
std::string FileIdentity(const std::string& path) {
  std::error_code ec;
  std::filesystem::path resolved = std::filesystem::canonical(path, ec);
  if (ec) return "";
  struct stat st {};
  if (::stat(resolved.c_str(), &st) != 0) return "";
  return EngineBinaryComponent(resolved.string(), static_cast<int64_t>(st.st_size), static_cast<int64_t>(st.st_mtime));
}

// argv[0] as execvp would find it: a path with '/', or the first match on PATH.
std::string FindProgram(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// "devices=...; llama.cpp=..." for the log.
std::string ClassText(const EnvironmentComponents& components) {
  std::string text;
  for (const auto& [key, value] : components) text += (text.empty() ? "" : "; ") + key + "=" + value;
  return text.empty() ? "(nothing known yet)" : text;
}

}  // namespace

EnvironmentWatch::EnvironmentWatch(Registry& registry, Supervisor& supervisor, metrics::Metrics& metrics,
                                   std::string version, EnvironmentWatchHooks hooks)
    : registry_(registry),
      supervisor_(supervisor),
      metrics_(metrics),
      version_(std::move(version)),
      hooks_(std::move(hooks)) {}

void EnvironmentWatch::SetDevices(std::vector<api::DeviceInfo> devices, std::string error) {
  {
    std::lock_guard lock(mu_);
    devices_ = std::move(devices);
    devices_error_ = std::move(error);
  }
  Refresh();
}

EnvironmentWatch::Devices EnvironmentWatch::DevicesNow() {
  std::lock_guard lock(mu_);
  return {devices_, devices_error_, backends_};
}

void EnvironmentWatch::Refresh() {
  EnvironmentInputs in;
  {
    std::lock_guard lock(mu_);
    in.devices_known = devices_error_.empty() || !devices_.empty();
    for (const auto& d : devices_) in.devices.push_back({d.name, d.kind, d.memory_total, d.backend});
  }
  in.nvidia_version_file = ReadSmallFile("/proc/driver/nvidia/version");
  in.amdgpu_version_file = ReadSmallFile("/sys/module/amdgpu/version");
  in.proc_version = ReadSmallFile("/proc/version");
  in.llama_build = MW_LLAMA_BUILD;
  in.llama_lib = std::string(MW_LLAMA_LIB).empty() ? "" : FileIdentity(MW_LLAMA_LIB);
  in.modelwarden_version = version_;
  EnvironmentComponents components = BuildComponents(in);
  std::string environment_class = EnvironmentClass(in);
  bool keep_class = false;
  {
    std::lock_guard lock(mu_);
    for (auto& d : devices_) d.driver = DeviceDriver(d.backend, d.description, components);
    base_components_ = std::move(components);
    // A device that went missing is the environment failing (SPEC §11), not
    // another class of machine: its verdicts stay where they are.
    keep_class = detector_.state().failing && !environment_class_.empty();
    if (keep_class || environment_class == environment_class_) return;
    environment_class_ = environment_class;
  }
  // SPEC §14: the verdicts this node reads and writes from now on.
  registry_.SetEnvironmentClass(environment_class);
  MW_LOG(kInfo, "environment") << "environment class " << environment_class << ": "
                               << ClassText(ClassComponents(in));
  hooks_.list_changed();
}

EnvironmentComponents EnvironmentWatch::ModelComponents(const ModelRecord& model) {
  EnvironmentComponents components;
  {
    std::lock_guard lock(mu_);
    components = base_components_;
  }
  if (std::string file = ModelFileIdentity(model); !file.empty()) components[std::string(kModelFileKey)] = file;
  if (model.engine != kEngineCommand) return components;
  auto validated = loadconfig::ValidateLoadConfig(model.engine, model.load_config);
  if (!validated.ok() || validated->command() == nullptr) return components;
  LoadRequest request;
  if (!ResolveCommand(model.model_name, *validated->command(), *hooks_.config(), request).ok() || request.argv.empty()) {
    return components;
  }
  const std::string program = FindProgram(request.argv[0]);
  const std::string identity = program.empty() ? "" : FileIdentity(program);
  if (!identity.empty()) components[std::string(kEngineBinaryKey)] = identity;
  if (!program.empty()) {
    bool changed = false;
    {
      std::lock_guard lock(env_mu_);
      auto [it, inserted] = engine_binaries_.try_emplace(program, identity);
      changed = !inserted && it->second != identity;
      it->second = identity;
    }
    if (changed) hooks_.list_changed();  // a cached model list holds the old verdict_stale
  }
  return components;
}

std::string EnvironmentWatch::ModelFileIdentity(const ModelRecord& model) {
  if (!model.file_path || model.file_path->empty()) return "";
  const config::Location* location = hooks_.config()->FindLocation(model.cache_location);
  if (location == nullptr) return "";
  auto file = ResolveModelFile(location->path, *model.file_path, /*must_exist=*/true);
  return file.ok() ? model_files_.Of(file->absolute.string()) : "";
}

bool EnvironmentWatch::CheckEngineBinaries() {
  std::vector<std::string> programs;
  {
    std::lock_guard lock(env_mu_);
    for (const auto& [program, identity] : engine_binaries_) programs.push_back(program);
  }
  bool changed = false;
  for (const std::string& program : programs) {
    const std::string now = FileIdentity(program);
    std::lock_guard lock(env_mu_);
    std::string& seen = engine_binaries_[program];
    if (seen != now) {
      seen = now;
      changed = true;
    }
  }
  if (changed) hooks_.list_changed();
  return changed;
}

bool EnvironmentWatch::InputsChanged() {
  const bool binaries = CheckEngineBinaries();
  const bool files = model_files_.AnyChanged();
  if (files) hooks_.list_changed();  // a cached list holds the old verdict_stale
  return binaries || files;
}

std::string EnvironmentWatch::Fingerprint(const ModelRecord& model) {
  const EnvironmentComponents components = ModelComponents(model);
  std::string fingerprint = mw::Fingerprint(components);
  {
    std::lock_guard lock(env_mu_);
    if (known_environments_.count(fingerprint) != 0) return fingerprint;
  }
  // Kept before the attempt that names it, so a stale-verdict reason can
  // always be given. A failure here costs only that reason.
  Status st = [&] {
    ASSIGN_OR_RETURN(Transaction tx, registry_.BeginWrite());
    RETURN_IF_ERROR(tx.RecordEnvironment(fingerprint, SerializeComponents(components)));
    return tx.Commit();
  }();
  if (!st.ok()) {
    MW_LOG(kWarn, "environment") << "cannot record environment " << fingerprint << ": " << st.ToString();
    return fingerprint;
  }
  std::lock_guard lock(env_mu_);
  known_environments_[fingerprint] = components;
  return fingerprint;
}

void EnvironmentWatch::FillVerdict(const ModelRecord& record, api::ModelView& view) {
  view.verdict_fingerprint = record.verdict_fingerprint;
  if (!record.verdict_fingerprint) return;
  std::optional<EnvironmentComponents> then;
  {
    std::lock_guard lock(env_mu_);
    if (auto it = known_environments_.find(*record.verdict_fingerprint); it != known_environments_.end()) {
      then = it->second;
    }
  }
  if (!then) {
    auto stored = registry_.GetEnvironment(*record.verdict_fingerprint);
    if (!stored.ok() || !*stored) return;  // unknown environment: no evidence of a change
    then = ParseComponents(**stored);
    std::lock_guard lock(env_mu_);
    known_environments_[*record.verdict_fingerprint] = *then;
  }
  VerdictStaleness staleness = CompareVerdict(*then, ModelComponents(record), record.engine);
  view.verdict_stale = staleness.stale;
  if (staleness.stale) view.verdict_stale_reason = staleness.reason;
}

api::EnvironmentView EnvironmentWatch::Now() {
  api::EnvironmentView v;
  std::lock_guard lock(mu_);
  v.fingerprint = mw::Fingerprint(base_components_);
  for (const auto& [key, value] : base_components_) v.components[key] = value;
  const EnvironmentState& state = detector_.state();
  v.failing = state.failing;
  if (state.failing) v.reason = state.reason;
  v.since = state.since;
  v.retest_stale = hooks_.config()->retest_stale_auto ? "auto" : "ask";
  return v;
}

bool EnvironmentWatch::Blames(const std::string& category) {
  std::lock_guard lock(mu_);
  return detector_.BlamesModel(category);
}

void EnvironmentWatch::NoteAttempt(AttemptId attempt, const std::string& name, const FailureInfo* failure) {
  std::vector<int64_t> revert;
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    if (failure == nullptr) {
      changed = detector_.OnSuccess();
    } else {
      const bool was = detector_.state().failing;
      revert = detector_.OnFailure(
          {attempt, name, failure->category, failure->summary, SystemFailureDetector::Clock::now()}, NowIso8601());
      changed = was != detector_.state().failing;
    }
  }
  // Re-probe on each device-level failure: a lost device shows there first.
  if (failure != nullptr && IsDeviceLevelCategory(failure->category)) RequestProbe();
  // The verdicts first, then the state: a crash in between leaves the
  // state `ok` with the streak in load_attempts, and the next start decides
  // it again (RestoreEnvironment; reverting twice changes nothing).
  if (!revert.empty()) hooks_.revert_streak(revert);
  if (changed) {
    Changed(failure == nullptr ? "environment ok again (a model loaded)"
                                          : "environment failing: " + Now().reason.value_or(""),
                       failure == nullptr);
  }
}

void EnvironmentWatch::Reset() {
  bool was;
  {
    std::lock_guard lock(mu_);
    was = detector_.Reset();
    // The next probe's devices are the good ones (a device removed on
    // purpose is no longer missed).
    good_devices_.clear();
  }
  Refresh();
  if (was) {
    Changed("environment reset to ok by request", true);
  } else {
    Persist(true);  // the streak so far no longer counts
  }
  RequestProbe();
}

}  // namespace mw::app
