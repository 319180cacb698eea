#include "api/v1/openai_routes.h"

#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "api/client_connection.h"
#include "api/errors.h"
#include "api/peer_proxy.h"
#include "api/v1/openai_codec.h"
#include "common/log.h"
#include "http_client/upstream_call.h"

namespace mw::api {
namespace {

using http::UpstreamCall;

constexpr const char* kJson = "application/json; charset=utf-8";
constexpr auto kPoll = std::chrono::milliseconds(250);

void SendKind(httplib::Response& res, ErrorKind kind, std::string_view message, std::string_view extra = {}) {
  ErrorInfo info = DescribeError(kind);
  res.status = info.http_status;
  res.set_content(OpenAiErrorJson(info.http_status, info.code, message, extra), kJson);
}

void SendStatus(httplib::Response& res, const Status& status) {
  SendKind(res, ErrorKindForStatus(status.code()), status.message());
}

bool IsV1(const std::string& path) { return path == "/v1" || path.rfind("/v1/", 0) == 0; }

struct Context {
  ModelApi& api;
  OpenAiRouteOptions options;
};

// Every /v1 route: API key first, and no exception escapes.
template <typename F>
httplib::Server::Handler Route(std::shared_ptr<Context> ctx, F f) {
  return [ctx, f = std::move(f)](const httplib::Request& req, httplib::Response& res) {
    try {
      if (ctx->options.authorized && !ctx->options.authorized(req)) {
        res.set_header("WWW-Authenticate", "Bearer");
        return SendKind(res, ErrorKind::kUnauthorized, "missing or wrong API key: send 'Authorization: Bearer <key>'");
      }
      f(*ctx, req, res);
    } catch (const std::exception& e) {
      MW_LOG(kError, "v1") << req.method << " " << req.path << " threw: " << e.what();
      SendKind(res, ErrorKind::kInternal, "internal error while handling the request");
    } catch (...) {
      MW_LOG(kError, "v1") << req.method << " " << req.path << " threw a non-standard exception";
      SendKind(res, ErrorKind::kInternal, "internal error while handling the request");
    }
  };
}

// The engine's connection broke before its answer was complete. For a
// request whose first token was to verify its model's load (SPEC §16) and
// that load failed: the load's classified failure (`load`). Else a crash if
// the engine process died (its classified summary), else a plain engine error.
struct Broken {
  ErrorKind kind;
  std::string message;
  std::optional<LoadResult> load;
};
Broken BrokenEngine(Context& ctx, const std::string& model, InferenceLease& lease, const UpstreamCall& call) {
  if (std::optional<LoadResult> failed = lease.LoadFailure(ctx.options.death_wait_ms)) {
    return {ErrorKind::kLoadFailed, failed->message, std::move(failed)};
  }
  std::optional<EngineEnd> end = ctx.api.AwaitEngineDeath(model, lease.engine_pid, ctx.options.death_wait_ms);
  if (end) return {end->hung ? ErrorKind::kEngineHung : ErrorKind::kEngineCrashed, end->summary, std::nullopt};
  std::string detail = call.failed() ? " (" + call.error_text() + ")" : std::string();
  return {ErrorKind::kEngineError,
          "the connection to the engine of '" + model + "' broke before its answer was complete" + detail +
              " (the engine closed it, the model was unloaded, or the server is stopping)",
          std::nullopt};
}

// The on-demand load failed: its classification, as POST /api/orchestrate/load answers it.
void SendLoadFailed(httplib::Response& res, const LoadResult& load) {
  ErrorInfo info = DescribeError(ErrorKind::kLoadFailed);
  res.status = info.http_status;
  res.set_content(OpenAiLoadErrorJson(info.http_status, info.code, load), kJson);
}

void SendBroken(httplib::Response& res, const Broken& broken) {
  if (broken.load) return SendLoadFailed(res, *broken.load);
  SendKind(res, broken.kind, broken.message);
}


// SPEC §19: when a request's generation must end (InferenceLease::timeout_ms
// from when the engine is asked).
using Clock = std::chrono::steady_clock;
Clock::time_point DeadlineOf(const InferenceLease& lease) {
  return Clock::now() + std::chrono::milliseconds(lease.timeout_ms);
}

// Past the deadline: the generation is cancelled (the engine connection is
// closed, which stops it; the engine serves others) and counted.
std::string CancelTimedOut(UpstreamCall& call, InferenceLease& lease, const std::string& model) {
  call.Cancel();
  lease.TimedOut();
  const std::string message = "the request ran past its timeout of " + std::to_string(lease.timeout_ms) +
                              " ms (\"timeout\" in the request, at most the server's request_timeout_s): "
                              "its generation on '" + model + "' was cancelled";
  MW_LOG(kInfo, "v1") << "model=" << model << " " << message;
  return message;
}

void RefuseTimedOut(UpstreamCall& call, InferenceLease& lease, const std::string& model, httplib::Response& res) {
  SendKind(res, ErrorKind::kRequestTimeout, CancelTimedOut(call, lease, model));
}

enum class ReadEnd { kDone, kClientGone, kTimedOut };

// Reads what is left of the engine's answer, up to kMaxAnswerBytes (then the
// call is cancelled: body->size() > kMaxAnswerBytes), until the deadline.
ReadEnd ReadAll(UpstreamCall& call, const ClientConnection& client, Clock::time_point deadline, std::string* body) {
  for (;;) {
    UpstreamCall::Read r = call.Next(body, kPoll);
    if (body->size() > kMaxAnswerBytes) {
      call.Cancel();
      return ReadEnd::kDone;
    }
    if (r == UpstreamCall::Read::kEnd) return ReadEnd::kDone;
    if (Clock::now() >= deadline) return ReadEnd::kTimedOut;
    if (r == UpstreamCall::Read::kTimeout && client.Gone()) {
      call.Cancel();
      return ReadEnd::kClientGone;
    }
  }
}

// A non-streamed answer over kMaxAnswerBytes: the engine is stopped, nothing
// more is read (SPEC §20).
void RefuseTooLarge(UpstreamCall& call, httplib::Response& res) {
  call.Cancel();
  SendKind(res, ErrorKind::kResponseTooLarge,
           "the answer is larger than " + std::to_string(kMaxAnswerBytes >> 20) +
               " MiB; ask for less (max_tokens, n_probs) or set \"stream\": true, which is not held in memory");
}

// State of one streamed answer, shared with httplib's content provider.
struct Stream {
  std::shared_ptr<Context> ctx;
  std::string model;
  std::shared_ptr<InferenceLease> lease;
  std::unique_ptr<UpstreamCall> call;
  std::unique_ptr<ClientConnection> client;
  SseParser parser;
  Clock::time_point deadline;
  bool saw_done = false;
  bool saw_error = false;
  bool finished = false;
};

void StreamToClient(const std::shared_ptr<Stream>& st, httplib::Response& res) {
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [st](size_t, httplib::DataSink& sink) {
        if (st->finished) {
          sink.done();
          return true;
        }
        std::string data;
        UpstreamCall::Read r = st->call->Next(&data, kPoll);
        const bool timed_out = r != UpstreamCall::Read::kEnd && Clock::now() >= st->deadline;
        if (r == UpstreamCall::Read::kTimeout && !timed_out) {
          if (st->client->Gone()) {
            MW_LOG(kInfo, "v1") << "model=" << st->model << " client disconnected: generation cancelled";
            st->call->Cancel();
            return false;
          }
          return true;
        }
        std::string out;
        if (!data.empty()) {
          st->parser.Feed(data);
          // Whole events only, each valid UTF-8: an error event added later
          // never lands inside a half-sent one, and clients can parse each.
          while (std::optional<std::string> event = st->parser.Next()) {
            std::optional<std::string> payload = SseData(*event);
            if (payload && *payload == "[DONE]") st->saw_done = true;
            if (payload && ErrorInEventData(*payload)) st->saw_error = true;
            if (payload && !st->saw_error) st->lease->FirstToken();
            if (payload && payload->find("\"model\"") != std::string::npos) {
              // The engine names its file; the client gets the name it asked for.
              out += "data: " + WithModelName(SanitizeUtf8(*payload), st->model);
            } else {
              out += SanitizeUtf8(*event);
            }
            out += "\n\n";
          }
        }
        if (timed_out && !st->saw_done && !st->saw_error) {
          // Past the timeout (SPEC §19): the whole events read so far, then an error event.
          ErrorInfo info = DescribeError(ErrorKind::kRequestTimeout);
          out += OpenAiErrorEvent(info.http_status, info.code, CancelTimedOut(*st->call, *st->lease, st->model));
          st->finished = true;
        } else if (r == UpstreamCall::Read::kEnd) {
          if (!st->saw_done && !st->saw_error) {
            Broken broken = BrokenEngine(*st->ctx, st->model, *st->lease, *st->call);
            ErrorInfo info = DescribeError(broken.kind);
            MW_LOG(kWarn, "v1") << "model=" << st->model << " stream broken: " << info.code << ": " << broken.message;
            out += OpenAiErrorEvent(info.http_status, info.code, broken.message);
          }
          st->finished = true;
        }
        if (!out.empty() && !sink.write(out.data(), out.size())) {
          MW_LOG(kInfo, "v1") << "model=" << st->model << " client disconnected: generation cancelled";
          st->call->Cancel();
          return false;
        }
        if (st->finished) sink.done();
        return true;
      },
      [st](bool) {
        st->call->Cancel();
        st->lease.reset();  // frees the slot
      });
}

// What an inference was: the model it named, and whether another node served it.
struct InferenceOutcome {
  std::string model;
  bool routed = false;
};

void Inference(OpenAiEndpoint endpoint, const std::shared_ptr<Context>& ctx, const httplib::Request& req,
               httplib::Response& res, InferenceOutcome* outcome) {
  auto parsed = ParseOpenAiRequest(endpoint, req.body);
  if (!parsed.ok()) return SendKind(res, ErrorKind::kInvalidRequest, parsed.status().message());
  outcome->model = parsed->model;
  if (MayRoute(ctx->options.peers, req)) {  // SPEC §21: another node may serve it better
    if (std::optional<PeerTarget> peer = ctx->options.peers->Route(parsed->model)) {
      outcome->routed = true;
      return ProxyToPeer(*ctx->options.peers, *peer, ctx->options.api_key ? ctx->options.api_key() : "", req, res);
    }
  }
  InferenceRequest request;
  request.model_name = parsed->model;
  request.keep_alive_ms = parsed->keep_alive_ms;
  request.embeddings = endpoint == OpenAiEndpoint::kEmbeddings;
  request.timeout_ms = parsed->timeout_ms;
  auto admission = ctx->api.BeginInference(request);
  if (!admission.ok()) return SendStatus(res, admission.status());
  switch (admission->kind) {
    case InferenceAdmission::Kind::kReady: break;
    case InferenceAdmission::Kind::kIncompatible: {
      ErrorInfo info = DescribeError(ErrorKind::kModelIncompatible);
      res.status = info.http_status;
      return res.set_content(OpenAiLoadErrorJson(info.http_status, info.code, admission->load), kJson);
    }
    case InferenceAdmission::Kind::kLoadFailed: return SendLoadFailed(res, admission->load);
    case InferenceAdmission::Kind::kQueueFull: return SendKind(res, ErrorKind::kQueueFull, admission->message);
    case InferenceAdmission::Kind::kInsufficientMemory:
      return SendKind(res, ErrorKind::kInsufficientMemory, admission->message);
    case InferenceAdmission::Kind::kModelsBusy: return SendKind(res, ErrorKind::kModelsBusy, admission->message);
    case InferenceAdmission::Kind::kEngineHung: return SendKind(res, ErrorKind::kEngineHung, admission->message);
  }
  std::shared_ptr<InferenceLease> lease = std::move(admission->lease);
  if (!lease->warning.empty()) res.set_header("X-Modelwarden-Warning", HeaderSafe(lease->warning));
  if (!lease->auto_fix_json.empty()) res.set_header("X-Modelwarden-Auto-Fix", HeaderSafe(lease->auto_fix_json));
  if (!lease->adjusted_json.empty()) res.set_header("X-Modelwarden-Adjusted", HeaderSafe(lease->adjusted_json));

  UpstreamCall::Options options;
  options.engine = lease->engine;
  options.path = std::string(OpenAiPath(endpoint));
  options.body = std::move(parsed->upstream_body);
  auto call = std::make_unique<UpstreamCall>(std::move(options));
  auto client = std::make_unique<ClientConnection>(req);
  const Clock::time_point deadline = DeadlineOf(*lease);
  while (!call->WaitHead(kPoll)) {
    if (Clock::now() >= deadline) return RefuseTimedOut(*call, *lease, parsed->model, res);
    if (client->Gone()) {
      MW_LOG(kInfo, "v1") << "model=" << parsed->model << " client disconnected before the engine answered";
      call->Cancel();
      res.status = 499;  // nobody reads it
      return;
    }
  }
  if (!call->has_head()) {
    return SendBroken(res, BrokenEngine(*ctx, parsed->model, *lease, *call));
  }
  const int engine_status = call->status();
  const bool sse = call->content_type().rfind("text/event-stream", 0) == 0;
  if (engine_status == 200 && sse && parsed->stream) {
    auto st = std::make_shared<Stream>();
    st->ctx = ctx;
    st->model = parsed->model;
    st->lease = std::move(lease);
    st->call = std::move(call);
    st->client = std::move(client);
    st->deadline = deadline;
    return StreamToClient(st, res);
  }
  if (engine_status == 200 && sse) {
    // Assembled from the engine's stream (see ParseOpenAiRequest).
    StreamAssembler assembler(endpoint);
    SseParser parser;
    bool saw_done = false;
    size_t received = 0;
    auto last_check = std::chrono::steady_clock::now();
    for (;;) {
      std::string data;
      UpstreamCall::Read r = call->Next(&data, kPoll);
      received += data.size();
      if (received > kMaxAnswerBytes) return RefuseTooLarge(*call, res);
      if (r != UpstreamCall::Read::kEnd && Clock::now() >= deadline) {
        return RefuseTimedOut(*call, *lease, parsed->model, res);
      }
      // Nothing is written to the client until the end: look at its socket
      // now and then, whether or not the engine is sending.
      if (r != UpstreamCall::Read::kEnd && std::chrono::steady_clock::now() - last_check >= kPoll) {
        last_check = std::chrono::steady_clock::now();
        if (client->Gone()) {
          MW_LOG(kInfo, "v1") << "model=" << parsed->model << " client disconnected: generation cancelled";
          call->Cancel();
          res.status = 499;
          return;
        }
      }
      parser.Feed(data);
      while (std::optional<std::string> event = parser.Next()) {
        std::optional<std::string> payload = SseData(*event);
        if (!payload) continue;
        if (*payload == "[DONE]") {
          saw_done = true;
          continue;
        }
        std::string clean = SanitizeUtf8(*payload);
        if (std::optional<OpenAiError> error = ErrorInEventData(clean)) {
          call->Cancel();
          res.status = error->http_status;
          return res.set_content(error->body, kJson);
        }
        lease->FirstToken();
        if (Status st = assembler.Add(clean); !st.ok()) {
          call->Cancel();
          return SendKind(res, ErrorKind::kEngineError, st.message());
        }
      }
      if (r == UpstreamCall::Read::kEnd) break;
    }
    if (!saw_done) return SendBroken(res, BrokenEngine(*ctx, parsed->model, *lease, *call));
    res.status = 200;
    return res.set_content(assembler.Finish(parsed->model), kJson);
  }
  // A plain answer (embeddings, an engine that ignored stream, or an error).
  std::string body;
  switch (ReadAll(*call, *client, deadline, &body)) {
    case ReadEnd::kDone: break;
    case ReadEnd::kClientGone: res.status = 499; return;
    case ReadEnd::kTimedOut: return RefuseTimedOut(*call, *lease, parsed->model, res);
  }
  if (call->failed()) return SendBroken(res, BrokenEngine(*ctx, parsed->model, *lease, *call));
  if (engine_status == 200 && !body.empty()) lease->FirstToken();
  if (body.size() > kMaxAnswerBytes) return RefuseTooLarge(*call, res);
  if (engine_status != 200) {
    OpenAiError error = EngineErrorToOpenAi(engine_status, body);
    res.status = error.http_status;
    return res.set_content(error.body, kJson);
  }
  res.status = 200;
  if (sse) return res.set_content(SanitizeUtf8(body), "text/event-stream");
  res.set_content(WithModelName(SanitizeUtf8(body), parsed->model), kJson);
}

}  // namespace

