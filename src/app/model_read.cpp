// ModelRead (model_read.h): a model's row read once, validated once.
#include "app/model_read.h"

#include <utility>

namespace mw::app {

ModelRead::ModelRead(ModelRecord read)
    : row(std::move(read)), config(loadconfig::ValidateLoadConfig(row.engine, row.load_config)) {}

Result<ModelRead> ModelRead::Read(Registry& registry, std::string_view name) {
  const uint64_t writes_before = registry.WriteCount();
  ASSIGN_OR_RETURN(ModelRecord row, registry.GetModel(name));
  ModelRead read(std::move(row));
  read.writes_before = writes_before;
  return read;
}

Status ModelRead::ReadAgain(Registry& registry) {
  const uint64_t writes_before_now = registry.WriteCount();
  ASSIGN_OR_RETURN(ModelRecord now, registry.GetModel(row.model_name));
  Refresh(std::move(now), writes_before_now);
  return Status::Ok();
}

bool ModelRead::MayHaveChanged(const Registry& registry) const {
  return !writes_before || registry.Shared() || registry.WriteCount() != *writes_before;
}

void ModelRead::Refresh(ModelRecord now, uint64_t writes_before_now) {
  const bool same_config = now.engine == row.engine && now.load_config == row.load_config;
  if (now.compatibility_status != row.compatibility_status) refusal_checked = false;
  row = std::move(now);
  writes_before = writes_before_now;
  if (!same_config) {
    config = loadconfig::ValidateLoadConfig(row.engine, row.load_config);
    ++validations;
  }
}

}  // namespace mw::app
