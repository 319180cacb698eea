#include "compat/system_failure.h"

#include <set>

#include "compat/crash_catalog.h"

namespace mw {

bool SystemFailureDetector::BlamesModel(const std::string& category) const {
  if (category == "device_unavailable") return false;
  return !(state_.failing && IsDeviceLevelCategory(category));
}

std::vector<int64_t> SystemFailureDetector::OnFailure(FailedAttempt failure, const std::string& now_iso) {
  last_.push_back(std::move(failure));
  while (last_.size() > static_cast<size_t>(kSystemFailureStreak)) last_.pop_front();
  if (state_.failing || last_.size() < static_cast<size_t>(kSystemFailureStreak)) return {};
  std::set<std::string> models;
  for (const FailedAttempt& f : last_) {
    if (!IsDeviceLevelCategory(f.category)) return {};
    models.insert(f.model_name);
  }
  if (models.size() != last_.size()) return {};
  if (last_.back().at - last_.front().at > kSystemFailureWindow) return {};
  std::string evidence;
  std::vector<int64_t> revert;
  for (const FailedAttempt& f : last_) {
    if (!evidence.empty()) evidence += ", ";
    evidence += "'" + f.model_name + "' (" + f.category + (f.summary.empty() ? "" : ": " + f.summary) + ")";
    revert.push_back(f.attempt_id);
  }
  state_.failing = true;
  state_.reason = std::to_string(kSystemFailureStreak) + " different models failed at the device level in a row: " +
                  evidence + ". Check the GPU, its driver and runtime, then reset or load any model";
  state_.since = now_iso;
  return revert;
}

bool SystemFailureDetector::OnSuccess() { return Reset(); }

bool SystemFailureDetector::Reset() {
  const bool was = state_.failing;
  last_.clear();
  state_ = EnvironmentState{};
  return was;
}

void SystemFailureDetector::SetFailing(const std::string& reason, const std::string& now_iso) {
  if (state_.failing) return;
  state_.failing = true;
  state_.reason = reason;
  state_.since = now_iso;
}

}  // namespace mw
