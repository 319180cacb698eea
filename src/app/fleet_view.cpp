// The fleet as the API shows it (SPEC §14): GET /api/nodes, the "node" of
// GET /api/status, the "verdicts" of GET /api/models/{name}, and other
// nodes' changes.
#include "app/fleet_view.h"

#include <utility>

namespace mw::app {
namespace {

api::NodeView ToNodeView(NodeRecord&& n) {
  api::NodeView v;
  v.live = n.live();
  v.node_id = std::move(n.node_id);
  v.host = std::move(n.host);
  v.environment_class = std::move(n.environment_class);
  v.lease_state = std::move(n.lease_state);
  v.lease_s = n.lease_s;
  v.heartbeat_at = std::move(n.heartbeat_at);
  v.heartbeat_age_ms = n.heartbeat_age_ms;
  v.started_at = std::move(n.started_at);
  v.loaded_models = std::move(n.loaded_models);
  v.expired_by = std::move(n.expired_by);
  v.advertise_url = std::move(n.advertise_url);
  return v;
}

}  // namespace

Result<api::NodeList> FleetView::Nodes() {
  ASSIGN_OR_RETURN(std::vector<NodeRecord> nodes, registry_.ListNodes());
  api::NodeList list;
  list.this_node = registry_.NodeId();
  list.nodes.reserve(nodes.size());
  for (NodeRecord& n : nodes) {
    list.nodes.push_back(ToNodeView(std::move(n)));
    if (list.nodes.back().live) ++list.live;
  }
  return list;
}

Result<api::NodeSummary> FleetView::Summary() {
  ASSIGN_OR_RETURN(std::vector<NodeRecord> nodes, registry_.ListNodes());
  api::NodeSummary summary;
  summary.node_id = registry_.NodeId();
  summary.environment_class = registry_.EnvironmentClass();
  for (const NodeRecord& n : nodes) summary.nodes_live += n.live() ? 1 : 0;
  return summary;
}

Result<std::vector<api::ClassVerdictView>> FleetView::Verdicts(std::string_view name) {
  ASSIGN_OR_RETURN(std::vector<ClassVerdictRecord> verdicts, registry_.ListVerdicts(name));
  return VerdictViews(std::move(verdicts));
}

std::vector<api::ClassVerdictView> FleetView::VerdictViews(std::vector<ClassVerdictRecord> verdicts) {
  std::vector<api::ClassVerdictView> out;
  out.reserve(verdicts.size());
  for (ClassVerdictRecord& v : verdicts) {
    api::ClassVerdictView view;
    view.environment_class = std::move(v.environment_class);
    view.status = std::string(ToString(v.status));
    view.notes = std::move(v.notes);
    view.nodes = std::move(v.nodes);
    view.total_loads = v.total_loads;
    view.total_failures = v.total_failures;
    view.this_node_class = out.empty();  // Registry::ListVerdicts puts this node's class first
    out.push_back(std::move(view));
  }
  return out;
}

void FleetView::OnRegistryChange(const std::vector<std::string>& names) {
  if (hooks_.publish_model) {
    for (const std::string& name : names) hooks_.publish_model(name);
  }
  if (hooks_.publish_counts) hooks_.publish_counts();  // and the list cache is stale
}

std::optional<bool> FleetView::ChangedElsewhere() {
  auto count = registry_.ModelChangeCount();
  if (!count.ok()) return std::nullopt;
  if (!count->has_value()) return false;  // SQLite: no other node writes
  std::lock_guard lock(mu_);
  if (seen_change_count_ == *count) return false;
  seen_change_count_ = *count;
  return true;
}

}  // namespace mw::app
