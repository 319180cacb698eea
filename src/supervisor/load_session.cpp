#include "supervisor/load_session.h"

#include <signal.h>

#include <algorithm>

#include "common/log.h"
#include "common/time_util.h"
#include "http_client/loopback_http.h"

namespace mw::supervisor_internal {
namespace {

// After the protocol pipe closes, how long to wait for the process to end
// before calling it a protocol failure (a dying worker closes fd 3 first).
constexpr int64_t kProtocolClosedGraceMs = 1000;
constexpr std::chrono::milliseconds kHealthRequestTimeout{1000};

enum class End { kReady, kExited, kWorkerError, kProtocolError, kProtocolClosed, kTimeout, kCancelled };

// Outcome of a process that ended by itself.
LoadOutcome OutcomeOf(const ProcessExit& exit) {
  return exit.signaled() ? LoadOutcome::kCrashed : LoadOutcome::kFailed;
}

// The worker's line with the phases of its load (src/worker/engine.cpp,
// PrintPhases), without its prefix; empty if the log has none.
std::string WorkerPhases(const std::string& log) {
  constexpr std::string_view kPrefix = "modelwarden-worker: phases: ";
  const size_t at = log.rfind(kPrefix);
  if (at == std::string::npos) return "";
  const size_t from = at + kPrefix.size();
  return log.substr(from, log.find('\n', from) - from);
}

}  // namespace

std::vector<std::string> SubstituteArgv(const std::vector<std::string>& argv, const Placeholders& values) {
  const std::pair<std::string_view, std::string> table[] = {{"{model_path}", values.model_path},
                                                            {"{model_name}", values.model_name},
                                                            {"{port}", std::to_string(values.port)},
                                                            {"{api_key}", values.api_key}};
  std::vector<std::string> out;
  out.reserve(argv.size());
  for (const std::string& arg : argv) {
    std::string result;
    for (size_t i = 0; i < arg.size();) {
      bool replaced = false;
      if (arg[i] == '{') {
        for (const auto& [name, value] : table) {
          if (arg.compare(i, name.size(), name) == 0) {
            result += value;  // appended, never scanned again
            i += name.size();
            replaced = true;
            break;
          }
        }
      }
      if (!replaced) result += arg[i++];
    }
    out.push_back(std::move(result));
  }
  return out;
}

void AttachSessionCallbacks(SpawnOptions& spawn, const std::weak_ptr<Session>& weak,
                            std::function<void(const std::shared_ptr<Session>&)> on_loaded_death) {
  spawn.on_output_line = [weak](std::string_view line) {
    auto s = weak.lock();
    if (!s) return;
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->phase != Phase::kLoading) return;
    s->last_activity_ms = MonotonicMillis();
    if (s->ready_re && !s->ready_matched && RE2::PartialMatch(line, *s->ready_re)) {
      s->ready_matched = true;
      s->cv.notify_all();
    }
  };
  spawn.on_protocol_line = [weak](std::string_view line) {
    auto s = weak.lock();
    if (!s) return;
    Result<protocol::Message> message = protocol::DecodeMessage(line);
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->phase != Phase::kLoading) return;
    s->last_activity_ms = MonotonicMillis();
    if (!message.ok()) {
      if (s->protocol_error.empty()) s->protocol_error = message.status().message();
    } else if (auto* p = std::get_if<protocol::ProgressMessage>(&*message)) {
      s->progress = p->progress;
      s->progress_pending = true;
    } else if (auto* l = std::get_if<protocol::LoadedMessage>(&*message)) {
      s->loaded = *l;
    } else if (auto* r = std::get_if<protocol::ReadyMessage>(&*message)) {
      if (s->ready) s->protocol_error = "a second 'ready'";
      s->ready = *r;
    } else if (auto* e = std::get_if<protocol::ErrorMessage>(&*message)) {
      s->error = *e;
    } else if (std::holds_alternative<protocol::StandbyMessage>(*message)) {
      s->standby = true;
    }
    s->cv.notify_all();
  };
  spawn.on_protocol_closed = [weak] {
    auto s = weak.lock();
    if (!s) return;
    std::lock_guard<std::mutex> lock(s->mu);
    s->protocol_closed_at_ms = MonotonicMillis();
    s->cv.notify_all();
  };
  spawn.on_exit = [weak, on_loaded_death = std::move(on_loaded_death)](const ProcessExit& exit) {
    auto s = weak.lock();
    if (!s) return;
    bool died_loaded = false;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      s->exit = exit;
      if (s->phase == Phase::kLoaded) {
        s->phase = Phase::kEnded;
        s->final_exit = exit;
        died_loaded = true;
      }
      s->cv.notify_all();
    }
    if (died_loaded) on_loaded_death(s);
  };
}

