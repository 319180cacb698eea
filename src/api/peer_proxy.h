// api/peer_proxy.h: the edge's half of "any node answers" (SPEC §21,
// api/peer_api.h): a /v1 request or a load that PeerRouting sends to another
// node is passed there as received (method POST, path, body) with the fleet's
// API key and kPeerHopHeader, over the client room's UpstreamCall
// (http_client/upstream_call.h). The peer's answer comes back as it gave it:
// its status, body and content type, its X-Modelwarden-* headers (so
// X-Modelwarden-Node names the node that served) and Retry-After; a stream
// (text/event-stream) passes through piece by piece, never held.
// A peer that fails (cannot be reached, breaks the connection, or stops
// holding its lease while the answer is pending, which is how a frozen
// node shows) -> 502 peer_failed naming the node (a stream that had begun
// ends with that error event), and PeerRouting::Failed(peer). A client that
// hangs up cancels the call. Internal to api/.
#pragma once

#include <httplib.h>

#include <string>

#include "api/peer_api.h"

namespace mw::api {

// Serves `req` by proxying it to `peer` (fills `res`). `api_key`: the
// fleet's key (this node's), sent as Authorization; empty: none.
void ProxyToPeer(PeerRouting& routing, const PeerTarget& peer, const std::string& api_key,
                 const httplib::Request& req, httplib::Response& res);

// True when `req` may be routed: it is not itself a hop from a peer.
inline bool MayRoute(const PeerRouting* routing, const httplib::Request& req) {
  return routing != nullptr && !req.has_header(kPeerHopHeader);
}

}  // namespace mw::api
