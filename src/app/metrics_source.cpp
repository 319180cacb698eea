#include "app/metrics_source.h"

namespace mw::app {

Result<std::string> RenderMetrics(api::ModelApi& api, const metrics::Metrics& metrics) {
  ASSIGN_OR_RETURN(api::ServerStatus status, api.GetStatus());
  metrics::Snapshot snapshot;
  snapshot.models_by_status = status.counts;
  snapshot.loaded_models = static_cast<int64_t>(status.loaded_models.size());
  snapshot.load_queue_depth = static_cast<int64_t>(status.load_queue.size());
  snapshot.uptime_s = status.uptime_s;
  snapshot.version = status.version;
  return metrics.Render(snapshot);
}

}  // namespace mw::app
