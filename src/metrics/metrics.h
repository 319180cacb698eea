// metrics: the server's Prometheus metrics (SPEC §13), pure and thread-safe.
//
// One Metrics object per server process counts what happens (load attempts,
// inference requests, tokens, first-token latency) and renders it, with the
// gauges read at scrape time (Snapshot), in the Prometheus text exposition
// format 0.0.4 (`promtool check metrics` passes on it). No HTTP library and
// no registry here: api/ serves the text at GET /metrics, app/ fills the
// snapshot and records load attempts.
//
// Metrics (names follow Prometheus' conventions: base units, _total for
// counters; labels are bounded):
//   modelwarden_models{status}                          gauge: registered models per compatibility status
//   modelwarden_loaded_models                           gauge
//   modelwarden_load_queue_depth                        gauge: load attempts queued or running
//   modelwarden_load_attempts_total{outcome,category}   counter: finished load attempts
//   modelwarden_load_duration_seconds                   histogram: attempt duration (spawn -> outcome)
//   modelwarden_worker_deaths_total{category}           counter: loaded workers that died
//   modelwarden_evictions_total{reason}                 counter: idle models unloaded to make room (SPEC §12)
//   modelwarden_environment_failing                     gauge: 1 while the environment is judged failing
//   modelwarden_requests_total{model,code}              counter: inference requests by HTTP status
//   modelwarden_time_to_first_token_seconds             histogram
//   modelwarden_tokens_generated_total{model}           counter
//   modelwarden_queue_depth                             gauge: inference requests waiting for a slot
//   modelwarden_engine_hangs_total{model}               counter: engines stopped as hung by the health watch (SPEC §19)
//   modelwarden_request_timeouts_total{model}           counter: /v1 generations cancelled past their timeout (504)
//   modelwarden_uptime_seconds                          gauge
//   modelwarden_build_info{version}                     gauge, always 1
//
// Label values: `model` must be a registered model's name (pass "" when the
// request named no registered model: it is shown as model=""); at most
// kMaxModelLabels distinct names are kept, later ones count under
// model="_other". `code` is an HTTP status (clamped to 0..999). `outcome` and
// `category` are the attempt outcome and crash category names (bounded enums).
//
// For the /v1 inference code, after a request is answered:
//   metrics.RecordRequest(model, 200);         // every request, with its final HTTP status
//   metrics.RecordFirstToken(0.183);           // seconds from request to the first generated token
//   metrics.AddTokens(model, 57);              // tokens generated (completion tokens)
//   metrics.SetQueueDepth(n);                  // or AddQueueDepth(+1) / AddQueueDepth(-1)
// The server's instance is metrics::Global(); every method is thread-safe,
// never blocks on I/O, and never fails.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mw::metrics {

inline constexpr size_t kMaxModelLabels = 1000;
inline constexpr std::string_view kOtherModel = "_other";

// Gauges read from the core when a scrape comes (not counted here).
struct Snapshot {
  std::map<std::string, int64_t> models_by_status;  // every status, zeros included
  int64_t loaded_models = 0;
  int64_t load_queue_depth = 0;
  int64_t uptime_s = 0;
  std::string version;
};

// A histogram with fixed upper bounds (ascending); +Inf is implicit.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);  // not thread-safe: Metrics guards it
  // Appends the _bucket/_sum/_count samples of `name`.
  void Render(std::string_view name, std::string& out) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last = +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // A load attempt ended: outcome "success", "failed", "crashed", "timeout",
  // "cancelled", "environment_failure"; category the crash category ("none" for success/cancelled).
  // `seconds` < 0: no process ran, the duration is not observed.
  void RecordLoadAttempt(std::string_view outcome, std::string_view category, double seconds);
  // A worker died after its model had loaded.
  void RecordWorkerDeath(std::string_view category);
  // An idle model was unloaded to make room for another: reason
  // "max_loaded_models" or "memory".
  void RecordEviction(std::string_view reason);
  void SetEnvironmentFailing(bool failing);

  // Inference (/v1): see the header comment.
  void RecordRequest(std::string_view model, int http_code);
  void RecordFirstToken(double seconds);
  void AddTokens(std::string_view model, int64_t n);
  // SPEC §19: an engine stopped as hung; a request cancelled past its timeout.
  void RecordEngineHang(std::string_view model);
  void RecordRequestTimeout(std::string_view model);
  void SetQueueDepth(int64_t n);
  void AddQueueDepth(int64_t delta);

  // The whole exposition text (ends with a newline).
  std::string Render(const Snapshot& snapshot) const;

 private:
  // The label value kept for `model` (bounded); mu_ held.
  std::string ModelLabel(std::string_view model);

  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, uint64_t> load_attempts_;  // (outcome, category)
  Histogram load_duration_;
  std::map<std::string, uint64_t> worker_deaths_;  // category
  std::map<std::string, uint64_t> evictions_;      // reason
  bool environment_failing_ = false;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (model, code)
  Histogram first_token_;
  std::map<std::string, uint64_t> tokens_;  // model
  std::map<std::string, uint64_t> engine_hangs_;      // model
  std::map<std::string, uint64_t> request_timeouts_;  // model
  int64_t queue_depth_ = 0;
  std::set<std::string> model_labels_;  // names seen (at most kMaxModelLabels)
};

// The server process's instance.
Metrics& Global();

// "a\"b" for a label value: backslash, double quote and newline escaped.
std::string EscapeLabelValue(std::string_view value);

}  // namespace mw::metrics
