// app/fleet_view.h: the fleet as this server's API shows it (SPEC §14); a
// collaborator of ModelService (the fleet).
//
// Contract:
//   Views: the registry's nodes, leases and per-class verdicts turned into
//     the views of api/model_api.h (GET /api/nodes, the "node" of GET
//     /api/status, the "verdicts" of GET /api/models/{name}). Reads only.
//   Other nodes' changes: OnRegistryChange (Registry::WatchChanges' callback
//     on a shared registry) hands each changed model to hooks.publish_model,
//     then calls hooks.publish_counts once (which also marks the model list
//     stale). ChangedElsewhere compares the registry's change count (one
//     small query; none on SQLite, where no other node writes) with the count it
//     saw at its last call.
// Thread-safe: the registry's own locking, and one lock for the change count
// seen (never held while the registry is read or a hook runs). None throws.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/model_api.h"
#include "common/status.h"
#include "registry/registry.h"

namespace mw::app {

struct FleetViewHooks {
  std::function<void(const std::string& model)> publish_model;  // SSE `model`
  std::function<void()> publish_counts;                         // SSE `status`; the list is stale
};

class FleetView {
 public:
  // The registry must outlive the view.
  explicit FleetView(Registry& registry, FleetViewHooks hooks = {}) : registry_(registry), hooks_(std::move(hooks)) {}

  // GET /api/nodes: every node by node_id, this server's id, and how many are
  // live (held and heard from within lease_s). The registry's errors.
  [[nodiscard]] Result<api::NodeList> Nodes();
  // GET /api/status "node": this server's id and class, and the live nodes
  // (one read of the nodes). The registry's errors.
  [[nodiscard]] Result<api::NodeSummary> Summary();
  // GET /api/models/{name} "verdicts": each environment class's verdict,
  // this node's class first (marked this_node_class; present even when it has
  // not tried the model). kNotFound if no such model.
  [[nodiscard]] Result<std::vector<api::ClassVerdictView>> Verdicts(std::string_view name);
  // The same from records already read in that order (Registry::GetModelDetail).
  static std::vector<api::ClassVerdictView> VerdictViews(std::vector<ClassVerdictRecord> verdicts);

  // Another node changed these models (empty: anything may have changed).
  void OnRegistryChange(const std::vector<std::string>& names);
  // Whether the registry's change count moved since the last call (true at
  // the first nonzero count); nullopt when it cannot be read (cannot tell).
  [[nodiscard]] std::optional<bool> ChangedElsewhere();

 private:
  Registry& registry_;
  const FleetViewHooks hooks_;
  std::mutex mu_;  // guards seen_change_count_
  std::optional<int64_t> seen_change_count_;  // the registry's, at the last ChangedElsewhere
};

}  // namespace mw::app
