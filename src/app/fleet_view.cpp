// The fleet's views (SPEC §14): GET /api/nodes, the "node" of GET
// /api/status and the "verdicts" of GET /api/models/{name}.
#include "app/model_nodes.h"

#include <utility>

#include "app/model_service.h"

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

Result<api::NodeList> ReadNodes(Registry& registry) {
  ASSIGN_OR_RETURN(std::vector<NodeRecord> nodes, registry.ListNodes());
  api::NodeList list;
  list.this_node = registry.NodeId();
  list.nodes.reserve(nodes.size());
  for (NodeRecord& n : nodes) {
    list.nodes.push_back(ToNodeView(std::move(n)));
    if (list.nodes.back().live) ++list.live;
  }
  return list;
}

Result<api::NodeSummary> ReadNodeSummary(Registry& registry) {
  ASSIGN_OR_RETURN(std::vector<NodeRecord> nodes, registry.ListNodes());
  api::NodeSummary summary;
  summary.node_id = registry.NodeId();
  summary.environment_class = registry.EnvironmentClass();
  for (const NodeRecord& n : nodes) summary.nodes_live += n.live() ? 1 : 0;
  return summary;
}

Result<std::vector<api::ClassVerdictView>> ReadVerdicts(Registry& registry, std::string_view name) {
  ASSIGN_OR_RETURN(std::vector<ClassVerdictRecord> verdicts, registry.ListVerdicts(name));
  return VerdictViews(std::move(verdicts));
}

std::vector<api::ClassVerdictView> VerdictViews(std::vector<ClassVerdictRecord> verdicts) {
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

Result<api::NodeList> ModelService::ListNodes() { return ReadNodes(registry_); }

void ModelService::OnRegistryChange(const std::vector<std::string>& names) {
  for (const std::string& name : names) PublishModel(name);
  PublishCounts();  // and the list cache is stale (ListChanged)
}

}  // namespace mw::app
