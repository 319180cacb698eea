// app/peer_router.h: which node serves a /v1 request or a load (SPEC §21:
// any node answers), for the HTTP edge (api::PeerRouting, api/peer_api.h).
//
// Contract of Route(model): nullopt (serve here) or a live peer, decided in
// this order:
//   1. here, when routing is off (route_to_peers) or the model is loaded here;
//   2. a peer that has it loaded (its last heartbeat's loaded_models;
//      several: taken in turn);
//   3. here, when this node's class has it `compatible` and its fit says it
//      fits (no fit, e.g. a command engine: fits);
//   4. a peer whose class has it `compatible` and whose fit says it fits
//      (asked of the peer: GET /api/models/{name}, a few seconds at most);
//   5. here (as without a fleet: an unknown verdict is tried here).
// A peer is a candidate only while it holds its lease (live in GET
// /api/nodes), has an advertise_url, and has not failed a proxied request
// since its last heartbeat (Failed). The nodes are read at most every
// kNodesFresh (they change at heartbeats, every lease_s / 3), so a routed
// request seldom waits for the registry; steps 3-4 read the model
// (ModelApi::GetModel) only when no candidate has it loaded.
// A registry that cannot be read answers "here". Thread-safe; never throws.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/model_api.h"
#include "api/peer_api.h"
#include "registry/registry.h"

namespace mw::app {

// "http://host:port" from `host` and the bound port when the host is one
// address (not a wildcard: "0.0.0.0", "::", ""), else "" (none).
std::string DefaultAdvertiseUrl(const std::string& host, int port);
// host and port of "http://host[:port][/]"; nullopt if it is not one.
std::optional<api::PeerTarget> PeerAt(std::string node_id, const std::string& url);

class PeerRouter final : public api::PeerRouting {
 public:
  static constexpr std::chrono::milliseconds kNodesFresh{250};
  struct Options {
    bool enabled = false;  // route_to_peers
    // The fleet's key now, for asking a peer's fit (it follows a SIGHUP
    // reload, as the key the proxy sends does); unset: none.
    std::function<std::string()> api_key;
    std::chrono::milliseconds fit_timeout{3000};
  };
  // `loaded_here`: the models loaded on this node now. All must outlive the router.
  PeerRouter(Registry& registry, api::ModelApi& models, std::function<std::vector<std::string>()> loaded_here,
             Options options);

  std::optional<api::PeerTarget> Route(std::string_view model_name) override;
  bool Alive(const api::PeerTarget& peer) override;
  void Failed(const api::PeerTarget& peer) override;

 private:
  // ListNodes, or its answer of less than kNodesFresh ago.
  Result<std::vector<NodeRecord>> Nodes();
  // Live, addressed, not avoided: the nodes a request may go to.
  std::vector<NodeRecord> Candidates(std::vector<NodeRecord> nodes);
  // Step 4's question to the peer.
  bool PeerFits(const NodeRecord& node, const std::string& model_name);

  Registry& registry_;
  api::ModelApi& models_;
  std::function<std::vector<std::string>()> loaded_here_;
  const Options options_;
  std::atomic<uint64_t> turn_{0};
  std::mutex mu_;
  std::map<std::string, std::string> failed_;  // node_id -> its heartbeat_at when it failed
  std::vector<NodeRecord> nodes_;                // mu_: the last ListNodes
  std::chrono::steady_clock::time_point nodes_at_{};
};

}  // namespace mw::app
