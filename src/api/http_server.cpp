#include "api/http_server.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include "api/connection_pool.h"
#include "api/errors.h"
#include "api/event_hub.h"
#include "api/json_codec.h"
#include "api/peer_proxy.h"
#include "api/pull_routes.h"
#include "api/request_head.h"
#include "api/route_guard.h"
#include "api/v1/openai_routes.h"
#include "common/log.h"
#ifdef MW_HAVE_WEB
#include "web/web_assets.h"
#endif

namespace mw::api {
namespace {

constexpr const char* kJson = "application/json; charset=utf-8";
// The caps httplib has no setting for (the others: cmake/dependencies.cmake;
// all of them in docs/security.md).
constexpr size_t kMaxQueuedConnections = 1024;   // accepted, waiting for a pool thread
constexpr time_t kReadTimeoutSeconds = 30;       // per read

// httplib's connection queue on ConnectionPool (its own ThreadPool starts no
// thread for a burst: connection_pool.h).
class PoolTaskQueue final : public httplib::TaskQueue {
 public:
  explicit PoolTaskQueue(ConnectionPool::Limits limits) : pool_(limits) {}
  bool enqueue(std::function<void()> fn) override { return pool_.Enqueue(std::move(fn)); }
  void shutdown() override { pool_.Shutdown(); }

 private:
  ConnectionPool pool_;
};

void SendError(httplib::Response& res, ErrorKind kind, std::string_view message, std::string_view extra = {}) {
  ErrorInfo info = DescribeError(kind);
  res.status = info.http_status;
  res.set_content(ErrorToJson(info.code, message, extra), kJson);
}

void SendStatus(httplib::Response& res, const Status& status) {
  SendError(res, ErrorKindForStatus(status.code()), status.message());
}

void SendJson(httplib::Response& res, int http_status, std::string body) {
  res.status = http_status;
  res.set_content(std::move(body), kJson);
}

// Constant-time: the work depends only on the key's length, never on where
// the first wrong byte is or on how long the guess is, so neither the key nor
// its length can be learned from timings.
bool SecretEquals(std::string_view given, std::string_view key) {
  if (key.empty()) return false;
  unsigned char diff = given.size() == key.size() ? 0 : 1;
  for (size_t i = 0; i < key.size(); ++i) {
    const unsigned char g = given.empty() ? 0 : static_cast<unsigned char>(given[i % given.size()]);
    diff |= static_cast<unsigned char>(g ^ static_cast<unsigned char>(key[i]));
  }
  return diff == 0;
}

// This machine's addresses, for the Host check of a server bound to a wildcard.
std::vector<std::string> LocalAddresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr) continue;
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ifa_addr->sa_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, text, sizeof(text));
    } else if (a->ifa_addr->sa_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr, text, sizeof(text));
    } else {
      continue;
    }
    out.emplace_back(text);
  }
  freeifaddrs(list);
  return out;
}

void SetCorsHeaders(httplib::Response& res, const std::string& origin) {
  res.set_header("Access-Control-Allow-Origin", origin);
  res.set_header("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS");
  res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
  res.set_header("Access-Control-Max-Age", "600");
}

std::string SseFrame(std::string_view event, std::string_view data) {
  std::string frame = "event: ";
  frame += event;
  frame += "\ndata: ";
  frame += data;  // our JSON is one line: no newline can split the frame
  frame += "\n\n";
  return frame;
}

}  // namespace

struct HttpServer::Impl {
  Impl(ModelApi& api_ref, HttpServerOptions opts)
      : api(api_ref), options(std::move(opts)), hub(options.max_event_streams, 1024) {}

  ModelApi& api;
  HttpServerOptions options;
  EventHub hub;
  httplib::Server server;
  int64_t subscription = -1;
  std::atomic<bool> bound{false};
  // httplib's stop() does nothing until its accept loop runs, so a Stop()
  // that lands between Bind() and that moment would be lost and Run() would
  // serve forever. These three close that window (see Run/Stop).
  std::atomic<bool> stop_requested{false};
  std::atomic<bool> run_entered{false};
  std::atomic<bool> run_done{false};

  // The GET /api/models body, reused while api.ModelListVersion() has not
  // grown past list_version (1 000 models: ~550 KiB and ~30 ms of CPU to
  // encode). build_mu lets one request rebuild it while the others wait.
  std::mutex list_mu;
  std::mutex build_mu;
  uint64_t list_version = 0;
  std::shared_ptr<const std::string> list_body;

  // options.api_key, replaceable while serving (SetApiKey: SIGHUP reload).
  mutable std::mutex api_key_mu;
  std::string ApiKey() const {
    std::lock_guard lock(api_key_mu);
    return options.api_key;
  }