LoadReport RunLoad(Session& s, const LoadRequest& req, const SupervisorOptions& opt, const EngineEndpoint& endpoint,
                   const LoadObserver& observer, int64_t start_ms) {
  ChildProcess& child = *s.child;
  const int timeout_s = req.load_timeout_s.value_or(opt.default_load_timeout_s);
  const int64_t timeout_ms = static_cast<int64_t>(timeout_s) * 1000;
  const bool is_command = s.engine == EngineKind::kCommand;
  const bool use_health = is_command && !req.health_path.empty();
  const bool use_settle = is_command && req.ready_pattern.empty() && req.health_path.empty();
  const int64_t settle_at = start_ms + opt.command_settle.count();
  int64_t next_health_ms = start_ms;

  LoadReport report;
  report.pid = child.pid();
  report.endpoint = endpoint;
  if (observer.on_started) observer.on_started(child.pid());

  End end = End::kTimeout;
  std::unique_lock<std::mutex> lock(s.mu);
  for (;;) {
    if (s.progress_pending) {
      s.progress_pending = false;
      double p = s.progress.value_or(0);
      lock.unlock();
      if (observer.on_progress) observer.on_progress(p);
      lock.lock();
      continue;
    }
    // Order matters: an ended process is judged by its end even if it also
    // sent `loaded` or printed the ready line just before dying.
    if (s.cancel) { end = End::kCancelled; break; }
    if (s.exit) { end = End::kExited; break; }
    if (!s.protocol_error.empty()) { end = End::kProtocolError; break; }
    if (s.error) { end = End::kWorkerError; break; }
    if (s.loaded && !s.loaded->socket.empty() && s.loaded->socket != endpoint.socket_path) {
      s.protocol_error = "'loaded' names another socket than the one the worker was given";
      continue;
    }
    if (s.loaded || s.ready_matched) { end = End::kReady; break; }
    if (s.ready && !s.ready_reported) {
      // verify "request" (SPEC §16): the request that asked for the load
      // goes to the engine now; its first token (Supervisor::Verify) or the
      // worker's own decode makes the `loaded` this loop still waits for.
      if (req.verify != "request") {
        s.protocol_error = "'ready' from a worker that was not asked for verify \"request\"";
        continue;
      }
      if (s.ready->socket != endpoint.socket_path) {
        s.protocol_error = "'ready' names another socket than the one the worker was given";
        continue;
      }
      s.ready_reported = true;
      MW_LOG(kInfo, "supervisor") << "ready model=" << s.name << " pid=" << report.pid
                                  << ": the engine listens; the first request verifies it";
      lock.unlock();
      if (observer.on_ready) observer.on_ready(report.pid, endpoint);
      lock.lock();
      continue;
    }
    const int64_t now = MonotonicMillis();
    if (s.protocol_closed_at_ms && now - *s.protocol_closed_at_ms >= kProtocolClosedGraceMs) {
      end = End::kProtocolClosed;
      break;
    }
    if (now - s.last_activity_ms >= timeout_ms) { end = End::kTimeout; break; }
    if (use_settle && now >= settle_at) { end = End::kReady; break; }
    if (use_health && now >= next_health_ms) {
      lock.unlock();
      Result<int> code = HttpGetStatus(endpoint, req.health_path, kHealthRequestTimeout);
      lock.lock();
      next_health_ms = MonotonicMillis() + opt.health_interval.count();
      if (code.ok() && *code == 200 && !s.exit && !s.cancel) { end = End::kReady; break; }
      continue;
    }
    int64_t wake = s.last_activity_ms + timeout_ms;
    if (use_settle) wake = std::min(wake, settle_at);
    if (use_health) wake = std::min(wake, next_health_ms);
    if (s.protocol_closed_at_ms) wake = std::min(wake, *s.protocol_closed_at_ms + kProtocolClosedGraceMs);
    s.cv.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(wake - now, 1)));
  }

  if (end == End::kReady) {
    report.outcome = LoadOutcome::kSuccess;
    report.duration_ms = MonotonicMillis() - start_ms;
    if (s.loaded) {
      report.devices = s.loaded->devices;
      report.n_ctx = s.loaded->n_ctx;
      report.load_ms = s.loaded->load_ms;
      report.model_size = s.loaded->model_size;
      report.n_params = s.loaded->n_params;
      report.n_layers = s.loaded->n_layers;
      report.offloaded_layers = s.loaded->offloaded_layers;
    } else {
      report.load_ms = report.duration_ms;
    }
    s.phase = Phase::kLoaded;
    s.loaded_at_ms = MonotonicMillis();
    s.info = LoadedModel{s.name, s.engine, report.pid, report.endpoint, report.devices, report.n_ctx, report.load_ms,
                         NowIso8601(), report.n_layers, report.offloaded_layers};
    lock.unlock();
    report.log_tail = child.LogTail(opt.log_capacity);
    // The cold-start breakdown (SPEC §16, docs/performance.md) reads this line.
    if (const std::string phases = WorkerPhases(report.log_tail); !phases.empty()) {
      MW_LOG(kInfo, "supervisor") << "loaded model=" << s.name << " pid=" << report.pid << " worker phases: " << phases;
    }
    return report;
  }

  // Not loaded: make sure the process is gone, then describe why.
  std::optional<protocol::ErrorMessage> worker_error = s.error;
  std::string protocol_error = s.protocol_error;
  lock.unlock();
  ProcessExit exit;
  StopOptions stalled{"", std::chrono::milliseconds(0), std::chrono::milliseconds(2000), opt.worker_stop.kill_grace};
  switch (end) {
    case End::kExited:
      exit = child.Wait();
      report.outcome = OutcomeOf(exit);
      if (worker_error) {
        report.error_code = worker_error->code;
        report.error_message = worker_error->message;
      } else {
        report.error_code = kLoadErrExited;
        report.error_message = std::string(is_command ? "process" : "worker") + " ended before it was ready: " +
                               exit.Describe();
      }
      break;
    case End::kWorkerError:
      exit = child.Stop(s.stop);  // it exits by itself after an error; this only makes sure
      report.outcome = exit.signaled() && exit.signal != SIGTERM && exit.signal != SIGKILL ? LoadOutcome::kCrashed
                                                                                         : LoadOutcome::kFailed;
      report.error_code = worker_error->code;
      report.error_message = worker_error->message;
      break;
    case End::kProtocolError:
      exit = child.Kill();
      report.outcome = LoadOutcome::kFailed;
      report.error_code = kLoadErrProtocol;
      report.error_message = "worker sent an invalid protocol line (" + protocol_error + "); it was killed";
      break;
    case End::kProtocolClosed:
      exit = child.Kill();
      report.outcome = LoadOutcome::kFailed;
      report.error_code = kLoadErrProtocolClosed;
      report.error_message = "worker closed its protocol pipe without reporting a result; it was killed";
      break;
    case End::kTimeout:
      exit = child.Stop(stalled);
      report.outcome = LoadOutcome::kTimeout;
      report.error_code = kLoadErrTimeout;
      report.error_message = "no progress or output for " + std::to_string(timeout_s) +
                             " s (load timeout); the process was killed";
      break;
    case End::kCancelled:
      exit = child.Stop(s.stop);
      report.outcome = LoadOutcome::kCancelled;
      report.error_code = kLoadErrCancelled;
      report.error_message = "load cancelled (unloaded or server shutting down)";
      break;
    case End::kReady:
      break;
  }
  report.exit = exit;
  report.duration_ms = MonotonicMillis() - start_ms;
  report.log_tail = child.LogTail(opt.log_capacity);
  MW_LOG(kInfo, "supervisor") << "load ended model=" << s.name << " pid=" << report.pid
                              << " outcome=" << LoadOutcomeName(report.outcome) << " (" << exit.Describe() << ")";
  return report;
}

}  // namespace mw::supervisor_internal
