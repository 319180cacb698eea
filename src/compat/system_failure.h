// compat/system_failure: tells a dead GPU from bad models (SPEC §11).
//
// Pure logic: attempt outcomes in, environment state out; no I/O, no clock
// of its own (the caller passes the time), so it is unit-tested edge by edge.
//
// Rule: when the last 3 failed attempts were of 3 different models, within
// 10 minutes (first to last), each of a device-level category (gpu_context
// or device_unavailable), with no successful load in between, the
// environment becomes `failing`; the decision names those 3 attempts so the
// caller reverts their verdicts. While failing, a device-level failure
// blames no model (BlamesModel() is false). Back to `ok` on any successful
// load or Reset(). Any other failure breaks a streak (it is one of the last
// 3 failures and not device-level).
//
// Probes: OnProbe(missing) with the devices of the last good probe that the
// probe no longer sees (compat/environment.h MissingDevices): any missing
// sets `failing` (reason names them); none missing after some were sets
// `ok` again. A restart: Restore() with the persisted state and the failed
// attempts since the last success or reset (the registry's load_attempts),
// then Evaluate() completes a decision a crash cut short.
//
// Not thread-safe: the caller holds a lock (ModelService's).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace mw {

inline constexpr int kSystemFailureStreak = 3;
inline constexpr std::chrono::minutes kSystemFailureWindow{10};

struct EnvironmentState {
  bool failing = false;
  std::string reason;                // names the evidence; empty while ok
  std::optional<std::string> since;  // ISO-8601 UTC, set while failing
  bool devices_missing = false;      // a probe saw devices missing (while failing)
};

class SystemFailureDetector {
 public:
  using Clock = std::chrono::system_clock;

  struct FailedAttempt {
    int64_t attempt_id = 0;
    std::string model_name;
    std::string category;  // classifier category
    std::string summary;
    Clock::time_point at{};
  };

  // Whether a failure of `category` now changes the model's status:
  // false for device_unavailable always, and for any device-level category
  // while the environment is failing.
  bool BlamesModel(const std::string& category) const;

  // Record a failed attempt (after it was written). Returns the attempts
  // whose verdicts to revert when this failure makes the environment
  // failing (empty otherwise, and always empty while already failing).
  std::vector<int64_t> OnFailure(FailedAttempt failure, const std::string& now_iso);

  // A successful load: back to ok, streak forgotten. True if it was failing.
  bool OnSuccess();
  // POST /api/environment/reset. True if it was failing.
  bool Reset();
  // A probe's answer: `missing` names the devices of the last good probe it
  // no longer sees ("gpu CUDA0 ..."). Returns true when the state changed:
  // failing because devices are missing, or ok because they all returned
  // (the streak is forgotten then, as on a reset).
  bool OnProbe(const std::vector<std::string>& missing, const std::string& now_iso);

  // After a restart: the persisted state and the failed attempts that still
  // count (oldest first; only the last kSystemFailureStreak are kept).
  void Restore(EnvironmentState state, std::vector<FailedAttempt> recent);
  // The decision OnFailure makes, on the attempts held now (after Restore:
  // a streak completed just before a crash, whose state was not written).
  std::vector<int64_t> Evaluate(const std::string& now_iso);

  const EnvironmentState& state() const { return state_; }

 private:
  std::deque<FailedAttempt> last_;  // the last failed attempts, oldest first (at most 3)
  EnvironmentState state_;
};

}  // namespace mw