void InstallOpenAiRoutes(httplib::Server& server, ModelApi& api, OpenAiRouteOptions options) {
  auto ctx = std::make_shared<Context>(Context{api, std::move(options)});
  server.Get("/v1/models", Route(ctx, [](Context& c, const httplib::Request&, httplib::Response& res) {
    auto models = c.api.ListModels();
    if (!models.ok()) return SendStatus(res, models.status());
    res.status = 200;
    res.set_content(OpenAiModelListJson(*models), kJson);
  }));
  server.Get(R"(/v1/models/([^/]+))", Route(ctx, [](Context& c, const httplib::Request& req, httplib::Response& res) {
    auto model = c.api.GetModel(req.matches[1].str());
    if (!model.ok()) {
      return SendKind(res, ErrorKind::kModelNotFound, "no model named '" + Echo(req.matches[1].str()) + "' is registered");
    }
    res.status = 200;
    res.set_content(OpenAiModelJson(*model), kJson);
  }));
  const std::pair<const char*, OpenAiEndpoint> kInference[] = {
      {"/v1/chat/completions", OpenAiEndpoint::kChatCompletions},
      {"/v1/completions", OpenAiEndpoint::kCompletions},
      {"/v1/embeddings", OpenAiEndpoint::kEmbeddings},
  };
  for (const auto& [path, endpoint] : kInference) {
    server.Post(path, Route(ctx, [ctx, endpoint = endpoint](Context&, const httplib::Request& req,
                                                           httplib::Response& res) {
      InferenceOutcome outcome;
      Inference(endpoint, ctx, req, res, &outcome);
      // Counted where it was served: a request passed to a peer is counted there.
      if (!outcome.routed && ctx->options.answered) {
        ctx->options.answered(res.status == 404 ? std::string() : outcome.model, res.status);
      }
    }));
    auto wrong_method = Route(ctx, [](Context&, const httplib::Request& req, httplib::Response& res) {
      SendKind(res, ErrorKind::kMethodNotAllowed, req.method + " is not allowed on " + Echo(req.path) + "; use POST");
    });
    server.Get(path, wrong_method);
    server.Put(path, wrong_method);
    server.Patch(path, wrong_method);
    server.Delete(path, wrong_method);
  }
  auto unknown = Route(ctx, [](Context&, const httplib::Request& req, httplib::Response& res) {
    SendKind(res, ErrorKind::kNotFound, "no such path: " + req.method + " " + Echo(req.path));
  });
  server.Get(R"(/v1(/.*)?)", unknown);
  server.Post(R"(/v1(/.*)?)", unknown);
  server.Put(R"(/v1(/.*)?)", unknown);
  server.Patch(R"(/v1(/.*)?)", unknown);
  server.Delete(R"(/v1(/.*)?)", unknown);
}

bool FillOpenAiHttpError(const httplib::Request& req, httplib::Response& res) {
  if (!IsV1(req.path)) return false;
  if (!res.body.empty()) {
    std::optional<OpenAiError> converted = ApiErrorToOpenAi(res.status, res.body);
    if (!converted) return false;  // already OpenAI's shape (or not an error body)
    res.set_content(converted->body, kJson);
    return true;
  }
  const int status = res.status;
  const HttpFallback fallback = FallbackForHttpStatus(status, req.method, req.path);
  SendKind(res, fallback.kind, fallback.message);
  if (fallback.keep_status) res.status = status;
  return true;
}

}  // namespace mw::api
