#include "api/peer_proxy.h"

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "api/client_connection.h"
#include "api/errors.h"
#include "api/json_codec.h"
#include "api/v1/openai_codec.h"
#include "common/log.h"
#include "http_client/upstream_call.h"

namespace mw::api {
namespace {

using Clock = std::chrono::steady_clock;
using http::UpstreamCall;

constexpr const char* kJson = "application/json; charset=utf-8";
constexpr auto kPoll = std::chrono::milliseconds(100);
// How often a pending answer asks whether the peer still holds its lease.
constexpr auto kLivenessEvery = std::chrono::milliseconds(1000);

// One proxied request: the call, the client, and the liveness clock.
struct PeerCall {
  PeerRouting& routing;
  PeerTarget peer;
  std::unique_ptr<UpstreamCall> call;
  ClientConnection client;
  Clock::time_point next_check = Clock::now() + kLivenessEvery;
  bool finished = false;

  // True when the peer stopped holding its lease (checked every kLivenessEvery).
  bool PeerGone() {
    if (Clock::now() < next_check) return false;
    next_check = Clock::now() + kLivenessEvery;
    return !routing.Alive(peer);
  }

  // The peer failed: logged, avoided until its next heartbeat; the message for the client.
  std::string Fail(const std::string& what) {
    call->Cancel();
    routing.Failed(peer);
    std::string message = "node '" + peer.node_id + "' (" + peer.url +
                          "), which this request was routed to, failed before its answer was complete: " + what +
                          "; it is not routed to again until its next heartbeat";
    MW_LOG(kWarn, "fleet") << message;
    return message;
  }

  std::string Broken() const {
    return call->failed() ? "the connection broke (" + call->error_text() + ")" : "the connection broke";
  }
};

constexpr const char* kStopped = "it stopped holding its lease (no heartbeat within lease_s)";

void SendPeerFailed(httplib::Response& res, const std::string& message) {
  ErrorInfo info = DescribeError(ErrorKind::kPeerFailed);
  res.status = info.http_status;
  res.set_content(ErrorToJson(info.code, message), kJson);  // /v1: in OpenAI's shape by the error handler
}

// The peer's headers that the client gets as the peer sent them.
void CopyHeaders(const UpstreamCall& call, httplib::Response& res) {
  for (const auto& [name, value] : call.headers()) {
    if (name.rfind("x-modelwarden-", 0) != 0 && name != "retry-after" && name != "www-authenticate") continue;
    if (name == "x-modelwarden-hop") continue;
    res.headers.erase(name);  // this node's own X-Modelwarden-Node: the peer's names who served
    res.set_header(name, value);
  }
}

void StreamToClient(const std::shared_ptr<PeerCall>& pc, const std::string& content_type, httplib::Response& res) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      content_type,
      [pc](size_t, httplib::DataSink& sink) {
        if (pc->finished) {
          sink.done();
          return true;
        }
        std::string data;
        const UpstreamCall::Read r = pc->call->Next(&data, kPoll);
        std::string failure;
        if (r == UpstreamCall::Read::kEnd && pc->call->failed()) failure = pc->Fail(pc->Broken());
        if (r != UpstreamCall::Read::kEnd && pc->PeerGone()) failure = pc->Fail(kStopped);
        if (r == UpstreamCall::Read::kTimeout && failure.empty()) {
          if (pc->client.Gone()) {
            pc->call->Cancel();
            return false;
          }
          return true;
        }
        if (!failure.empty()) {
          ErrorInfo info = DescribeError(ErrorKind::kPeerFailed);
          data += "\n\n" + OpenAiErrorEvent(info.http_status, info.code, failure);
          pc->finished = true;
        } else if (r == UpstreamCall::Read::kEnd) {
          pc->finished = true;
        }
        if (!data.empty() && !sink.write(data.data(), data.size())) {
          pc->call->Cancel();
          return false;
        }
        if (pc->finished) sink.done();
        return true;
      },
      [pc](bool) { pc->call->Cancel(); });
}

}  // namespace

void ProxyToPeer(PeerRouting& routing, const PeerTarget& peer, const std::string& api_key, const httplib::Request& req,
                 httplib::Response& res) {
  UpstreamCall::Options options;
  options.engine.host = peer.host;
  options.engine.port = peer.port;
  options.engine.api_key = api_key;
  options.path = req.path;
  options.body = req.body;
  options.headers = std::string(kPeerHopHeader) + ": 1\r\n";
  auto pc = std::make_shared<PeerCall>(
      PeerCall{routing, peer, std::make_unique<UpstreamCall>(std::move(options)), ClientConnection(req)});
  MW_LOG(kDebug, "fleet") << req.path << " routed to node " << peer.node_id << " (" << peer.url << ")";
  while (!pc->call->WaitHead(kPoll)) {
    if (pc->client.Gone()) {
      pc->call->Cancel();
      res.status = 499;  // nobody reads it
      return;
    }
    if (pc->PeerGone()) return SendPeerFailed(res, pc->Fail(kStopped));
  }
  if (!pc->call->has_head()) return SendPeerFailed(res, pc->Fail(pc->Broken()));
  CopyHeaders(*pc->call, res);
  res.status = pc->call->status();
  const std::string content_type = pc->call->content_type();
  if (content_type.rfind("text/event-stream", 0) == 0) return StreamToClient(pc, content_type, res);
  std::string body;
  for (;;) {
    const UpstreamCall::Read r = pc->call->Next(&body, kPoll);
    if (r == UpstreamCall::Read::kEnd) break;
    if (body.size() > kMaxAnswerBytes) {
      pc->call->Cancel();
      ErrorInfo info = DescribeError(ErrorKind::kResponseTooLarge);
      res.status = info.http_status;
      return res.set_content(ErrorToJson(info.code, "the answer of node '" + peer.node_id + "' is larger than " +
                                                        std::to_string(kMaxAnswerBytes >> 20) + " MiB"),
                             kJson);
    }
    if (r == UpstreamCall::Read::kTimeout && pc->client.Gone()) {
      pc->call->Cancel();
      res.status = 499;
      return;
    }
    if (pc->PeerGone()) return SendPeerFailed(res, pc->Fail(kStopped));
  }
  if (pc->call->failed()) return SendPeerFailed(res, pc->Fail(pc->Broken()));
  res.set_content(std::move(body), content_type.empty() ? std::string(kJson) : content_type);
}

}  // namespace mw::api