  bool Authorized(const httplib::Request& req) const {
    const std::string api_key = ApiKey();
    if (api_key.empty()) return true;
    // The API needs the key; the page's own files do not (they hold no data).
    const bool protected_path =
        req.path.rfind("/api/", 0) == 0 || req.path.rfind("/v1/", 0) == 0 || req.path == "/metrics";
    if (!protected_path) return true;
    std::string header = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.size() > kBearer.size() && header.compare(0, kBearer.size(), kBearer) == 0) {
      return SecretEquals(std::string_view(header).substr(kBearer.size()), api_key);
    }
    if (req.path == "/api/events" && req.has_param("access_token")) {
      return SecretEquals(req.get_param_value("access_token"), api_key);
    }
    return false;
  }

  void InstallRoutes();
  void HandleList(httplib::Response& res);
  std::shared_ptr<const std::string> CachedList(uint64_t version);
  void HandleLoad(const httplib::Request& req, httplib::Response& res);
  // A load's answer (load and retest): 200, 409 model_incompatible, 422 load_failed.
  void SendLoadResult(httplib::Response& res, const Result<LoadResult>& result);
  void HandleEvents(const httplib::Request& req, httplib::Response& res);
  void HandleStatic(const httplib::Request& req, httplib::Response& res);
  void HandleMetrics(const httplib::Request& req, httplib::Response& res);
};

