// SPEC §21: the routing decision of "any node answers" (app/peer_router.h).
#include "app/peer_router.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <utility>

#include "common/log.h"
#include "http_client/http_client.h"

namespace mw::app {

std::string DefaultAdvertiseUrl(const std::string& host, int port) {
  if (host.empty() || host == "0.0.0.0" || host == "::" || host == "*" || port <= 0) return "";
  const bool ipv6 = host.find(':') != std::string::npos;
  return "http://" + (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<api::PeerTarget> PeerAt(std::string node_id, const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0) return std::nullopt;
  std::string rest = url.substr(kScheme.size());
  rest = rest.substr(0, rest.find('/'));
  api::PeerTarget peer;
  peer.node_id = std::move(node_id);
  peer.url = url;
  peer.port = 80;
  const size_t colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find(']', colon) == std::string::npos) {
    const std::string port = rest.substr(colon + 1);
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) {
      return std::nullopt;
    }
    peer.port = std::stoi(port);
    rest.resize(colon);
  }
  if (rest.size() >= 2 && rest.front() == '[' && rest.back() == ']') rest = rest.substr(1, rest.size() - 2);
  if (rest.empty() || peer.port <= 0 || peer.port > 65535) return std::nullopt;
  peer.host = std::move(rest);
  return peer;
}

PeerRouter::PeerRouter(Registry& registry, api::ModelApi& models,
                       std::function<std::vector<std::string>()> loaded_here, Options options)
    : registry_(registry), models_(models), loaded_here_(std::move(loaded_here)), options_(std::move(options)) {}

Result<std::vector<NodeRecord>> PeerRouter::Nodes() {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    if (nodes_at_ != std::chrono::steady_clock::time_point{} && now - nodes_at_ < kNodesFresh) return nodes_;
  }
  ASSIGN_OR_RETURN(std::vector<NodeRecord> nodes, registry_.ListNodes());
  std::lock_guard lock(mu_);
  nodes_ = nodes;
  nodes_at_ = now;
  return nodes;
}

std::vector<NodeRecord> PeerRouter::Candidates(std::vector<NodeRecord> nodes) {
  const std::string self = registry_.NodeId();
  std::lock_guard lock(mu_);
  std::erase_if(nodes, [&](const NodeRecord& n) {
    if (n.node_id == self || !n.live() || !PeerAt(n.node_id, n.advertise_url)) return true;
    auto failed = failed_.find(n.node_id);
    if (failed == failed_.end()) return false;
    if (failed->second != n.heartbeat_at) {
      failed_.erase(failed);  // it has beaten since: a candidate again
      return false;
    }
    return true;
  });
  return nodes;
}

std::optional<api::PeerTarget> PeerRouter::Route(std::string_view model_name) {
  if (!options_.enabled) return std::nullopt;
  const std::string name(model_name);
  const std::vector<std::string> here = loaded_here_();
  if (std::find(here.begin(), here.end(), name) != here.end()) return std::nullopt;  // 1
  auto nodes = Nodes();
  if (!nodes.ok()) return std::nullopt;
  std::vector<NodeRecord> candidates = Candidates(std::move(*nodes));
  if (candidates.empty()) return std::nullopt;
  std::vector<const NodeRecord*> loaded;  // 2
  for (const NodeRecord& n : candidates) {
    if (std::find(n.loaded_models.begin(), n.loaded_models.end(), name) != n.loaded_models.end()) loaded.push_back(&n);
  }
  if (!loaded.empty()) {
    const NodeRecord& n = *loaded[turn_.fetch_add(1) % loaded.size()];
    return PeerAt(n.node_id, n.advertise_url);
  }
  auto model = models_.GetModel(name);
  if (!model.ok()) return std::nullopt;  // answered here (404 and the like)
  if (model->compatibility_status == "compatible" && (!model->fit || model->fit->fits)) return std::nullopt;  // 3
  std::set<std::string> compatible;  // 4
  for (const api::ClassVerdictView& v : model->verdicts) {
    if (v.status == "compatible") compatible.insert(v.environment_class);
  }
  for (const NodeRecord& n : candidates) {
    if (compatible.count(n.environment_class) != 0 && PeerFits(n, name)) return PeerAt(n.node_id, n.advertise_url);
  }
  return std::nullopt;  // 5
}

bool PeerRouter::PeerFits(const NodeRecord& node, const std::string& model_name) {
  auto client = http::HttpClient::Create(node.advertise_url, options_.api_key ? options_.api_key() : std::string(),
                                         std::chrono::duration_cast<std::chrono::seconds>(options_.fit_timeout));
  if (!client.ok()) return false;
  auto answer = (*client)->Send("GET", "/api/models/" + model_name);
  if (!answer.ok() || answer->status != 200) {
    MW_LOG(kDebug, "fleet") << "node " << node.node_id << " did not say whether '" << model_name << "' fits there";
    return false;
  }
  const nlohmann::json body = nlohmann::json::parse(answer->body, nullptr, false);
  if (!body.is_object()) return false;
  const auto fit = body.find("fit");
  if (fit == body.end() || fit->is_null()) return true;  // no estimate (a command engine): as here
  if (!fit->is_object()) return false;
  const auto fits = fit->find("fits");
  return fits != fit->end() && fits->is_boolean() && fits->get<bool>();
}

bool PeerRouter::Alive(const api::PeerTarget& peer) {
  auto nodes = Nodes();
  if (!nodes.ok()) return true;
  for (const NodeRecord& n : *nodes) {
    if (n.node_id == peer.node_id) return n.live();
  }
  return false;
}

void PeerRouter::Failed(const api::PeerTarget& peer) {
  std::string heartbeat_at;
  if (auto nodes = registry_.ListNodes(); nodes.ok()) {
    for (const NodeRecord& n : *nodes) {
      if (n.node_id == peer.node_id) heartbeat_at = n.heartbeat_at;
    }
  }
  std::lock_guard lock(mu_);
  failed_[peer.node_id] = heartbeat_at;
}

}  // namespace mw::app
