// FleetNode (SPEC §14): see fleet_node.h.
#include "app/fleet_node.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>

#include "common/log.h"
#include "common/random_hex.h"
#include "common/time_util.h"

namespace mw::app {
namespace {

// [A-Za-z0-9._-] only: the id appears in URLs, logs and the page.
std::string SafeHostName(std::string host) {
  for (char& c : host) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '-';
  }
  if (host.empty()) host = "node";
  return host.substr(0, 64);
}

bool IsValidNodeId(const std::string& id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
         });
}

}  // namespace

std::string HostName() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) return "unknown";
  return host;
}

Result<std::string> LoadOrCreateNodeId(const std::filesystem::path& data_dir) {
  const std::filesystem::path path = data_dir / "node_id";
  if (std::ifstream in(path); in) {
    std::string id;
    std::getline(in, id);
    if (!IsValidNodeId(id)) {
      return DataLossError("node id file " + path.string() + " holds '" + id.substr(0, 140) +
                           "', not a node id: delete it to get a new one (this node then counts as a new node)");
    }
    return id;
  }
  ASSIGN_OR_RETURN(const std::string suffix, RandomHex(4));
  const std::string id = SafeHostName(HostName()) + "-" + suffix;
  const std::filesystem::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return PermissionDeniedError("cannot create " + tmp.string() + ": " + std::strerror(errno));
  const std::string line = id + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!written || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return PermissionDeniedError("cannot write " + path.string() + ": " + std::strerror(errno));
  }
  MW_LOG(kInfo, "fleet") << "new node id " << id << " (kept in " << path.string() << ")";
  return id;
}

FleetNode::FleetNode(Registry& registry, StateMachine& state_machine, Options options, std::ostream& out,
                     std::function<std::vector<std::string>()> loaded_models)
    : registry_(registry),
      state_machine_(state_machine),
      options_(std::move(options)),
      out_(out),
      loaded_models_(std::move(loaded_models)) {}

FleetNode::~FleetNode() { Stop(); }

Status FleetNode::Join() {
  NodeRecord self;
  self.node_id = options_.node_id;
  self.host = options_.host;
  self.lease_s = options_.lease_s;
  self.environment_class = registry_.EnvironmentClass();
  ASSIGN_OR_RETURN(const NodeRecord joined, registry_.JoinFleet(self));
  MW_LOG(kInfo, "fleet") << "node " << joined.node_id << " holds its lease (epoch " << joined.epoch << ", lease "
                         << joined.lease_s << " s)";
  return Status::Ok();
}

void FleetNode::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] { Loop(); });
  if (registry_.Shared()) takeover_thread_ = std::thread([this] { TakeoverLoop(); });
}

void FleetNode::Stop() {
  std::thread t;
  std::thread takeover;
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
    t = std::move(thread_);
    takeover = std::move(takeover_thread_);
  }
  cv_.notify_all();
  if (t.joinable()) t.join();
  if (takeover.joinable()) takeover.join();
  if (Status st = registry_.LeaveFleet(); !st.ok()) MW_LOG(kWarn, "fleet") << "leaving the fleet: " << st.ToString();
}

bool FleetNode::Sleep(std::chrono::milliseconds interval) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, interval, [this] { return stop_; });
}

void FleetNode::Loop() {
  const auto interval = std::chrono::milliseconds(std::max(100, options_.lease_s * 1000 / 3));
  do {
    Beat();
  } while (Sleep(interval));
}

void FleetNode::TakeoverLoop() {
  const auto interval = std::chrono::milliseconds(std::max(100, options_.lease_s * 1000 / 3));
  while (Sleep(interval)) {
    // Others are judged only after this node has renewed for a whole lease:
    // after an outage of the database every node's heartbeat is old, and each
    // must get its chance to renew before anyone's lease counts as expired.
    const int64_t since = renewing_since_ms_.load();
    if (since < 0 || MonotonicMillis() - since < int64_t{options_.lease_s} * 1000) continue;
    auto expired = state_machine_.CloseAttemptsOfExpiredNodes(out_);
    if (!expired.ok()) MW_LOG(kWarn, "fleet") << "closing expired nodes' attempts: " << expired.status().ToString();
  }
}

void FleetNode::Beat() {
  Status st = registry_.Heartbeat(loaded_models_());
  if (st.code() == StatusCode::kFailedPrecondition) {
    MW_LOG(kError, "fleet") << st.message();
    out_ << "\u26a0\ufe0f  This node (" << options_.node_id
         << ") lost its lease: another node closed its open load attempts while it was silent; joining again\n";
    out_.flush();
    st = Join();
  }
  if (!st.ok()) {
    if (!unreachable_) MW_LOG(kWarn, "fleet") << "lease not renewed: " << st.ToString();
    unreachable_ = true;
    renewing_since_ms_ = -1;
    return;
  }
  if (unreachable_) MW_LOG(kInfo, "fleet") << "lease renewed again";
  if (renewing_since_ms_.load() < 0) renewing_since_ms_ = MonotonicMillis();
  unreachable_ = false;
}

}  // namespace mw::app
