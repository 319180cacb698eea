// app/model_nodes.h: the fleet as the API shows it (SPEC §14): the registry's
// nodes, leases and per-class verdicts turned into the views of
// api/model_api.h. Reads only; thread-safe as the registry is; none throws.
#pragma once

#include <string_view>
#include <vector>

#include "api/model_api.h"
#include "common/status.h"
#include "registry/registry.h"

namespace mw::app {

// GET /api/nodes: every node by node_id, this server's id, and how many are
// live (held and heard from within lease_s). The registry's errors.
[[nodiscard]] Result<api::NodeList> ReadNodes(Registry& registry);

// GET /api/status "node": this server's id and class, and the live nodes
// (one read of the nodes). The registry's errors.
[[nodiscard]] Result<api::NodeSummary> ReadNodeSummary(Registry& registry);

// GET /api/models/{name} "verdicts": each environment class's verdict,
// this node's class first (marked this_node_class; present even when it has
// not tried the model). kNotFound if no such model.
[[nodiscard]] Result<std::vector<api::ClassVerdictView>> ReadVerdicts(Registry& registry, std::string_view name);
// The same from records already read in that order (Registry::GetModelDetail).
std::vector<api::ClassVerdictView> VerdictViews(std::vector<ClassVerdictRecord> verdicts);

}  // namespace mw::app
