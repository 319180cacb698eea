// app/metrics_source.h: the body of GET /metrics — the core's gauges read now
// (models by status, loaded models, load queue, uptime) with the counters of
// metrics::Metrics (see metrics/metrics.h for every metric).
#pragma once

#include <string>

#include "api/model_api.h"
#include "common/status.h"
#include "metrics/metrics.h"

namespace mw::app {

// Errors: those of ModelApi::GetStatus (a registry that cannot be read). Thread-safe.
[[nodiscard]] Result<std::string> RenderMetrics(api::ModelApi& api, const metrics::Metrics& metrics);

}  // namespace mw::app
