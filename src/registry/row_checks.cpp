// The checks both backends make before they write (backend.h): pure C++, so
// the SQLite and PostgreSQL stores refuse the same inputs with the same words.
#include "registry/backend.h"

namespace mw::registry_internal {

std::string Quoted(std::string_view name) {
  // Names in messages are truncated so a huge bad input cannot flood a log.
  constexpr size_t kMax = 140;
  std::string out = "'";
  out += name.substr(0, kMax);
  if (name.size() > kMax) out += "...";
  return out + "'";
}

std::optional<std::string> NullIfEmpty(const std::optional<std::string>& v) {
  if (!v || v->empty()) return std::nullopt;
  return v;
}

Status ValidateModelName(std::string_view name) {
  if (IsValidModelName(name)) return Status::Ok();
  return InvalidArgumentError(
      "invalid model name " + Quoted(name) +
      ": use 1-128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit");
}

Status ValidateEngine(std::string_view engine) {
  if (engine == kEngineLlamaCpp || engine == kEngineCommand) return Status::Ok();
  return InvalidArgumentError("invalid engine " + Quoted(engine) + ": use \"llama.cpp\" or \"command\"");
}

Status ValidateNewModel(const ModelRecord& m) {
  RETURN_IF_ERROR(ValidateModelName(m.model_name));
  RETURN_IF_ERROR(ValidateEngine(m.engine));
  if (m.compatibility_status == CompatStatus::kTesting) {
    return InvalidArgumentError("a model cannot be registered as 'testing': only a load attempt sets it");
  }
  if (m.cache_location.empty()) return InvalidArgumentError("cache_location must not be empty");
  return Status::Ok();
}

Status ValidateUpdate(const ModelUpdate& u) {
  if (u.compatibility_status == CompatStatus::kTesting) {
    return InvalidArgumentError("status 'testing' cannot be set by hand: only a load attempt sets it");
  }
  if (u.engine) RETURN_IF_ERROR(ValidateEngine(*u.engine));
  if (u.cache_location && u.cache_location->empty())
    return InvalidArgumentError("cache_location must not be empty");
  return Status::Ok();
}

Status CheckNotTesting(const ModelRecord& current, std::string_view change) {
  if (current.compatibility_status != CompatStatus::kTesting) return Status::Ok();
  return FailedPreconditionError("model " + Quoted(current.model_name) +
                                 " is being tested (a load attempt is in progress); " + std::string(change) +
                                 " after the attempt ends");
}

Status CloseNeedsOutcome(const AttemptRecord& a) {
  if (a.outcome && a.status_after) return Status::Ok();
  return InvalidArgumentError("closing a load attempt needs an outcome and the status after it");
}

AttemptOwner OwnerOf(const AttemptRecord& a, const Backend::NodeScope& scope) {
  AttemptOwner owner;
  owner.node_id = NullIfEmpty(a.node_id);
  if (!owner.node_id && !scope.node_id.empty()) owner.node_id = scope.node_id;
  owner.environment_class = a.environment_class;
  if (!owner.environment_class && !scope.node_id.empty()) owner.environment_class = scope.environment_class;
  return owner;
}

std::string LeaseLostMessage(const Backend::NodeScope& scope) {
  return "node '" + scope.node_id + "' lost its lease in the registry (it was silent for longer than its lease, "
         "and another node closed its open load attempts): nothing was written; it joins again at its next "
         "heartbeat";
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) {
    if (!out.empty()) out += '\n';
    out += n;
  }
  return out;
}


}  // namespace mw::registry_internal
