// ModelService's side of the environment (SPEC §11): the probe threads'
// start, retest (a stale or requested verdict made unknown, then loaded),
// the verdicts a streak reverts, and the model list's version. The
// environment itself is EnvironmentWatch (environment_watch.h).
#include "app/model_service.h"
#include "common/log.h"

namespace mw::app {

void ModelService::StartProbing() {
  loads_.StartHealthWatch();  // SPEC §19: the health watch of loaded engines
  environment_.Start();
}

std::optional<uint64_t> ModelService::ModelListVersion() {
  const std::optional<bool> elsewhere = fleet_.ChangedElsewhere();  // another node changed models
  if (!elsewhere) return std::nullopt;  // cannot tell: build the list afresh
  if (*elsewhere) ListChanged();
  environment_.InputsChanged();  // an engine binary or a model file changed: ListChanged()
  return list_version_.load();
}

void ModelService::RevertStreak(const std::vector<int64_t>& revert) {
  auto reverted = state_machine_.RevertVerdicts(
      revert, "Reverted: the environment failed, not this model (" + std::to_string(revert.size()) +
                  " different models failed at the device level in a row); it was not judged.");
  if (!reverted.ok()) {
    MW_LOG(kError, "environment") << "cannot revert the verdicts of the failing environment: "
                                  << reverted.status().ToString();
    return;
  }
  for (const ModelRecord& m : *reverted) PublishModel(m.model_name);
  PublishCounts();
}

Result<api::EnvironmentView> ModelService::ResetEnvironment() {
  environment_.Reset();
  return environment_.Now();
}

Status ModelService::MarkForRetest(const std::string& name, const std::string& why) {
  ASSIGN_OR_RETURN(ModelRecord model, registry_.GetModel(name));
  ModelUpdate fields;
  std::string notes = model.compatibility_notes.value_or("");
  fields.compatibility_notes = (notes.empty() ? "" : notes + "\n") + "Retest (" + why + "): status was " +
                               std::string(ToString(model.compatibility_status)) + ", now unknown until it loads.";
  RETURN_IF_ERROR(state_machine_.ApplyManualChange(name, CompatStatus::kUnknown, fields).status());
  MW_LOG(kInfo, "load") << "model=" << name << " retest: " << why;
  PublishModel(name);
  PublishCounts();
  return Status::Ok();
}

Result<api::LoadResult> ModelService::Retest(const std::string& name) {
  if (!IsValidModelName(name)) return InvalidArgumentError("invalid model name '" + name.substr(0, 140) + "'");
  ASSIGN_OR_RETURN(ModelRecord model, registry_.GetModel(name));
  if (shutting_down_) return UnavailableError("the server is shutting down");
  if (model.compatibility_status == CompatStatus::kTesting || loads_.LoadUnderWay(name)) {
    return FailedPreconditionError("a load of '" + name + "' is queued or running; retest it after it ends");
  }
  if (supervisor_.IsLoaded(name)) {
    return FailedPreconditionError("'" + name + "' is loaded (so it works); unload it to retest it");
  }
  api::ModelView view;
  environment_.FillVerdict(model, view);
  RETURN_IF_ERROR(MarkForRetest(name, view.verdict_stale_reason ? "verdict stale: " + *view.verdict_stale_reason
                                                                : "requested"));
  return Load(name, false);
}

}  // namespace mw::app
