// ModelService: registry CRUD, status, views and events. The load path is
// LoadDirector's (load_director.h).
#include "app/model_service.h"

#include "app/command_policy.h"
#include "app/host_memory.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include "app/model_paths.h"
#include "common/gguf_header.h"
#include "common/log.h"
#include "common/time_util.h"
#include "loadconfig/loadconfig.h"

namespace mw::app {

ModelService::ModelService(Registry& registry, StateMachine& state_machine, Supervisor& supervisor,
                           const CrashClassifier& classifier, const config::Config& config, std::string version)
    : registry_(registry),
      state_machine_(state_machine),
      supervisor_(supervisor),
      config_(std::make_shared<const config::Config>(config)),
      classifier_(classifier),
      version_(std::move(version)),
      started_ms_(MonotonicMillis()) {
  environment_.Refresh();
}

ModelService::~ModelService() { Shutdown(); }

void ModelService::BeginShutdown() {
  shutting_down_ = true;
  loads_.StopHealthWatch();  // no engine is judged while they are being stopped
  admission_.Close();  // /v1 requests waiting for a slot answer 503; engines are about to be stopped: no death to wait for
}

void ModelService::Shutdown() {
  shutting_down_ = true;
  admission_.Close();
  if (shut_down_.exchange(true)) return;  // the destructor calls it again
  loads_.StopHealthWatch();
  admission_.StopIdleUnloader();
  environment_.Stop();
  loads_.Shutdown();  // queued loads cancelled, the running job awaited, pending outcomes flushed
  // Supervisor::Shutdown() stopped the workers without a callback: loaded
  // models are no longer loaded, and a cached list must not say otherwise.
  ListChanged();
}

void ModelService::Reconfigure(const config::Config& config, const CrashClassifier& classifier) {
  auto next = std::make_shared<const config::Config>(config);
  std::lock_guard lock(reconfigure_mu_);
  config_ = std::move(next);
  classifier_ = classifier;
}

std::shared_ptr<const config::Config> ModelService::CurrentConfig() const {
  std::lock_guard lock(reconfigure_mu_);
  return config_;
}

CrashClassifier ModelService::CurrentClassifier() const {
  std::lock_guard lock(reconfigure_mu_);
  return classifier_;
}

namespace {

// SPEC §18: a llama.cpp model's file must be a GGUF, checked at registration.
// kDataLoss naming the reason ("... is not a GGUF file: it does not start
// with the GGUF magic").
Status CheckGgufFile(const std::string& path) {
  Result<GgufHeader> header = ReadGgufHeader(path);
  if (header.ok()) return Status::Ok();
  if (header.status().code() != StatusCode::kDataLoss) return InvalidArgumentError(header.status().message());
  MW_LOG(kWarn, "api") << "registration refused: " << header.status().message();
  return header.status();
}

Status CheckName(const std::string& name) {
  if (!IsValidModelName(name)) {
    return InvalidArgumentError("invalid model name '" + name.substr(0, 140) +
                                "': use 1-128 characters [A-Za-z0-9._-], starting with a letter or digit");
  }
  return Status::Ok();
}

api::AttemptView ToAttemptView(const AttemptRecord& a) {
  api::AttemptView v;
  v.id = a.id;
  v.started_at = a.started_at;
  v.finished_at = a.finished_at;
  v.outcome = a.outcome ? std::string(ToString(*a.outcome)) : "";
  v.forced = a.forced;
  v.status_before = std::string(ToString(a.status_before));
  v.status_after = a.status_after ? std::string(ToString(*a.status_after)) : "";
  if (a.exit_code) v.exit_code = static_cast<int>(*a.exit_code);
  v.signal = a.signal;
  v.category = a.category.value_or("");
  v.pattern_id = a.pattern_id.value_or("");
  v.summary = a.summary.value_or("");
  v.matched_line = a.matched_line.value_or("");
  v.log_excerpt = a.log_excerpt.value_or("");
  v.duration_ms = a.duration_ms;
  return v;
}

std::map<std::string, int64_t> CountsToNames(const StatusCounts& counts) {
  std::map<std::string, int64_t> out;
  for (CompatStatus s : kAllCompatStatuses) out[std::string(ToString(s))] = 0;
  for (const auto& [s, n] : counts) out[std::string(ToString(s))] = n;
  return out;
}

}  // namespace

api::ModelView ModelService::ToView(const ModelRecord& r) {
  api::ModelView v;
  v.model_name = r.model_name;
  v.hf_path = r.hf_path.value_or("");
  v.cache_location = r.cache_location;
  v.file_path = r.file_path.value_or("");
  v.engine = r.engine;
  v.compatibility_status = std::string(ToString(r.compatibility_status));
  v.compatibility_notes = r.compatibility_notes.value_or("");
  v.load_config_json = r.load_config;
  v.total_loads = r.total_loads;
  v.total_failures = r.total_failures;
  v.created_at = r.created_at;
  v.updated_at = r.updated_at;
  v.last_loaded_at = r.last_loaded_at;
  v.last_failed_at = r.last_failed_at;
  v.last_hung_at = loads_.LastHungAt(r.model_name);
  environment_.FillVerdict(r, v);
  std::optional<LoadedModel> loaded = supervisor_.FindLoaded(r.model_name);
  const ModelRuntime rt = models_.Get(r.model_name);
  v.load_state = rt.state;
  v.load_progress = rt.progress;
  v.last_error = rt.last_error;
  if (loaded) {
    v.loaded = true;
    v.load_state = api::LoadState::kLoaded;
    v.load_progress = 1.0;
    for (const auto& d : loaded->devices) {
      v.memory.push_back({d.name, std::string(protocol::DeviceKindName(d.kind)), static_cast<int64_t>(d.memory_used)});
    }
    if (loaded->n_layers > 0) {
      v.n_layers = loaded->n_layers;
      v.offloaded_layers = loaded->offloaded_layers;
    }
  } else if (v.load_state == api::LoadState::kLoaded) {
    // The supervisor already forgot the dead worker, but OnWorkerDied, which
    // marks it not loaded and sets last_error in one step, has not run yet:
    // loaded until then, so that "not loaded" never shows without its reason.
    v.loaded = true;
  }
  return v;
}

Result<std::vector<api::ModelView>> ModelService::ListModels() {
  ASSIGN_OR_RETURN(std::vector<ModelRecord> records, registry_.ListModels());
  std::vector<api::ModelView> views;
  views.reserve(records.size());
  for (const auto& r : records) views.push_back(ToView(r));
  return views;
}

Result<api::ModelView> ModelService::GetModel(const std::string& name) {
  RETURN_IF_ERROR(CheckName(name));
  // One registry read (one round trip on PostgreSQL: issue 26).
  ASSIGN_OR_RETURN(ModelDetail detail, registry_.GetModelDetail(name, 20));
  api::ModelView view = ToView(detail.model);
  for (const auto& a : detail.attempts) view.attempts.push_back(ToAttemptView(a));
  AddFit(detail.model, view);
  view.verdicts = FleetView::VerdictViews(std::move(detail.verdicts));  // SPEC §14
  return view;
}

Result<api::ModelView> ModelService::RegisterModel(const api::RegisterRequest& request) {
  const ListChangedOnExit changed{this};
  RETURN_IF_ERROR(CheckName(request.model_name));
  ModelRecord record;
  record.model_name = request.model_name;
  std::string engine_text = request.engine.value_or(std::string(kEngineLlamaCpp));
  auto engine = loadconfig::ParseEngine(engine_text);
  if (!engine.ok()) return InvalidArgumentError("engine must be \"llama.cpp\" or \"command\" (got '" + engine_text + "')");
  record.engine = std::string(loadconfig::EngineName(*engine));
  if (!request.hf_path.empty()) {
    if (!IsValidHfPath(request.hf_path)) {
      return InvalidArgumentError("hf_path must look like 'org/name' (got '" + request.hf_path.substr(0, 200) + "')");
    }
    record.hf_path = request.hf_path;
  }
  record.cache_location = request.cache_location.empty() ? std::string(config::kPrimaryLocation) : request.cache_location;
  const auto config = CurrentConfig();
  const config::Location* location = config->FindLocation(record.cache_location);
  if (location == nullptr) {
    std::string names;
    for (const auto& l : config->locations) names += (names.empty() ? "" : ", ") + l.name;
    return InvalidArgumentError("unknown cache_location '" + record.cache_location.substr(0, 100) +
                                "' (configured: " + names + ")");
  }
  bool llama = *engine == loadconfig::Engine::kLlamaCpp;
  if (request.file_path && !request.file_path->empty()) {
    auto file = ResolveModelFile(location->path, *request.file_path, /*must_exist=*/llama);
    if (!file.ok()) return InvalidArgumentError(file.status().message());
    if (llama) RETURN_IF_ERROR(CheckGgufFile(file->absolute.string()));
    record.file_path = file->relative;
  } else if (llama) {
    if (!record.hf_path) {
      return InvalidArgumentError("a llama.cpp model needs file_path (relative to its location " +
                                  location->path.string() + ") or an hf_path found in a Hugging Face cache there");
    }
    auto file = ResolveHfCacheFile(location->path, *record.hf_path);
    if (!file.ok()) return InvalidArgumentError(file.status().message());
    RETURN_IF_ERROR(CheckGgufFile(file->absolute.string()));
    record.file_path = file->relative;
  }
  std::string config_text = request.load_config_json.value_or("{}");
  auto validated = loadconfig::ValidateLoadConfig(*engine, config_text);
  if (!validated.ok()) return InvalidArgumentError("invalid load_config: " + validated.status().message());
  RETURN_IF_ERROR(CheckApiLoadConfig(*validated, *config));
  RETURN_IF_ERROR(environment_.CheckPlacement(*validated));
  record.load_config = config_text;
  Result<ModelRecord> added = registry_.AddModel(record);
  // kDataLoss from RegisterModel means the model file (the API's 400
  // invalid_model): the registry's own corruption is internal here.
  if (!added.ok() && added.status().code() == StatusCode::kDataLoss) return InternalError(added.status().message());
  ASSIGN_OR_RETURN(ModelRecord stored, std::move(added));
  MW_LOG(kInfo, "api") << "registered model=" << stored.model_name << " engine=" << stored.engine;
  PublishModel(stored.model_name);
  PublishCounts();
  return ToView(stored);
}

Result<api::ModelView> ModelService::UpdateConfig(const std::string& name, const api::ConfigPatch& patch) {
  // On every exit: cheap, and nothing is missed if a write fails late.
  const ListChangedOnExit list_changed{this};
  RETURN_IF_ERROR(CheckName(name));
  RETURN_IF_ERROR(loads_.Flush(name));  // else it is still `testing` on disk
  ASSIGN_OR_RETURN(ModelRecord current, registry_.GetModel(name));
  // Everything is validated before anything is written.
  std::optional<CompatStatus> status;
  if (patch.compatibility_status) {
    status = ParseCompatStatus(*patch.compatibility_status);
    if (!status) {
      return InvalidArgumentError("compatibility_status must be one of unknown, compatible, incompatible, degraded (got '" +
                                  patch.compatibility_status->substr(0, 50) + "')");
    }
    if (*status == CompatStatus::kTesting) {
      return InvalidArgumentError("compatibility_status 'testing' is set only by the server during a load");
    }
  }
  ModelUpdate update;
  if (patch.load_config_json) {
    auto validated = loadconfig::ValidateLoadConfig(current.engine, *patch.load_config_json);
    if (!validated.ok()) return InvalidArgumentError("invalid load_config: " + validated.status().message());
    RETURN_IF_ERROR(CheckApiLoadConfig(*validated, *CurrentConfig()));
    RETURN_IF_ERROR(environment_.CheckPlacement(*validated));
    update.load_config = *patch.load_config_json;
  }
  if (patch.compatibility_notes) {
    if (patch.compatibility_notes->size() > 64 * 1024) return InvalidArgumentError("compatibility_notes is too long (max 64 KiB)");
    update.compatibility_notes = *patch.compatibility_notes;
  }
  ModelRecord after = current;
  if (status || update.load_config || update.compatibility_notes) {
    // One transaction: a crash or a storage error never leaves half a PATCH.
    ASSIGN_OR_RETURN(after, state_machine_.ApplyManualChange(name, status, update));
  }
  PublishModel(name);
  if (status) PublishCounts();
  return ToView(after);
}

Status ModelService::DeleteModel(const std::string& name) {
  // Also when the unload succeeded and the delete failed.
  const ListChangedOnExit changed{this};
  RETURN_IF_ERROR(CheckName(name));
  RETURN_IF_ERROR(loads_.Flush(name));  // else it is still `testing` on disk
  ASSIGN_OR_RETURN(ModelRecord record, registry_.GetModel(name));
  if (loads_.LoadUnderWay(name)) {
    return FailedPreconditionError("model '" + name + "' has a load in progress; unload it or wait, then delete");
  }
  if (supervisor_.IsLoaded(name)) {
    auto stopped = supervisor_.Unload(name);
    if (!stopped.ok() && stopped.status().code() != StatusCode::kNotFound) return stopped.status();
  }
  RETURN_IF_ERROR(registry_.DeleteModel(name));
  models_.Erase(name);
  MW_LOG(kInfo, "api") << "deleted model=" << name;
  PublishCounts();
  return Status::Ok();
}

Result<api::LoadResult> ModelService::Load(const std::string& name, bool force) {
  if (!IsValidModelName(name)) return InvalidArgumentError("invalid model name '" + name.substr(0, 140) + "'");
  ASSIGN_OR_RETURN(ModelRead model, ModelRead::Read(registry_, name));  // read once, validated once
  return loads_.Load(std::move(model), force);  // load_director.h
}

void ModelService::OnWorkerDied(const UnexpectedExit& exit) { loads_.OnWorkerDied(exit); }

Result<api::ModelView> ModelService::Unload(const std::string& name) {
  const ListChangedOnExit changed{this};
  RETURN_IF_ERROR(CheckName(name));
  ASSIGN_OR_RETURN(ModelRecord record, registry_.GetModel(name));
  // Unloaded by hand (or by the idle thread): no idle deadline left; /v1
  // requests this unload cuts off answer at once, not as a crash.
  const std::optional<LoadedModel> loaded = supervisor_.FindLoaded(name);
  admission_.OnUnload(name, loaded ? std::optional<int>(loaded->pid) : std::nullopt);
  if (!loads_.CancelQueued(name)) {  // a load still queued is simply dropped
    // A load in progress that this unload stops records its cancelled attempt
    // once its process is gone; the answer waits for that record, so that a
    // load asked right after the unload starts anew instead of joining the
    // cancelled job (and getting its "cancelled").
    const auto running_load = loads_.RunningJob(name);
    auto stopped = supervisor_.Unload(name);  // also cancels a load in progress
    if (!stopped.ok() && stopped.status().code() == StatusCode::kNotFound) {
      // A load that has left the queue but has no process (its durable
      // `testing` commit is being written, or it is recording): it is told
      // not to start one, and the unload waits on the model's runtime until
      // its process exists (then cancels it) or the job ended, rather than
      // answer "unloaded" while the load goes on.
      const bool settled = models_.CancelStartingJob(name, MonotonicMillis() + 30000, [&] {
        MW_LOG(kInfo, "api") << "unload of model=" << name << " waits for its starting load, to cancel it";
      });
      if (!settled) return UnavailableError("the load of '" + name + "' is starting; retry the unload in a moment");
      stopped = supervisor_.Unload(name);  // the process it started, if any
    }
    if (!stopped.ok() && stopped.status().code() != StatusCode::kNotFound) return stopped.status();
    if (stopped.ok()) {
      MW_LOG(kInfo, "api") << "unloaded model=" << name << " (" << stopped->Describe() << ")";
      models_.MarkNotLoaded(name);
    }
    if (running_load && running_load->wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      MW_LOG(kWarn, "api") << "unload of model=" << name << ": its stopped load has not recorded its attempt within 30 s";
    }
  }
  PublishModel(name);
  ASSIGN_OR_RETURN(ModelRecord after, registry_.GetModel(name));
  return ToView(after);
}

Result<api::ServerStatus> ModelService::GetStatus() {
  api::ServerStatus status;
  status.version = version_;
  status.uptime_s = (MonotonicMillis() - started_ms_) / 1000;
  ASSIGN_OR_RETURN(StatusCounts counts, registry_.CountByStatus());
  status.counts = CountsToNames(counts);
  for (const LoadedModel& loaded : supervisor_.Loaded()) {
    auto record = registry_.GetModel(loaded.model_name);
    if (record.ok()) status.loaded_models.push_back(ToView(*record));
  }
  status.environment = environment_.Now();
  for (const auto& preset : CurrentConfig()->engine_presets) status.engine_presets.push_back(preset.name);
  fit_.FillResidency(status);  // fit_and_residency.h: last use, keep-alive, memory
  ASSIGN_OR_RETURN(status.node, fleet_.Summary());  // SPEC §14
  EnvironmentWatch::Devices seen = environment_.DevicesNow();
  status.devices = std::move(seen.devices);
  // SPEC §18: one CPU free-memory figure everywhere (the engine's CPU device reports its total).
  if (std::optional<int64_t> ram = AvailableRam()) {
    for (api::DeviceInfo& d : status.devices) {
      if (d.kind == "cpu") d.memory_free = std::min(*ram, d.memory_total > 0 ? d.memory_total : *ram);
    }
  }
  status.devices_error = std::move(seen.error);
  status.backends = std::move(seen.backends);
  for (const LoadQueueEntry& q : loads_.QueueSnapshot()) {
    api::QueueEntry e;
    e.model_name = q.model_name;
    e.state = q.state == LoadQueueState::kRunning ? api::LoadState::kLoading : api::LoadState::kQueued;
    e.progress = models_.Get(q.model_name).progress;
    status.load_queue.push_back(e);
  }
  return status;
}

int64_t ModelService::Subscribe(api::EventListener listener) { return subscribers_.Subscribe(std::move(listener)); }

void ModelService::Unsubscribe(int64_t id) { subscribers_.Unsubscribe(id); }

void ModelService::PublishModel(const std::string& name) {
  ListChanged();  // first: even if the model is gone now
  auto record = registry_.GetModel(name);
  if (!record.ok()) return;
  api::Event event;
  event.kind = api::Event::Kind::kModel;
  event.model = ToView(*record);
  subscribers_.Publish(event);
}

void ModelService::PublishCounts() {
  ListChanged();
  auto counts = registry_.CountByStatus();
  if (!counts.ok()) return;
  api::Event event;
  event.kind = api::Event::Kind::kStatus;
  event.counts = CountsToNames(*counts);
  subscribers_.Publish(event);
}

void ModelService::PublishEnvironment() {
  api::Event event;
  event.kind = api::Event::Kind::kEnvironment;
  event.environment = environment_.Now();
  subscribers_.Publish(event);
}

void ModelService::AddFit(const ModelRecord& record, api::ModelView& view) {
  auto request = loads_.BuildLoadRequest(ModelRead(record));
  if (!request.ok()) return;
  (void)fit_.ApplyAutoFit(*request);  // the estimate of the settings a load would use
  auto estimate = fit_.Estimate(*request);
  if (!estimate.ok()) {
    MW_LOG(kDebug, "fit") << "model=" << record.model_name << " no estimate: " << estimate.status().ToString();
    return;
  }
  view.fit = std::move(*estimate);
  if (view.fit && view.loaded && !view.memory.empty()) {
    int64_t used = 0;
    for (const auto& d : view.memory) used += d.memory_used;
    view.fit->memory_used = used;
  }
}

void ModelService::UnloadIdle(const std::string& name) {
  if (!supervisor_.IsLoaded(name)) return;
  MW_LOG(kInfo, "serve") << "model=" << name << " idle past its keep_alive: unloading";
  auto unloaded = Unload(name);
  if (!unloaded.ok()) MW_LOG(kWarn, "serve") << "model=" << name << " idle unload: " << unloaded.status().ToString();
}

}  // namespace mw::app
