// api/v1/openai_routes.h: the OpenAI-compatible /v1 routes (SPEC §10), installed
// on the server's httplib::Server by HttpServer (internal to api/).
//
//   GET  /v1/models                 every registered model (+ compatibility_status, loaded)
//   GET  /v1/models/{name}          one
//   POST /v1/chat/completions, /v1/completions, /v1/embeddings
//                                   gate (ModelApi::BeginInference), then the engine;
//                                   or another node of the fleet (options.peers, SPEC §21)
// Every answer that is not the engine's success is an OpenAI-shaped error
// {"error": {"message","type","code","param": null}} from api/errors.h's
// table: unknown /v1 paths and methods, a missing API key, bad JSON, too
// large a body included. See docs/api.md for the proxy rules.
#pragma once

#include <httplib.h>

#include <functional>

#include "api/model_api.h"
#include "api/peer_api.h"

namespace mw::api {

struct OpenAiRouteOptions {
  // True when the request carries the API key (or none is configured).
  std::function<bool(const httplib::Request&)> authorized;
  // How long a request whose engine connection broke waits for the engine's
  // death to be recorded before answering engine_error instead of engine_crashed.
  int64_t death_wait_ms = 5000;
  // SPEC §21: asked before an inference whether another node serves the
  // model (api/peer_proxy.h); nullptr: always here. api_key: the fleet's key
  // for the call to that node.
  PeerRouting* peers = nullptr;
  std::function<std::string()> api_key;
  // Every inference answered here (not one passed to a peer), with the
  // model it named ("" when none was registered) and its HTTP status: the
  // requests metric. Unset: nothing is counted.
  std::function<void(const std::string& model, int http_status)> answered;
};

// Installs the routes. Must run before any catch-all route of the server.
void InstallOpenAiRoutes(httplib::Server& server, ModelApi& api, OpenAiRouteOptions options);

// For the server's error handler (every answer >= 400 passes it): gives an
// error answer to a /v1 path OpenAI's shape — an empty one (404, 413, 400
// from httplib itself) and one in the /api shape {"error": {"code",
// "message"}} (refusals of the pre-routing handler: 411, Host/Origin/type
// checks). True when it set the body; false for other paths and for bodies
// already in OpenAI's shape.
bool FillOpenAiHttpError(const httplib::Request& req, httplib::Response& res);

}  // namespace mw::api