void HttpServer::Impl::InstallRoutes() {
  // A bounded pool (api/connection_pool.h): `threads` threads at most,
  // `resident_threads` of them kept while idle, and at most
  // kMaxQueuedConnections accepted connections waiting for one (closed beyond that).
  server.new_task_queue = [max = options.threads, resident = std::min(options.resident_threads, options.threads)] {
    return new PoolTaskQueue({.resident = resident, .max = max, .max_queued = kMaxQueuedConnections});
  };
  server.set_payload_max_length(options.max_body_bytes);
  server.set_keep_alive_timeout(5);
  server.set_keep_alive_max_count(100);
  // Per read: a client that sends nothing for this long loses its connection.
  server.set_read_timeout(kReadTimeoutSeconds);
  // httplib sends headers and body in separate writes; with Nagle on, the
  // body waits for the client's delayed ACK (~40 ms per response on Linux).
  server.set_tcp_nodelay(true);

  server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // Every answer, including the refusals below.
    res.set_header("X-Content-Type-Options", "nosniff");
    if (!options.node_id.empty()) res.set_header("X-Modelwarden-Node", options.node_id);
    // httplib caps each line and the number of headers (cmake/dependencies.cmake);
    // the rest of the head is checked here, before any route or body.
    if (std::optional<Refusal> framing = CheckFraming(req)) {
      SendError(res, framing->kind, framing->message);
      return httplib::Server::HandlerResponse::Handled;
    }
    // Every value as sent: httplib 0.54 never percent-decodes header values.
    const RequestFacts facts = FactsOf(req);
    if (facts.origin) res.set_header("Vary", "Origin");
    std::optional<Refusal> refusal = CheckRequest(options.guard, facts);
    const bool cors = !refusal && facts.origin && IsCorsOrigin(options.guard, *facts.origin);
    if (cors) SetCorsHeaders(res, std::string(*facts.origin));
    if (!refusal && req.method == "OPTIONS") {
      // A CORS preflight: answered only for allowed_origins.
      if (!cors) {
        SendError(res, ErrorKind::kOriginNotAllowed,
                  "cross-origin requests are allowed only from allowed_origins in the configuration");
      } else {
        res.status = 204;
      }
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!refusal && !Authorized(req)) {
      res.set_header("WWW-Authenticate", "Bearer");
      refusal = Refusal{ErrorKind::kUnauthorized, "missing or wrong API key: send 'Authorization: Bearer <key>'"};
    }
    if (!refusal) return httplib::Server::HandlerResponse::Unhandled;
    // Answered before the body is read. httplib 0.54 closes the connection
    // after any error answer without reading a declared body, so a request
    // hidden inside a refused one (our Host, no Origin) is never parsed as
    // the connection's next: SecurityTest.RequestSmuggledInARefusedBodyIsNotServed
    // keeps that true.
    SendError(res, refusal->kind, refusal->message);
    return httplib::Server::HandlerResponse::Handled;
  });
  // Errors produced by httplib itself (no route, body too large, bad request
  // line) arrive here with an empty body: give them the JSON shape too.
  server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                    httplib::Response& res) {
    if (FillOpenAiHttpError(req, res)) return httplib::Server::HandlerResponse::Handled;  // /v1: OpenAI's shape
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    const int status = res.status;
    const HttpFallback fallback = FallbackForHttpStatus(status, req.method, req.path);
    SendError(res, fallback.kind, fallback.message);
    if (fallback.keep_status) res.status = status;
    return httplib::Server::HandlerResponse::Handled;
  }));
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    SendError(res, ErrorKind::kInternal, "internal error while handling the request");
  });

  if (options.pulls) InstallPullRoutes(server, *options.pulls);
  server.Get("/api/models",
             GuardedRoute([this](const httplib::Request&, httplib::Response& res) { HandleList(res); }));
  server.Post("/api/models", GuardedRoute([this](const httplib::Request& req, httplib::Response& res) {
    auto request = ParseRegisterRequest(req.body);
    if (!request.ok()) return SendStatus(res, request.status());
    auto model = api.RegisterModel(*request);
    if (!model.ok() && model.status().code() == StatusCode::kDataLoss) {
      return SendError(res, ErrorKind::kInvalidModel, model.status().message());  // the file, not the registry
    }
    if (!model.ok()) return SendStatus(res, model.status());
    SendJson(res, 201, ModelToJson(*model, false));
  }));
  server.Get(R"(/api/models/([^/]+))", GuardedRoute([this](const httplib::Request& req, httplib::Response& res) {
    auto model = api.GetModel(req.matches[1].str());
    if (!model.ok()) return SendStatus(res, model.status());
    SendJson(res, 200, ModelToJson(*model, true));
  }));
  server.Patch(R"(/api/models/([^/]+)/config)", GuardedRoute([this](const httplib::Request& req, httplib::Response& res) {
    auto patch = ParseConfigPatch(req.body);
    if (!patch.ok()) return SendStatus(res, patch.status());
    auto model = api.UpdateConfig(req.matches[1].str(), *patch);
    if (!model.ok()) return SendStatus(res, model.status());
    // SPEC §18: a running engine keeps the settings it was started with.
    const bool pending = patch->load_config_json && model->loaded;
    SendJson(res, 200, PatchedModelToJson(*model, pending ? "the model is loaded: its new load_config applies at its "
                                                            "next load (unload it and load it again)"
                                                          : ""));
  }));
  server.Delete(R"(/api/models/([^/]+))", GuardedRoute([this](const httplib::Request& req, httplib::Response& res) {
    std::string name = req.matches[1].str();
    Status st = api.DeleteModel(name);
    if (!st.ok()) return SendStatus(res, st);
    SendJson(res, 200, DeletedToJson(name));
  }));
  server.Post("/api/orchestrate/load",
              GuardedRoute([this](const httplib::Request& req, httplib::Response& res) { HandleLoad(req, res); }));
  server.Post(R"(/api/models/([^/]+)/retest)", GuardedRoute([this](const httplib::Request& req, httplib::Response& res) {
    SendLoadResult(res, api.Retest(req.matches[1].str()));
  }));
  server.Post("/api/environment/reset", GuardedRoute([this](const httplib::Request&, httplib::Response& res) {
    auto environment = api.ResetEnvironment();
    if (!environment.ok()) return SendStatus(res, environment.status());
    SendJson(res, 200, EnvironmentToJson(*environment));
  }));
  server.Post("/api/orchestrate/unload", GuardedRoute([this](const httplib::Request& req, httplib::Response& res) {
    auto request = ParseLoadRequest(req.body, /*allow_force=*/false);
    if (!request.ok()) return SendStatus(res, request.status());
    auto model = api.Unload(request->model_name);
    if (!model.ok()) return SendStatus(res, model.status());
    SendJson(res, 200, UnloadedToJson(*model));
  }));
  server.Get("/api/status", GuardedRoute([this](const httplib::Request&, httplib::Response& res) {
    auto status = api.GetStatus();
    if (!status.ok()) return SendStatus(res, status.status());
    SendJson(res, 200, StatusToJson(*status));
  }));
  server.Get("/api/nodes", GuardedRoute([this](const httplib::Request&, httplib::Response& res) {
    auto nodes = api.ListNodes();
    if (!nodes.ok()) return SendStatus(res, nodes.status());
    SendJson(res, 200, NodesToJson(*nodes));
  }));
  server.Get("/api/events",
             GuardedRoute([this](const httplib::Request& req, httplib::Response& res) { HandleEvents(req, res); }));
  // Before the page's catch-all route, which would take /metrics.
  server.Get("/metrics",
             GuardedRoute([this](const httplib::Request& req, httplib::Response& res) { HandleMetrics(req, res); }));
  InstallOpenAiRoutes(server, api,
                      {.authorized = [this](const httplib::Request& req) { return Authorized(req); },
                       .peers = options.peers,
                       .api_key = [this] { return ApiKey(); },
                       .answered = options.inference_answered});
  server.Get(R"(/(?!api/).*)",
             GuardedRoute([this](const httplib::Request& req, httplib::Response& res) { HandleStatic(req, res); }));
}

