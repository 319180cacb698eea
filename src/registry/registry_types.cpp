// Names of the registry's enum values and the model-name rule.
#include "registry/registry.h"

namespace mw {

std::string_view ToString(CompatStatus status) {
  switch (status) {
    case CompatStatus::kUnknown:
      return "unknown";
    case CompatStatus::kCompatible:
      return "compatible";
    case CompatStatus::kIncompatible:
      return "incompatible";
    case CompatStatus::kDegraded:
      return "degraded";
    case CompatStatus::kTesting:
      return "testing";
  }
  return "unknown";
}

std::optional<CompatStatus> ParseCompatStatus(std::string_view text) {
  for (CompatStatus s : kAllCompatStatuses) {
    if (ToString(s) == text) return s;
  }
  return std::nullopt;
}

std::string_view ToString(AttemptOutcome outcome) {
  switch (outcome) {
    case AttemptOutcome::kSuccess:
      return "success";
    case AttemptOutcome::kFailed:
      return "failed";
    case AttemptOutcome::kCrashed:
      return "crashed";
    case AttemptOutcome::kTimeout:
      return "timeout";
    case AttemptOutcome::kServerCrash:
      return "server_crash";
    case AttemptOutcome::kCancelled:
      return "cancelled";
    case AttemptOutcome::kCrashedWhileServing:
      return "crashed_while_serving";
    case AttemptOutcome::kEnvironmentFailure:
      return "environment_failure";
    case AttemptOutcome::kHungWhileServing:
      return "hung_while_serving";
  }
  return "failed";
}

std::optional<AttemptOutcome> ParseAttemptOutcome(std::string_view text) {
  for (AttemptOutcome o :
       {AttemptOutcome::kSuccess, AttemptOutcome::kFailed, AttemptOutcome::kCrashed, AttemptOutcome::kTimeout,
        AttemptOutcome::kServerCrash, AttemptOutcome::kCancelled, AttemptOutcome::kCrashedWhileServing,
        AttemptOutcome::kEnvironmentFailure, AttemptOutcome::kHungWhileServing}) {
    if (ToString(o) == text) return o;
  }
  return std::nullopt;
}

static bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool IsValidModelName(std::string_view name) {
  if (name.empty() || name.size() > 128 || !IsAlnum(name[0])) return false;
  for (char c : name) {
    if (!IsAlnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

}  // namespace mw
