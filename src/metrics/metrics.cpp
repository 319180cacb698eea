#include "metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <charconv>

namespace mw::metrics {
namespace {

// Load attempts take from well under a second (a small model from the page
// cache) to many minutes (a large model from a network disk).
const std::vector<double> kLoadBuckets = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800};
// As vLLM's time_to_first_token buckets.
const std::vector<double> kFirstTokenBuckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
                                                0.75,  1.0,   2.5,  5.0,  7.5,  10.0, 20.0, 40.0, 80.0};

// A sample value: the shortest text that reads back as the same double ("0.1", "2", "1e+20").
std::string FormatValue(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}

void Header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// name{k1="v1",k2="v2"} value
void Sample(std::string& out, std::string_view name, const std::vector<std::pair<std::string_view, std::string>>& labels,
            double value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i) out += ',';
      out += labels[i].first;
      out += "=\"";
      out += EscapeLabelValue(labels[i].second);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  out += FormatValue(value);
  out += '\n';
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  ++counts_[i];  // the first bucket whose upper bound is >= value (le is inclusive)
  sum_ += value;
  ++count_;
}

void Histogram::Render(std::string_view name, std::string& out) const {
  const std::string bucket = std::string(name) + "_bucket";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    Sample(out, bucket, {{"le", FormatValue(bounds_[i])}}, static_cast<double>(cumulative));
  }
  Sample(out, bucket, {{"le", "+Inf"}}, static_cast<double>(count_));
  Sample(out, std::string(name) + "_sum", {}, sum_);
  Sample(out, std::string(name) + "_count", {}, static_cast<double>(count_));
}

Metrics::Metrics() : load_duration_(kLoadBuckets), first_token_(kFirstTokenBuckets) {}

std::string Metrics::ModelLabel(std::string_view model) {
  std::string name(model);
  if (name.empty() || model_labels_.count(name)) return name;
  if (model_labels_.size() >= kMaxModelLabels) return std::string(kOtherModel);
  model_labels_.insert(name);
  return name;
}

void Metrics::RecordLoadAttempt(std::string_view outcome, std::string_view category, double seconds) {
  std::lock_guard lock(mu_);
  ++load_attempts_[{std::string(outcome), std::string(category.empty() ? "none" : category)}];
  if (seconds >= 0) load_duration_.Observe(seconds);
}

void Metrics::RecordWorkerDeath(std::string_view category) {
  std::lock_guard lock(mu_);
  ++worker_deaths_[std::string(category.empty() ? "unknown" : category)];
}

void Metrics::RecordEviction(std::string_view reason) {
  std::lock_guard lock(mu_);
  ++evictions_[std::string(reason)];
}

void Metrics::SetEnvironmentFailing(bool failing) {
  std::lock_guard lock(mu_);
  environment_failing_ = failing;
}

void Metrics::RecordRequest(std::string_view model, int http_code) {
  std::lock_guard lock(mu_);
  ++requests_[{ModelLabel(model), std::clamp(http_code, 0, 999)}];
}

void Metrics::RecordFirstToken(double seconds) {
  std::lock_guard lock(mu_);
  if (seconds >= 0) first_token_.Observe(seconds);
}

void Metrics::AddTokens(std::string_view model, int64_t n) {
  if (n <= 0) return;
  std::lock_guard lock(mu_);
  tokens_[ModelLabel(model)] += static_cast<uint64_t>(n);
}

void Metrics::RecordEngineHang(std::string_view model) {
  std::lock_guard lock(mu_);
  ++engine_hangs_[ModelLabel(model)];
}

void Metrics::RecordRequestTimeout(std::string_view model) {
  std::lock_guard lock(mu_);
  ++request_timeouts_[ModelLabel(model)];
}

void Metrics::SetQueueDepth(int64_t n) {
  std::lock_guard lock(mu_);
  queue_depth_ = std::max<int64_t>(n, 0);
}

void Metrics::AddQueueDepth(int64_t delta) {
  std::lock_guard lock(mu_);
  queue_depth_ = std::max<int64_t>(queue_depth_ + delta, 0);
}

