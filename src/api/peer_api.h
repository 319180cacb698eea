// api/peer_api.h: any node answers (SPEC §21). The HTTP edge asks
// PeerRouting, before it serves a /v1 request (chat/completions,
// completions, embeddings) or POST /api/orchestrate/load, whether another
// node of the fleet should serve it; if so it proxies the request there
// (api/peer_proxy.h) instead of serving it here. Implemented in app/
// (app/peer_router.h), which alone knows the registry.
//
// A proxied request carries the header kPeerHopHeader: the node it reaches
// serves it itself, whatever its own routing would say (one hop at most).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mw::api {

inline constexpr const char* kPeerHopHeader = "X-Modelwarden-Hop";

// A live node of the fleet, as its peers reach it (its advertise_url).
struct PeerTarget {
  std::string node_id;
  std::string url;   // "http://host:port", for messages
  std::string host;  // from url
  int port = 0;
};

class PeerRouting {
 public:
  virtual ~PeerRouting() = default;
  // The node that should serve `model_name` instead of this one; nullopt:
  // serve it here. Never throws; a registry that cannot be read means here.
  virtual std::optional<PeerTarget> Route(std::string_view model_name) = 0;
  // False once `peer` no longer holds its lease (stopped, or silent past
  // lease_s): a proxied request still waiting on it gives up. A registry that
  // cannot be read counts as alive (the wait goes on).
  virtual bool Alive(const PeerTarget& peer) = 0;
  // `peer` failed a proxied request: Route avoids it until its next heartbeat.
  virtual void Failed(const PeerTarget& peer) = 0;
};

}  // namespace mw::api
