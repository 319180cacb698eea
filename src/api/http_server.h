// api/http_server.h: the HTTP server of modelwarden (SPEC §4), the only code
// that includes httplib.h on the server side (hidden behind a pimpl).
//
// Routes (all JSON; errors {"error": {"code", "message"}} from api/errors.h):
//   GET    /api/models                   list
//   POST   /api/models                   register -> 201
//   GET    /api/models/{name}            one model + recent attempts
//   PATCH  /api/models/{name}/config     status / notes / load_config
//   DELETE /api/models/{name}            unregister (unloads first)
//   POST   /api/orchestrate/load         {"model_name","force_load"?} (blocks until the attempt ends;
//                                        unforced: possibly on another node, options.peers)
//   POST   /api/orchestrate/unload       {"model_name"}
//   GET    /api/status                   version, uptime, devices, loaded, queue, counts
//   GET    /api/events                   Server-Sent Events (event: model / event: status / event: pull, ": ping")
//   POST   /api/models/pull, /api/models/scan, GET /api/pulls, DELETE /api/pulls/{id}   (api/pull_api.h)
//   GET    /metrics                      Prometheus text format (options.metrics_text; API key as /api/)
//   GET    /, /app.js, ...               the embedded web page
// httplib (0.54.1, built with the caps of cmake/dependencies.cmake) bounds
// every line and the header count; then, before any route and before the body
// is read, every request passes api/request_head.h (431 over 64 KiB of
// headers, 400 duplicate Host/Origin/..., 411 no Content-Length on
// POST/PUT/PATCH or a chunked body) and api/request_guard.h on the header
// values as sent (Host, Origin, Content-Type: 403 host_not_allowed /
// origin_not_allowed, 415); browser apps in guard.allowed_origins get CORS
// headers and their preflights answered. docs/security.md lists every cap.
// Every route is wrapped once: no exception escapes, unknown paths get a JSON
// 404, bodies over max_body_bytes get 413 payload_too_large. When api_key is
// set every /api/ request needs "Authorization: Bearer <key>" (the event
// stream also accepts ?access_token=<key>, since EventSource cannot set headers).
//
// Threading: a pool of at most `threads` connection threads (at most 1 024
// accepted connections wait for one; more are closed), `resident_threads` of
// them for the server's life; the others are started when the connections
// waiting outnumber the idle threads and end after 3 s without work, so the
// count follows the connections open at once, never the traffic so far
// (api/connection_pool.h).
// Event streams hold one each, so at most `max_event_streams` (< threads) are
// accepted at once (503 beyond), leaving the rest for requests. Start()/Stop() are thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "api/model_api.h"
#include "api/peer_api.h"
#include "api/pull_api.h"
#include "api/request_guard.h"
#include "common/status.h"

namespace mw::api {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port
  std::string api_key;
  size_t max_body_bytes = 1 << 20;
  size_t threads = 64;          // connection threads at most
  size_t resident_threads = 8;  // of which kept while idle (<= threads)
  size_t max_event_streams = 32;
  std::chrono::milliseconds keepalive_interval{15000};
  // Host / Origin / Content-Type checks (api/request_guard.h). bound_host is
  // filled from `host` by the server; local_addresses by Bind() when the host
  // is a wildcard.
  GuardOptions guard;
  // The body of GET /metrics (called on a request thread); unset: 404.
  std::function<Result<std::string>()> metrics_text;
  // SPEC §17: pulls and scans (api/pull_api.h: its routes, `event: pull`
  // frames); nullptr: none. Must outlive the server.
  PullApi* pulls = nullptr;
  // Sent as X-Modelwarden-Node on every answer (issue 26: behind one
  // address, a client sees which node answered); empty: not sent.
  std::string node_id;
  // SPEC §21: asked before a /v1 inference or an unforced load whether
  // another node serves it (api/peer_proxy.h passes it there, with api_key);
  // nullptr: every request is served here. Must outlive the server.
  PeerRouting* peers = nullptr;
  // Each /v1 inference answered by this node: model ("" if not registered)
  // and HTTP status (OpenAiRouteOptions::answered); unset: not counted.
  std::function<void(const std::string& model, int http_status)> inference_answered;
};

class HttpServer {
 public:
  // `api` must outlive the server.
  HttpServer(ModelApi& api, HttpServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket. kUnavailable if the address is in use or
  // cannot be bound. Returns the bound port.
  [[nodiscard]] Result<int> Bind();
  // Serves until Stop(). Precondition: Bind() succeeded.
  [[nodiscard]] Status Run();
  // Ends open event streams and stops accepting; Run() returns. Idempotent.
  void Stop();
  // Replaces the API key for the requests that arrive from now on (empty: no
  // authentication). Thread-safe; for the SIGHUP reload.
  void SetApiKey(std::string api_key);
  // The API key now (what SetApiKey set last). Thread-safe.
  std::string ApiKey() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mw::api