std::string Metrics::Render(const Snapshot& snapshot) const {
  std::string out;
  out.reserve(8192);
  Header(out, "modelwarden_build_info", "gauge", "Always 1; the version label is the server's version.");
  Sample(out, "modelwarden_build_info", {{"version", snapshot.version}}, 1);
  Header(out, "modelwarden_uptime_seconds", "gauge", "Seconds since the server started.");
  Sample(out, "modelwarden_uptime_seconds", {}, static_cast<double>(snapshot.uptime_s));
  Header(out, "modelwarden_models", "gauge", "Registered models by compatibility status.");
  for (const auto& [status, n] : snapshot.models_by_status) {
    Sample(out, "modelwarden_models", {{"status", status}}, static_cast<double>(n));
  }
  Header(out, "modelwarden_loaded_models", "gauge", "Models loaded in a worker now.");
  Sample(out, "modelwarden_loaded_models", {}, static_cast<double>(snapshot.loaded_models));
  Header(out, "modelwarden_load_queue_depth", "gauge", "Load attempts queued or running.");
  Sample(out, "modelwarden_load_queue_depth", {}, static_cast<double>(snapshot.load_queue_depth));

  std::lock_guard lock(mu_);
  Header(out, "modelwarden_load_attempts_total", "counter",
         "Finished load attempts by outcome and crash category (none for success and cancelled).");
  for (const auto& [key, n] : load_attempts_) {
    Sample(out, "modelwarden_load_attempts_total", {{"outcome", key.first}, {"category", key.second}},
           static_cast<double>(n));
  }
  Header(out, "modelwarden_load_duration_seconds", "histogram",
         "Duration of load attempts that ran a process, from spawn to outcome.");
  load_duration_.Render("modelwarden_load_duration_seconds", out);
  Header(out, "modelwarden_worker_deaths_total", "counter",
         "Workers that died after their model had loaded, by crash category.");
  for (const auto& [category, n] : worker_deaths_) {
    Sample(out, "modelwarden_worker_deaths_total", {{"category", category}}, static_cast<double>(n));
  }
  Header(out, "modelwarden_evictions_total", "counter",
         "Idle models unloaded to make room for another, by reason (max_loaded_models or memory).");
  for (const auto& [reason, n] : evictions_) {
    Sample(out, "modelwarden_evictions_total", {{"reason", reason}}, static_cast<double>(n));
  }
  Header(out, "modelwarden_environment_failing", "gauge",
         "1 while recent load failures are blamed on the environment rather than the models.");
  Sample(out, "modelwarden_environment_failing", {}, environment_failing_ ? 1 : 0);
  Header(out, "modelwarden_requests_total", "counter", "Inference requests by model and HTTP status code.");
  for (const auto& [key, n] : requests_) {
    Sample(out, "modelwarden_requests_total", {{"model", key.first}, {"code", std::to_string(key.second)}},
           static_cast<double>(n));
  }
  Header(out, "modelwarden_time_to_first_token_seconds", "histogram",
         "Seconds from an inference request to its first generated token.");
  first_token_.Render("modelwarden_time_to_first_token_seconds", out);
  Header(out, "modelwarden_tokens_generated_total", "counter", "Tokens generated by model.");
  for (const auto& [model, n] : tokens_) {
    Sample(out, "modelwarden_tokens_generated_total", {{"model", model}}, static_cast<double>(n));
  }
  Header(out, "modelwarden_engine_hangs_total", "counter", "Loaded engines stopped as hung by the health watch.");
  for (const auto& [model, n] : engine_hangs_) {
    Sample(out, "modelwarden_engine_hangs_total", {{"model", model}}, static_cast<double>(n));
  }
  Header(out, "modelwarden_request_timeouts_total", "counter",
         "Inference requests whose generation was cancelled past their timeout (504).");
  for (const auto& [model, n] : request_timeouts_) {
    Sample(out, "modelwarden_request_timeouts_total", {{"model", model}}, static_cast<double>(n));
  }
  Header(out, "modelwarden_queue_depth", "gauge", "Inference requests waiting for a free slot.");
  Sample(out, "modelwarden_queue_depth", {}, static_cast<double>(queue_depth_));
  return out;
}

Metrics& Global() {
  static Metrics* metrics = new Metrics();  // never destroyed: threads may record during exit
  return *metrics;
}

}  // namespace mw::metrics