std::shared_ptr<const std::string> HttpServer::Impl::CachedList(uint64_t version) {
  std::lock_guard lock(list_mu);
  // A body encoded for a later version is at least as new as this request.
  if (list_body && list_version >= version) return list_body;
  return nullptr;
}

void HttpServer::Impl::HandleList(httplib::Response& res) {
  // Read before listing: a change made after this read bumps the version past
  // it, so a body stored under `version` is never older than its label.
  const std::optional<uint64_t> version = api.ModelListVersion();
  std::shared_ptr<const std::string> body;
  std::unique_lock<std::mutex> building;
  if (version) {
    body = CachedList(*version);
    if (!body) {
      building = std::unique_lock(build_mu);
      body = CachedList(*version);  // built by the request we waited for
    }
  }
  if (!body) {
    auto models = api.ListModels();
    if (!models.ok()) return SendStatus(res, models.status());
    body = std::make_shared<const std::string>(ModelListToJson(*models));
    if (version) {
      std::lock_guard lock(list_mu);
      if (!list_body || *version >= list_version) {
        list_version = *version;
        list_body = body;
      }
    }
  }
  if (building.owns_lock()) building.unlock();
  res.status = 200;
  // Written from the shared body, not copied into the response.
  res.set_content_provider(body->size(), kJson,
                           [body](size_t offset, size_t length, httplib::DataSink& sink) {
                             if (offset >= body->size()) return false;
                             return sink.write(body->data() + offset, std::min(length, body->size() - offset));
                           });
}

void HttpServer::Impl::HandleLoad(const httplib::Request& req, httplib::Response& res) {
  auto request = ParseLoadRequest(req.body, /*allow_force=*/true);
  if (!request.ok()) return SendStatus(res, request.status());
  // SPEC §21: a forced load is about this node's verdict, so it stays here.
  if (!request->force && MayRoute(options.peers, req)) {
    if (std::optional<PeerTarget> peer = options.peers->Route(request->model_name)) {
      return ProxyToPeer(*options.peers, *peer, ApiKey(), req, res);
    }
  }
  SendLoadResult(res, api.Load(request->model_name, request->force));
}

void HttpServer::Impl::SendLoadResult(httplib::Response& res, const Result<LoadResult>& result) {
  if (!result.ok()) return SendStatus(res, result.status());
  switch (result->kind) {
    case LoadResult::Kind::kLoaded:
    case LoadResult::Kind::kAlreadyLoaded: return SendJson(res, 200, LoadResultToJson(*result, ""));
    case LoadResult::Kind::kIncompatible: {
      ErrorInfo info = DescribeError(ErrorKind::kModelIncompatible);
      return SendJson(res, info.http_status, LoadResultToJson(*result, info.code));
    }
    case LoadResult::Kind::kFailed: {
      ErrorInfo info = DescribeError(ErrorKind::kLoadFailed);
      return SendJson(res, info.http_status, LoadResultToJson(*result, info.code));
    }
    case LoadResult::Kind::kInsufficientMemory: {
      ErrorInfo info = DescribeError(ErrorKind::kInsufficientMemory);
      return SendJson(res, info.http_status, LoadResultToJson(*result, info.code));
    }
    case LoadResult::Kind::kModelsBusy: {
      ErrorInfo info = DescribeError(ErrorKind::kModelsBusy);
      return SendJson(res, info.http_status, LoadResultToJson(*result, info.code));
    }
  }
}

void HttpServer::Impl::HandleEvents(const httplib::Request&, httplib::Response& res) {
  std::shared_ptr<EventHub::Subscriber> sub = hub.Add();
  if (!sub) {
    return SendError(res, ErrorKind::kUnavailable, "too many open event streams; try again later");
  }
  // The first frames give a new client the current counts, so it needs no
  // separate request to be in sync.
  std::string first = "retry: 3000\n\n";
  if (auto status = api.GetStatus(); status.ok()) first += SseFrame("status", CountsToJson(status->counts));
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [sub, first = std::move(first), interval = options.keepalive_interval](size_t offset,
                                                                              httplib::DataSink& sink) mutable {
        if (offset == 0 && !first.empty()) {
          std::string out = std::move(first);
          first.clear();
          return sink.write(out.data(), out.size());
        }
        if (!sink.is_writable()) return false;
        bool closed = false;
        std::vector<std::string> frames = sub->Wait(interval, &closed);
        if (closed) {
          sink.done();
          return true;
        }
        if (frames.empty()) frames.emplace_back(": ping\n\n");
        for (const auto& frame : frames) {
          if (!sink.write(frame.data(), frame.size())) return false;
        }
        return true;
      },
      [this, sub](bool) { hub.Remove(sub); });
}

