#include "compat/system_failure.h"

#include <set>

#include "classifier/crash_catalog.h"

namespace mw {

bool SystemFailureDetector::BlamesModel(const std::string& category) const {
  if (category == "device_unavailable") return false;
  return !(state_.failing && IsDeviceLevelCategory(category));
}

std::vector<int64_t> SystemFailureDetector::OnFailure(FailedAttempt failure, const std::string& now_iso) {
  last_.push_back(std::move(failure));
  while (last_.size() > static_cast<size_t>(kSystemFailureStreak)) last_.pop_front();
  return Evaluate(now_iso);
}

void SystemFailureDetector::Restore(EnvironmentState state, std::vector<FailedAttempt> recent) {
  state_ = std::move(state);
  if (!state_.failing) state_ = EnvironmentState{};
  last_.assign(recent.begin(), recent.end());
  while (last_.size() > static_cast<size_t>(kSystemFailureStreak)) last_.pop_front();
}

std::vector<int64_t> SystemFailureDetector::Evaluate(const std::string& now_iso) {
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

bool SystemFailureDetector::OnProbe(const std::vector<std::string>& missing, const std::string& now_iso) {
  if (missing.empty()) {
    if (!state_.failing || !state_.devices_missing) return false;
    Reset();
    return true;
  }
  if (state_.failing) {
    state_.devices_missing = true;  // their return ends this failing period
    return false;
  }
  std::string names;
  for (const std::string& m : missing) names += (names.empty() ? "'" : ", '") + m + "'";
  state_.failing = true;
  state_.devices_missing = true;
  state_.reason = "the device probe no longer sees " + names +
                  ", seen while the environment was ok. Check that the device is present and its driver loaded "
                  "(nvidia-smi, rocm-smi, dmesg); it is ok again when the probe sees it, a model loads, or on reset";
  state_.since = now_iso;
  return true;
}

}  // namespace mw
