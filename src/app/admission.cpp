// Admission: the /v1 gate (SPEC §10). A request is admitted to a model's
// engine through serving::ServingGate (n_parallel slots, max_queue waiting),
// the model is loaded on demand through the same Load() as
// POST /api/orchestrate/load (never forced), and a model that served /v1
// requests is unloaded after keep_alive of idleness by the idle thread.
#include <algorithm>
#include <chrono>
#include <cstdint>

#include "api/json_codec.h"
#include "app/admission.h"
#include "common/duration.h"
#include "common/log.h"
#include "common/time_util.h"
#include "loadconfig/loadconfig.h"

namespace mw::app {
namespace {

// Whether the program the model runs, its [engines.NAME] preset's argv or its
// own, has {port}. An unknown preset counts as yes: the load reports it.
bool ArgvHasPort(const loadconfig::CommandConfig& command, const config::Config& config) {
  const std::vector<std::string>* argv = &command.argv;
  if (command.preset) {
    const config::EnginePreset* preset = config.FindPreset(*command.preset);
    if (preset == nullptr) return true;
    argv = &preset->argv;
  }
  for (const auto& arg : *argv) {
    if (arg.find("{port}") != std::string::npos) return true;
  }
  return false;
}

}  // namespace

Admission::Admission(Registry& registry, Supervisor& supervisor, ModelRuntimeTable& models, metrics::Metrics& metrics,
                     AdmissionHooks hooks)
    : registry_(registry),
      supervisor_(supervisor),
      models_(models),
      metrics_(metrics),
      hooks_(std::move(hooks)),
      gate_(models_, &MonotonicMillis, [this](int delta) { metrics_.AddQueueDepth(delta); }) {}

void Admission::OnUnload(const std::string& model, std::optional<int> pid) {
  gate_.ClearIdle(model);
  if (pid) engine_deaths_.NoteStopped(*pid);
}

void Admission::Close() {
  gate_.Close();
  engine_deaths_.Close();
}

// Holds the slot; its destruction frees it and wakes the idle thread (the
// model's idle deadline may now be set).
class Admission::Lease : public api::InferenceLease {
 public:
  Lease(Admission* admission, serving::Slot slot, std::string model)
      : admission_(admission), slot_(std::move(slot)), model_(std::move(model)) {}
  ~Lease() override {
    // Ended without a first token: the worker runs its own decode (SPEC §16).
    if (cold_ && !verified_) Verify(false);
    slot_.Release(MonotonicMillis());
    admission_->idle_unloader_.Wake();
  }
  void TimedOut() override { admission_->metrics_.RecordRequestTimeout(model_); }
  void FirstToken() override {
    if (cold_ && !verified_) Verify(true);
  }
  std::optional<api::LoadResult> LoadFailure(int64_t wait_ms) override {
    return cold_ ? cold_->LoadFailure(wait_ms) : std::nullopt;
  }
  // This request's first token verifies its model's load (cold_request.h).
  void VerifiesLoad(std::shared_ptr<ColdRequest> cold) { cold_ = std::move(cold); }

 private:
  void Verify(bool first_token) {
    verified_ = true;
    Status st = admission_->supervisor_.Verify(model_, engine_pid, first_token);
    if (!st.ok()) MW_LOG(kInfo, "serve") << "model=" << model_ << " " << st.message();  // the load ended meanwhile
  }