void HttpServer::Impl::HandleStatic(const httplib::Request& req, httplib::Response& res) {
#ifdef MW_HAVE_WEB
  if (const web::WebAsset* asset = web::FindWebAsset(req.path)) {
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    // The page may not be framed (clickjacking its Load/Delete buttons) and
    // loads nothing but its own files.
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'");
    res.set_header("Referrer-Policy", "no-referrer");
    res.set_content(std::string(asset->body), std::string(asset->content_type));
    return;
  }
#endif
  SendError(res, ErrorKind::kNotFound, "no such path: GET " + Echo(req.path));
}

// Prometheus text format (SPEC §13); the API key protects it like /api/.
void HttpServer::Impl::HandleMetrics(const httplib::Request& req, httplib::Response& res) {
  // The API key was checked before routing (Authorized covers /metrics).
  if (!options.metrics_text) return SendError(res, ErrorKind::kNotFound, "no such path: GET " + req.path);
  auto text = options.metrics_text();
  if (!text.ok()) return SendStatus(res, text.status());
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_content(std::move(*text), "text/plain; version=0.0.4; charset=utf-8");
}

HttpServer::HttpServer(ModelApi& api, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(api, std::move(options))) {
  impl_->options.guard.bound_host = impl_->options.host;
  impl_->options.guard.local_addresses = LocalAddresses();
  impl_->InstallRoutes();
  Impl* impl = impl_.get();
  impl_->subscription = api.Subscribe([impl](const Event& event) {
    if (event.kind == Event::Kind::kModel) {
      impl->hub.Publish(SseFrame("model", ModelToJson(event.model, false)));
    } else if (event.kind == Event::Kind::kEnvironment) {
      impl->hub.Publish(SseFrame("environment", EnvironmentToJson(event.environment)));
    } else {
      impl->hub.Publish(SseFrame("status", CountsToJson(event.counts)));
    }
  });
  if (impl_->options.pulls) {
    impl_->options.pulls->SetListener(
        [impl](const hub::PullView& pull) { impl->hub.Publish(SseFrame("pull", PullToJson(pull))); });
  }
}

HttpServer::~HttpServer() {
  Stop();
  impl_->api.Unsubscribe(impl_->subscription);
  if (impl_->options.pulls) impl_->options.pulls->SetListener(nullptr);
}

Result<int> HttpServer::Bind() {
  int port = impl_->options.port;
  if (port == 0) {
    port = impl_->server.bind_to_any_port(impl_->options.host);
    if (port < 0) return UnavailableError("cannot listen on " + impl_->options.host + " (any port)");
  } else if (!impl_->server.bind_to_port(impl_->options.host, port)) {
    return UnavailableError("cannot listen on " + impl_->options.host + ":" + std::to_string(port) +
                            " (address in use, or not an address of this machine)");
  }
  impl_->bound = true;
  return port;
}

Status HttpServer::Run() {
  if (!impl_->bound) return FailedPreconditionError("HttpServer::Run before Bind");
  impl_->run_entered = true;
  // A Stop() that saw run_entered == false has already set stop_requested.
  if (impl_->stop_requested) {
    impl_->run_done = true;
    return Status::Ok();
  }
  const bool clean = impl_->server.listen_after_bind();
  impl_->run_done = true;
  if (!clean && !impl_->stop_requested) return InternalError("the HTTP server stopped with an error");
  return Status::Ok();
}

std::string HttpServer::ApiKey() const { return impl_->ApiKey(); }

void HttpServer::SetApiKey(std::string api_key) {
  std::lock_guard lock(impl_->api_key_mu);
  impl_->options.api_key = std::move(api_key);
}

void HttpServer::Stop() {
  impl_->stop_requested = true;
  impl_->hub.Close();
  if (!impl_->run_entered) return;  // Run() will see stop_requested and return at once
  // Run() is entering httplib's loop: wait until it runs (or ended), then stop it.
  for (int i = 0; i < 5000 && !impl_->server.is_running() && !impl_->run_done; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  impl_->server.stop();
}

}  // namespace mw::api
