// PgBackend::WatchChanges (issue 26): LISTEN on a connection of its own; a
// thread waits for notifications and hands other nodes' changes to the
// callback. A broken connection is reopened (after a pause) and reported as
// "anything may have changed", since notifications sent meanwhile are lost.
// It also keeps the backend's copy of model details exact (pg_detail_cache.h):
// live only while the LISTEN connection is open.
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "common/text_lines.h"
#include "registry/postgres/pg_backend.h"

namespace mw::registry_internal {
namespace {

class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& conn, const std::string& channel, std::function<void(const std::string&)> fn)
      : pqxx::notification_receiver(conn, channel), fn_(std::move(fn)) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override { fn_(payload); }

 private:
  std::function<void(const std::string&)> fn_;
};

class PgChangeWatch final : public Registry::ChangeWatch {
 public:
  PgChangeWatch(PgBackend& backend, std::function<void(const std::vector<std::string>&)> on_change)
      : backend_(backend), on_change_(std::move(on_change)), thread_([this] { Loop(); }) {}

  ~PgChangeWatch() override {
    stop_ = true;
    {
      std::lock_guard lock(mu_);
      if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);  // wakes await_notification
    }
    thread_.join();
  }

  // Waits until the first connection listens or fails (bounded by the
  // connection's connect_timeout; 10 s at most), so a node that starts
  // answering has already heard everything committed after this point: a
  // change another node makes right after this node is up is not lost.
  void AwaitFirstTry() {
    std::unique_lock lock(mu_);
    first_try_cv_.wait_for(lock, std::chrono::seconds(10), [this] { return first_try_done_; });
  }

 private:
  void FirstTryDone() {
    {
      std::lock_guard lock(mu_);
      if (first_try_done_) return;
      first_try_done_ = true;
    }
    first_try_cv_.notify_all();
  }

  void Deliver(const std::string& payload) {
    // The first line is the writer's node id ("" for a server that has not
    // joined the fleet, such as a CLI command).
    const size_t end = payload.find('\n');
    if (payload.substr(0, end) == backend_.ScopeSnapshot().node_id) return;  // this node's own write
    std::vector<std::string> lines =
        end == std::string::npos ? std::vector<std::string>() : SplitLines(payload.substr(end + 1));
    if (std::find(lines.begin(), lines.end(), "*") != lines.end()) lines.clear();
    backend_.details().Forget(lines);  // before anyone hears of it and reads again
    if (lines.empty()) {
      on_change_({});
    } else {
      on_change_(lines);
    }
  }

  void Loop() {
    bool reconnected = false;
    bool logged = false;
    while (!stop_) {
      std::unique_ptr<pqxx::connection> conn;  // outlives the receiver; closed after fd_ is cleared
      try {
        std::string channel;
        conn = backend_.OpenWatchConnection(&channel);
        Receiver receiver(*conn, channel, [this](const std::string& payload) { Deliver(payload); });
        {
          std::lock_guard lock(mu_);
          if (stop_) return;
          fd_ = conn->sock();
        }
        backend_.details().SetLive(true);  // listening: from now on every change is heard
        FirstTryDone();
        if (reconnected) on_change_({});  // what was sent while away is lost
        if (logged) MW_LOG(kInfo, "registry") << "listening for other nodes' changes again";
        logged = false;
        while (!stop_) conn->await_notification(1, 0);
      } catch (const std::exception& e) {
        if (!stop_ && !logged) {
          MW_LOG(kWarn, "registry") << "not hearing other nodes' changes (tried again every second): " << e.what();
          logged = true;
        }
      }
      FirstTryDone();  // failed (or stopped): the node starts deaf, as before, and keeps trying
      backend_.details().SetLive(false);  // deaf: nothing kept is known to be current
      {
        std::lock_guard lock(mu_);
        fd_ = -1;
      }
      conn.reset();
      reconnected = true;
      for (int i = 0; i < 10 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  PgBackend& backend_;
  std::function<void(const std::vector<std::string>&)> on_change_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  int fd_ = -1;  // the connection's socket while it is open (under mu_)
  bool first_try_done_ = false;  // under mu_
  std::condition_variable first_try_cv_;
  std::thread thread_;  // last: starts once the rest is set
};

}  // namespace

std::unique_ptr<Registry::ChangeWatch> PgBackend::WatchChanges(
    std::function<void(const std::vector<std::string>&)> on_change) {
  auto watch = std::make_unique<PgChangeWatch>(*this, std::move(on_change));
  watch->AwaitFirstTry();
  return watch;
}

}  // namespace mw::registry_internal