  Admission* admission_;
  serving::Slot slot_;
  std::string model_;
  std::shared_ptr<ColdRequest> cold_;
  bool verified_ = false;  // Verify was called (the edge calls FirstToken on one thread)
};

Result<api::InferenceAdmission> Admission::Begin(const api::InferenceRequest& request) {
  const std::string& name = request.model_name;
  // To an OpenAI client a name that cannot exist is simply not found.
  if (!IsValidModelName(name)) return NotFoundError("no model named '" + name.substr(0, 140) + "' is registered");
  // The model's row is read and validated once here and passed down
  // (hooks.load, model_read.h).
  ASSIGN_OR_RETURN(ModelRead read, ModelRead::Read(registry_, name));
  const ModelRecord& model = read.row;
  if (hooks_.shutting_down()) return UnavailableError("the server is shutting down");
  // A stored config that no longer validates is reported by the load itself.
  const Result<loadconfig::LoadConfig>& validated = read.config;
  const int parallel = validated.ok() && validated->n_parallel ? static_cast<int>(*validated->n_parallel) : 1;
  if (request.embeddings && !(validated.ok() && validated->embeddings.value_or(false))) {
    // Worded like PATCH's warning (SPEC §18): a running engine keeps its settings.
    return InvalidArgumentError("model '" + name + "' is not loaded for embeddings: set \"embeddings\": true in its "
                                "load_config (PATCH /api/models/" + name + "/config); it applies at the model's "
                                "next load (if it is loaded, unload it first: POST /api/orchestrate/unload)");
  }
  const auto config = hooks_.config();  // reloadable (SIGHUP)
  if (validated.ok()) {
    if (const loadconfig::CommandConfig* command = validated->command();
        command != nullptr && !ArgvHasPort(*command, *config)) {
      return FailedPreconditionError("model '" + name + "' is a command model whose argv has no {port}: its engine "
                                     "cannot be reached over HTTP, so it cannot serve /v1. Put {port} in its argv");
    }
  }
  api::InferenceAdmission admission;
  if (read.incompatible() && !supervisor_.IsLoaded(name)) {
    admission.kind = api::InferenceAdmission::Kind::kIncompatible;
    admission.load = hooks_.refusal(model);
    admission.load.message = "model '" + name + "' is incompatible with this machine" +
                             (admission.load.notes.empty() ? std::string() : ": " + admission.load.notes) +
                             ". An inference request never forces a load: fix the cause, or load it with "
                             "POST /api/orchestrate/load and force_load=true, or set its status";
    return admission;
  }
  // Decided: the load does not decide it again (model_read.h), unless the
  // model was let through only because it is loaded.
  read.refusal_checked = !read.incompatible();
  idle_unloader_.Start();
  const int64_t keep_alive = request.keep_alive_ms.value_or(config->keep_alive_ms);
  const std::optional<LoadedModel> waited_for = supervisor_.FindLoaded(name);  // the engine it waits for
  auto slot = gate_.Acquire(name, {parallel, config->max_queue}, keep_alive);
  if (!slot.ok()) {
    if (slot.status().code() != StatusCode::kResourceExhausted) return slot.status();
    admission.kind = api::InferenceAdmission::Kind::kQueueFull;
    admission.message = slot.status().message();
    return admission;
  }
  auto lease = std::make_unique<Lease>(this, std::move(slot).value(), name);
  // SPEC §19: the request's own timeout, at most the server's.
  lease->timeout_ms = std::min<int64_t>(request.timeout_ms.value_or(INT64_MAX), config->request_timeout_s * 1000LL);
  if (waited_for) {
    if (std::optional<std::string> hung = HungWhileWaiting(name, waited_for->pid)) {
      admission.kind = api::InferenceAdmission::Kind::kEngineHung;
      admission.message = std::move(*hung);
      return admission;
    }
  }
  // SPEC §16: a load this request causes is verified by its first token.
  auto cold = std::make_shared<ColdRequest>();
  ASSIGN_OR_RETURN(api::LoadResult load, hooks_.load(read, cold));
  if (cold->ready()) lease->VerifiesLoad(cold);
  switch (load.kind) {
    case api::LoadResult::Kind::kIncompatible:
      admission.kind = api::InferenceAdmission::Kind::kIncompatible;
      admission.load = std::move(load);
      return admission;
    case api::LoadResult::Kind::kFailed:
      admission.kind = api::InferenceAdmission::Kind::kLoadFailed;
      admission.load = std::move(load);
      return admission;
    case api::LoadResult::Kind::kInsufficientMemory:
      admission.kind = api::InferenceAdmission::Kind::kInsufficientMemory;
      admission.message = load.message;
      admission.load = std::move(load);
      return admission;
    case api::LoadResult::Kind::kModelsBusy:
      admission.kind = api::InferenceAdmission::Kind::kModelsBusy;
      admission.message = load.message;
      admission.load = std::move(load);
      return admission;
    case api::LoadResult::Kind::kLoaded:
    case api::LoadResult::Kind::kAlreadyLoaded: break;
  }
  // The load's result names the engine. One that died since is found by
  // the proxy (a broken connection) and answered with its death's summary.
  if (load.engine_pid <= 0) {
    const std::optional<std::string> why = models_.Get(name).last_error;
    return UnavailableError("model '" + name + "' stopped right after loading" + (why ? ": " + *why : std::string()));
  }
  if (load.engine.empty()) {
    return FailedPreconditionError("model '" + name + "' is loaded, but its engine does not answer HTTP, "
                                   "so it cannot serve /v1");
  }
  lease->engine = load.engine;
  lease->engine_pid = load.engine_pid;
  if (load.auto_fix) lease->auto_fix_json = api::AutoFixJson(*load.auto_fix, true);
  lease->adjusted_json = load.adjusted_json;
  if (!load.warning.empty()) {
    lease->warning = load.warning;
  } else if (model.compatibility_status == CompatStatus::kDegraded) {
    lease->warning = "model '" + name + "' has degraded compatibility (it failed after loading successfully before" +
                     (model.compatibility_notes ? ": " + *model.compatibility_notes : std::string()) + ")";
  }
  admission.lease = std::move(lease);
  return admission;
}

std::optional<std::string> Admission::HungWhileWaiting(const std::string& model, int pid) {
  const std::optional<LoadedModel> now = supervisor_.FindLoaded(model);
  if (now && now->pid == pid) return std::nullopt;  // still serving: the common case, no wait
  // It ended (or is ending): a hang is noted once recorded, an unload at once.
  constexpr int64_t kEndWaitMs = 5000;
  std::optional<api::EngineEnd> end = engine_deaths_.Await(pid, kEndWaitMs, {});
  if (!end || !end->hung) return std::nullopt;  // unloaded, or crashed: the load path answers as before
  return end->summary;
}

std::optional<api::EngineEnd> Admission::AwaitEngineDeath(const std::string& model_name, int pid, int64_t timeout_ms) {
  return engine_deaths_.Await(pid, timeout_ms, [&] {
    MW_LOG(kWarn, "serve") << "model=" << model_name << " pid=" << pid
                           << " broke a request's connection but did not die within " << timeout_ms << " ms";
  });
}

}  // namespace mw::app
