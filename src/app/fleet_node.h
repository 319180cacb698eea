// app/fleet_node: this server as a node of the fleet (SPEC §14).
//
//   LoadOrCreateNodeId(data_dir) -> the stable node_id kept in
//     <data_dir>/node_id (created once: "<host>-<8 hex digits>", written to a
//     temporary file, fsynced and renamed, so a crash never leaves half an id).
//   FleetNode: joins the registry's fleet (Registry::JoinFleet) before the
//     startup cleanup, then a thread renews the lease every lease_s / 3
//     (Registry::Heartbeat: on PostgreSQL on a connection of its own, never
//     behind the registry's mutex) and, when the registry is shared
//     (PostgreSQL), a second thread as often closes the attempts of nodes
//     whose lease expired (StateMachine::CloseAttemptsOfExpiredNodes, which
//     prints the SPEC §1.4 lines on stdout): a takeover that waits for the
//     database never delays this node's own heartbeat (issue 26). A heartbeat that finds the lease
//     lost (another node closed this node's attempts while it was silent)
//     logs it and joins again with a new epoch: every write in between was
//     refused by the registry, so nothing was written as if it held the
//     lease; a load that was running then cannot record its outcome (its
//     attempt is closed) and is unloaded by the load path. A registry that
//     cannot be reached is logged once per outage and tried again at the
//     next beat. Others' leases are judged only once this node has renewed
//     its own for a whole lease_s (after an outage of the database every
//     heartbeat is old: each node first gets its chance to renew). Stop() ends
//     the threads and leaves the fleet (lease_state stopped), so nobody
//     waits for the lease to run out.
// Thread-safe: Start/Stop from one thread; the callbacks run on the
// heartbeat thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "compat/state_machine.h"
#include "registry/registry.h"

namespace mw::app {

Result<std::string> LoadOrCreateNodeId(const std::filesystem::path& data_dir);
// This machine's host name (gethostname), as GET /api/nodes shows it.
std::string HostName();

class FleetNode {
 public:
  struct Options {
    std::string node_id;
    std::string host;
    int lease_s = 30;
  };
  // `loaded_models`: the names the heartbeat records (GET /api/nodes).
  FleetNode(Registry& registry, StateMachine& state_machine, Options options, std::ostream& out,
            std::function<std::vector<std::string>()> loaded_models);
  ~FleetNode();
  FleetNode(const FleetNode&) = delete;
  FleetNode& operator=(const FleetNode&) = delete;

  // Takes the lease (Registry::JoinFleet). Call once, before StartupCleanup.
  Status Join();
  // Starts the heartbeat thread (its first beat at once).
  void Start();
  // Stops the thread and leaves the fleet. Idempotent.
  void Stop();

 private:
  void Loop();
  void Beat();
  void TakeoverLoop();
  // Waits `interval` or until Stop; false when stopping.
  bool Sleep(std::chrono::milliseconds interval);

  Registry& registry_;
  StateMachine& state_machine_;
  const Options options_;
  std::ostream& out_;
  std::function<std::vector<std::string>()> loaded_models_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool unreachable_ = false;  // the last beat could not reach the registry (logged once); heartbeat thread
  std::atomic<int64_t> renewing_since_ms_{-1};  // monotonic: renewed at every beat since then; -1 not now
  std::thread thread_;
  std::thread takeover_thread_;
};

}  // namespace mw::app
