#include "supervisor/supervisor.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "common/time_util.h"
#include "http_client/loopback_http.h"
#include "common/random_hex.h"
#include "supervisor/load_session.h"
#include "supervisor/runtime_dir.h"
#include "supervisor/session.h"

namespace mw {

using supervisor_internal::Phase;
using supervisor_internal::Session;

std::string_view EngineKindName(EngineKind engine) {
  return engine == EngineKind::kCommand ? "command" : "llama.cpp";
}

Result<EngineKind> ParseEngineKind(std::string_view name) {
  if (name == "llama.cpp") return EngineKind::kLlamaCpp;
  if (name == "command") return EngineKind::kCommand;
  return InvalidArgumentError("unknown engine '" + std::string(name) + "' (known: llama.cpp, command)");
}

std::string_view LoadOutcomeName(LoadOutcome outcome) {
  switch (outcome) {
    case LoadOutcome::kSuccess: return "success";
    case LoadOutcome::kFailed: return "failed";
    case LoadOutcome::kCrashed: return "crashed";
    case LoadOutcome::kTimeout: return "timeout";
    case LoadOutcome::kCancelled: return "cancelled";
  }
  return "failed";
}

std::optional<int> LoadReport::exit_code() const {
  if (!exit || exit->signaled() || exit->status_unknown) return std::nullopt;
  return exit->exit_code;
}

std::optional<std::string> LoadReport::signal_name() const {
  if (!exit || !exit->signaled() || exit->status_unknown) return std::nullopt;
  return SignalName(exit->signal);
}

namespace {

// The worker program to run: the configured one or the default beside this
// binary. kFailedPrecondition if it is missing or not executable.
Result<std::string> WorkerPath(const SupervisorOptions& opt) {
  std::string worker = opt.worker_path.empty() ? DefaultHelperPath("modelwarden-worker") : opt.worker_path;
  if (::access(worker.c_str(), X_OK) != 0) {
    return FailedPreconditionError("modelwarden-worker not found or not executable at '" + worker + "'");
  }
  return worker;
}

// Which file a path names now (a replaced binary is another file).
struct FileIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileIdentity&) const = default;
};

std::optional<FileIdentity> IdentityOf(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileIdentity{st.st_dev, st.st_ino, st.st_size,
                      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

// How long a load waits for a pre-started worker still loading its backends
// to say `standby` (a fresh worker would be doing the same meanwhile).
constexpr std::chrono::milliseconds kStandbyWait{5000};

}  // namespace

struct Supervisor::Impl : std::enable_shared_from_this<Supervisor::Impl> {
  explicit Impl(SupervisorOptions o) : options(std::move(o)) {}
  ~Impl() {
    if (runtime) RemoveRuntimeDir(*runtime);
  }

  SupervisorOptions options;
  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<Session>, std::less<>> sessions;  // guarded by mu
  bool shutting_down = false;                                             // guarded by mu
  // on_unexpected_exit calls in progress: Shutdown() waits for them, so the
  // owner may destroy what the callback uses once Shutdown() returned.
  int callbacks_running = 0;        // guarded by mu
  bool callbacks_closed = false;    // guarded by mu: set when Shutdown() returns
  std::condition_variable callbacks_done;
  std::optional<RuntimeDir> runtime;  // guarded by mu: prepared at the first llama.cpp load
  uint32_t next_socket = 0;           // guarded by mu
  // The pre-started worker (SupervisorOptions::prestart_worker): a session
  // that is in no map until a load takes it.
  std::shared_ptr<Session> standby;          // guarded by mu
  std::optional<FileIdentity> standby_binary;  // guarded by mu: the worker file it runs
  bool standby_starting = false;             // guarded by mu
  bool standby_off = false;                  // guarded by mu: a worker that never said `standby`

  Status PrepareRuntimeLocked() {
    if (runtime) return Status::Ok();
    Result<RuntimeDir> dir = PrepareRuntimeDir(options.runtime_dir);
    if (!dir.ok()) return FailedPreconditionError(dir.status().message());
    runtime = *dir;
    MW_LOG(kInfo, "supervisor") << "engine sockets in " << runtime->path;
    return Status::Ok();
  }

  // A fresh socket path in the runtime directory (prepared on first use).
  Result<std::string> NewSocketPath() {
    std::lock_guard<std::mutex> lock(mu);
    RETURN_IF_ERROR(PrepareRuntimeLocked());
    std::string path = runtime->path + "/" + std::to_string(++next_socket) + ".sock";
    ::unlink(path.c_str());  // nothing of ours can be there: a leftover
    return path;
  }

  // Starts the pre-started worker unless there is one (or it is off, or
  // the server is stopping). Failures are logged: a load then spawns as usual.
  void StartStandby() {
    if (!options.prestart_worker) return;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (shutting_down || standby || standby_starting || standby_off) return;
      standby_starting = true;
    }
    std::shared_ptr<Session> s;
    std::optional<FileIdentity> binary;
    Result<ChildProcess> child = UnavailableError("not started");
    Result<std::string> worker = WorkerPath(options);
    Result<std::string> socket = worker.ok() ? NewSocketPath() : worker.status();
    if (socket.ok()) {
      s = std::make_shared<Session>();
      s->name = "(pre-started worker)";
      s->stop = options.worker_stop;
      s->socket_path = *socket;
      s->last_activity_ms = MonotonicMillis();
      SpawnOptions spawn;
      spawn.argv = {*worker, "load", "--standby", "--socket", *socket};
      spawn.protocol_pipe = true;
      spawn.keeper_path = options.keeper_path;
      spawn.log_capacity = options.log_capacity;
      std::weak_ptr<Impl> weak = weak_from_this();
      supervisor_internal::AttachSessionCallbacks(spawn, s, [weak](const std::shared_ptr<Session>& dead) {
        if (auto impl = weak.lock()) impl->OnLoadedDeath(dead);
      });
      binary = IdentityOf(*worker);
      child = ChildProcess::Spawn(std::move(spawn));
    }
    std::unique_lock<std::mutex> lock(mu);
    standby_starting = false;
    if (!child.ok()) {
      lock.unlock();
      MW_LOG(kWarn, "supervisor") << "no pre-started worker: " << (socket.ok() ? child.status() : socket.status()).ToString();
      return;
    }
    {
      std::lock_guard<std::mutex> session_lock(s->mu);
      s->child.emplace(std::move(child).value());
    }
    if (shutting_down) {
      lock.unlock();
      s->child->Kill();
      return;
    }
    standby = s;
    standby_binary = binary;
    MW_LOG(kInfo, "supervisor") << "pre-started a worker pid=" << s->child->pid();
  }

  // The pre-started worker, for a load to hand its model to: once it has
  // said `standby` (waited for up to kStandbyWait), while alive and running
  // the worker binary that is on disk now. nullptr if none is usable (one
  // that is not is killed).
  std::shared_ptr<Session> TakeStandby() {
    std::shared_ptr<Session> s;
    std::optional<FileIdentity> binary;
    {
      std::lock_guard<std::mutex> lock(mu);
      s = std::move(standby);
      standby.reset();
      binary = standby_binary;
    }
    if (!s) return nullptr;
    bool usable = false;
    bool never_standby = false;
    {
      std::unique_lock<std::mutex> lock(s->mu);
      auto spoke = [&] {
        return s->standby || s->exit || s->error || !s->protocol_error.empty() || s->ready || s->loaded ||
               s->protocol_closed_at_ms;
      };
      s->cv.wait_for(lock, kStandbyWait, spoke);
      const bool clean = !s->exit && !s->error && s->protocol_error.empty() && !s->ready && !s->loaded &&
                         !s->protocol_closed_at_ms;
      usable = s->standby && clean;
      never_standby = !s->standby && spoke();
    }
    Result<std::string> worker = WorkerPath(options);
    const bool same_binary = worker.ok() && binary && IdentityOf(*worker) == binary;
    if (usable && same_binary) return s;
    if (never_standby) {
      std::lock_guard<std::mutex> lock(mu);
      standby_off = true;
    }
    MW_LOG(kInfo, "supervisor") << "pre-started worker pid=" << s->child->pid() << " not used ("
                                << (never_standby ? "it ended or answered without `standby`: pre-start is off"
                                    : !usable      ? "not waiting for a model"
                                                   : "the worker binary changed")
                                << "); a worker is spawned for the load";
    s->child->Kill();
    return nullptr;
  }

  // Stops the pre-started worker, if any (shutdown).
  void DropStandby() {
    std::shared_ptr<Session> s;
    {
      std::lock_guard<std::mutex> lock(mu);
      s = std::move(standby);
      standby.reset();
    }
    if (s) s->child->Kill();
  }

  std::shared_ptr<Session> Find(std::string_view name) const {
    std::lock_guard<std::mutex> lock(mu);
    auto it = sessions.find(name);
    return it == sessions.end() ? nullptr : it->second;
  }

  void Remove(const std::shared_ptr<Session>& s) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = sessions.find(s->name);
    if (it != sessions.end() && it->second == s) sessions.erase(it);
  }

  void OnLoadedDeath(const std::shared_ptr<Session>& s) {
    UnexpectedExit event;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      event = UnexpectedExit{s->name, s->engine, s->info.pid, s->final_exit.value_or(ProcessExit{}), "",
                             MonotonicMillis() - s->loaded_at_ms};
    }
    event.log_tail = s->child->LogTail(options.log_capacity);
    bool notify = false;
    {
      // Counted in the same step as the removal: a Shutdown() that no
      // longer sees the session still waits for this callback.
      std::lock_guard<std::mutex> lock(mu);
      auto it = sessions.find(s->name);
      if (it != sessions.end() && it->second == s) sessions.erase(it);
      notify = options.on_unexpected_exit && !callbacks_closed;
      if (notify) ++callbacks_running;
    }
    MW_LOG(kWarn, "supervisor") << "loaded model died model=" << event.model_name << " pid=" << event.pid << " "
                                << event.exit.Describe();
    if (!notify) return;
    in_unexpected_exit_callback = true;
    options.on_unexpected_exit(event);
    in_unexpected_exit_callback = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      --callbacks_running;
    }
    callbacks_done.notify_all();
  }

  // Waits for the on_unexpected_exit calls in progress (not for the one
  // this thread is inside of), then lets no new one start.
  void CloseCallbacks() {
    std::unique_lock<std::mutex> lock(mu);
    const int own = in_unexpected_exit_callback ? 1 : 0;
    callbacks_done.wait(lock, [&] { return callbacks_running <= own; });
    callbacks_closed = true;
  }

  static thread_local bool in_unexpected_exit_callback;

  // Stops one session (any phase) and waits until it has ended.
  ProcessExit StopSession(const std::shared_ptr<Session>& s, const StopOptions* how = nullptr) {
    std::unique_lock<std::mutex> lock(s->mu);
    if (s->phase == Phase::kLoading) {
      s->cancel = true;  // RunLoad stops the process and ends the session
      s->cv.notify_all();
    } else if (s->phase == Phase::kLoaded) {
      s->phase = Phase::kStopping;
      lock.unlock();
      MW_LOG(kInfo, "supervisor") << "unloading model=" << s->name << " pid=" << s->child->pid();
      ProcessExit exit = s->child->Stop(how != nullptr ? *how : s->stop);
      Remove(s);
      lock.lock();
      s->final_exit = exit;
      s->phase = Phase::kEnded;
      s->cv.notify_all();
      return exit;
    }
    s->cv.wait(lock, [&] { return s->phase == Phase::kEnded; });
    return s->final_exit.value_or(ProcessExit{});
  }
};

thread_local bool Supervisor::Impl::in_unexpected_exit_callback = false;

Supervisor::Supervisor(SupervisorOptions options) : impl_(std::make_shared<Impl>(std::move(options))) {}

Supervisor::~Supervisor() { Shutdown(); }

Result<LoadReport> Supervisor::Load(const LoadRequest& req, const LoadObserver& observer) {
  const SupervisorOptions& opt = impl_->options;
  if (req.model_name.empty()) return InvalidArgumentError("model name is empty");
  if (req.load_timeout_s && *req.load_timeout_s <= 0) return InvalidArgumentError("load_timeout_s must be positive");
  auto session = std::make_shared<Session>();
  session->name = req.model_name;
  session->engine = req.engine;
  session->stop = req.engine == EngineKind::kCommand ? opt.command_stop : opt.worker_stop;

  SpawnOptions spawn;
  EngineEndpoint endpoint;
  if (req.engine == EngineKind::kCommand) {
    if (req.argv.empty() || req.argv[0].empty()) return InvalidArgumentError("command engine needs a non-empty argv");
    if (!req.ready_pattern.empty()) {
      RE2::Options re_options;
      re_options.set_log_errors(false);
      session->ready_re = std::make_unique<RE2>(req.ready_pattern, re_options);
      if (!session->ready_re->ok()) {
        return InvalidArgumentError("invalid ready_pattern: " + session->ready_re->error());
      }
    }
    ASSIGN_OR_RETURN(endpoint.port, PickFreeLoopbackPort());
    ASSIGN_OR_RETURN(endpoint.api_key, RandomHex(32));  // a command engine's per-load secret
    spawn.argv = supervisor_internal::SubstituteArgv(
        req.argv, {req.model_path, req.model_name, endpoint.port, endpoint.api_key});
    spawn.env = req.env;
    spawn.env.emplace_back("MODELWARDEN_LOAD_CONFIG", req.load_config_json);
    spawn.env.emplace_back("MODELWARDEN_ENGINE_API_KEY", endpoint.api_key);
    spawn.env.emplace_back("LLAMA_API_KEY", endpoint.api_key);
  } else {
    ASSIGN_OR_RETURN(std::string worker, WorkerPath(opt));
    if (req.verify != "decode" && req.verify != "load" && req.verify != "request") {
      return InvalidArgumentError("verify must be \"decode\", \"load\" or \"request\", got \"" + req.verify + "\"");
    }
    if (impl_->Find(req.model_name)) {
      return AlreadyExistsError("model '" + req.model_name + "' is already loading or loaded");
    }
    if (std::shared_ptr<Session> pre = impl_->TakeStandby()) {
      // The pre-started worker takes this load: same keeper, same pipes,
      // its socket; the session is named now.
      std::lock_guard<std::mutex> lock(pre->mu);
      pre->name = req.model_name;
      endpoint.socket_path = pre->socket_path;
      session = pre;
    } else {
      ASSIGN_OR_RETURN(endpoint.socket_path, impl_->NewSocketPath());
      session->socket_path = endpoint.socket_path;
      spawn.argv = {worker,           "load",     "--model",  req.model_path,         "--config",
                    req.load_config_json, "--verify", req.verify, "--socket", endpoint.socket_path};
      spawn.protocol_pipe = true;
    }
  }
  const bool prestarted = static_cast<bool>(session->child);
  spawn.keeper_path = opt.keeper_path;
  spawn.log_capacity = opt.log_capacity;
  std::weak_ptr<Impl> weak_impl = impl_;
  supervisor_internal::AttachSessionCallbacks(spawn, session, [weak_impl](const std::shared_ptr<Session>& s) {
    if (auto impl = weak_impl.lock()) impl->OnLoadedDeath(s);
  });

  {
    std::unique_lock<std::mutex> lock(impl_->mu);
    const bool stopping = impl_->shutting_down;
    if (stopping || impl_->sessions.count(req.model_name) != 0) {
      lock.unlock();
      if (prestarted) session->child->Kill();  // unused: a new one is started after the next load
      if (stopping) return UnavailableError("the server is shutting down");
      return AlreadyExistsError("model '" + req.model_name + "' is already loading or loaded");
    }
    impl_->sessions.emplace(req.model_name, session);
  }
  const int64_t start_ms = MonotonicMillis();
  if (prestarted) {
    {
      std::lock_guard<std::mutex> lock(session->mu);
      session->last_activity_ms = start_ms;
    }
    const Status handed = session->child->WriteStdin(
        protocol::EncodeLoadCommand({req.model_path, req.load_config_json, req.verify}));
    if (!handed.ok()) {
      // It ended just now, before it had the model: not this load's
      // process. The load spawns a worker of its own.
      MW_LOG(kWarn, "supervisor") << "pre-started worker pid=" << session->child->pid()
                                  << " could not take model=" << req.model_name << ": " << handed.ToString();
      impl_->Remove(session);
      session->child->Kill();
      return Load(req, observer);
    }
    MW_LOG(kInfo, "supervisor") << "loading model=" << req.model_name << " engine=" << EngineKindName(req.engine)
                                << " pid=" << session->child->pid() << " (pre-started worker)";
    LoadReport report = supervisor_internal::RunLoad(*session, req, opt, endpoint, observer, start_ms);
    EndLoad(session, report);
    return report;
  }
  session->last_activity_ms = start_ms;
  Result<ChildProcess> child = ChildProcess::Spawn(std::move(spawn));
  if (!child.ok()) {
    impl_->Remove(session);
    {
      std::lock_guard<std::mutex> lock(session->mu);
      session->phase = Phase::kEnded;
      session->cv.notify_all();
    }
    StatusCode code = child.status().code();
    if (code == StatusCode::kFailedPrecondition || code == StatusCode::kInternal) return child.status();
    LoadReport report;  // argv[0] of a command could not be executed: the attempt failed
    report.outcome = LoadOutcome::kFailed;
    report.error_code = kLoadErrExecFailed;
    report.error_message = child.status().message();
    report.duration_ms = MonotonicMillis() - start_ms;
    report.endpoint = endpoint;
    return report;
  }
  {
    std::lock_guard<std::mutex> lock(session->mu);
    session->child.emplace(std::move(child).value());
  }
  MW_LOG(kInfo, "supervisor") << "loading model=" << req.model_name << " engine=" << EngineKindName(req.engine)
                              << " pid=" << session->child->pid();
  LoadReport report = supervisor_internal::RunLoad(*session, req, opt, endpoint, observer, start_ms);
  EndLoad(session, report);
  return report;
}

void Supervisor::EndLoad(const std::shared_ptr<supervisor_internal::Session>& session, const LoadReport& report) {
  if (!report.ok()) {
    impl_->Remove(session);
    std::lock_guard<std::mutex> lock(session->mu);
    session->final_exit = report.exit;
    session->phase = Phase::kEnded;
    session->cv.notify_all();
  }
  // The next llama.cpp load finds a worker started ahead (one use each).
  if (session->engine == EngineKind::kLlamaCpp) impl_->StartStandby();
}

Result<ProcessExit> Supervisor::Unload(std::string_view model_name) {
  std::shared_ptr<Session> s = impl_->Find(model_name);
  if (!s) return NotFoundError("model '" + std::string(model_name) + "' is not loaded");
  return impl_->StopSession(s);
}

Result<ProcessExit> Supervisor::StopHung(std::string_view model_name, int pid, const StopOptions& how) {
  std::shared_ptr<Session> s = impl_->Find(model_name);
  if (!s || !IsLoaded(model_name) || !s->child || s->child->pid() != pid) {
    return NotFoundError("model '" + std::string(model_name) + "' is not loaded with pid " + std::to_string(pid));
  }
  return impl_->StopSession(s, &how);
}

Status Supervisor::Verify(std::string_view model_name, int pid, bool first_token) {
  std::shared_ptr<Session> s = impl_->Find(model_name);
  auto waiting = [&] {
    if (!s) return false;
    std::lock_guard<std::mutex> lock(s->mu);
    return s->phase == Phase::kLoading && s->ready_reported && s->child && s->child->pid() == pid;
  };
  if (!waiting()) {
    return NotFoundError("model '" + std::string(model_name) + "' has no engine with pid " + std::to_string(pid) +
                         " waiting for its first request's token");
  }
  MW_LOG(kInfo, "supervisor") << "model=" << model_name << " pid=" << pid
                              << (first_token ? " the first request's first token exists: verified"
                                              : " the first request ended without a token: the worker decodes");
  const std::string_view command = first_token ? protocol::kVerifiedCommand : protocol::kVerifyCommand;
  return s->child->WriteStdin(std::string(command) + "\n");
}

Status Supervisor::PrepareRuntime() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    RETURN_IF_ERROR(impl_->PrepareRuntimeLocked());
  }
  impl_->StartStandby();
  return Status::Ok();
}

bool Supervisor::IsLoaded(std::string_view model_name) const { return FindLoaded(model_name).has_value(); }

std::optional<LoadedModel> Supervisor::FindLoaded(std::string_view model_name) const {
  std::shared_ptr<Session> s = impl_->Find(model_name);
  if (!s) return std::nullopt;
  std::lock_guard<std::mutex> lock(s->mu);
  if (s->phase != Phase::kLoaded) return std::nullopt;
  return s->info;
}

std::vector<LoadedModel> Supervisor::Loaded() const {
  std::vector<std::shared_ptr<Session>> all;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (const auto& [name, s] : impl_->sessions) all.push_back(s);
  }
  std::vector<LoadedModel> out;
  for (const auto& s : all) {
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->phase == Phase::kLoaded) out.push_back(s->info);
  }
  return out;
}

std::optional<std::string> Supervisor::LogTail(std::string_view model_name) const {
  std::shared_ptr<Session> s = impl_->Find(model_name);
  if (!s) return std::nullopt;
  std::lock_guard<std::mutex> lock(s->mu);
  if (!s->child) return std::nullopt;
  return s->child->LogTail(impl_->options.log_capacity);
}

void Supervisor::Shutdown() {
  std::vector<std::shared_ptr<Session>> all;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->shutting_down = true;
    for (const auto& [name, s] : impl_->sessions) all.push_back(s);
  }
  impl_->DropStandby();
  if (all.empty()) {
    impl_->CloseCallbacks();
    return;
  }
  MW_LOG(kInfo, "supervisor") << "stopping " << all.size() << " model process(es)";
  std::vector<std::thread> stoppers;
  for (const auto& s : all) {
    try {
      stoppers.emplace_back([impl = impl_, s] { impl->StopSession(s); });
    } catch (const std::system_error&) {
      impl_->StopSession(s);  // no thread available: stop it here, one after another
    }
  }
  for (std::thread& t : stoppers) t.join();
  impl_->CloseCallbacks();
}

Result<protocol::Message> Supervisor::RunWorkerCommand(const std::vector<std::string>& args,
                                                       std::chrono::milliseconds timeout) {
  ASSIGN_OR_RETURN(std::string worker, WorkerPath(impl_->options));
  std::vector<std::string> argv{worker};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunOneShot(argv, timeout, "modelwarden-worker " + (args.empty() ? std::string() : args[0]));
}

Result<protocol::Message> Supervisor::RunOneShot(const std::vector<std::string>& argv,
                                                 std::chrono::milliseconds timeout, const std::string& what) {
  if (argv.empty() || argv[0].empty()) return InvalidArgumentError("no program to run");
  struct Answer {
    std::mutex mu;
    std::optional<protocol::Message> message;
    std::string error;
  };
  auto answer = std::make_shared<Answer>();
  SpawnOptions spawn;
  spawn.argv = argv;
  spawn.protocol_pipe = true;
  spawn.keeper_path = impl_->options.keeper_path;
  spawn.on_protocol_line = [answer](std::string_view line) {
    Result<protocol::Message> m = protocol::DecodeMessage(line);
    std::lock_guard<std::mutex> lock(answer->mu);
    if (!m.ok()) {
      answer->error = m.status().message();
    } else if (!answer->message && !std::holds_alternative<protocol::ProgressMessage>(*m)) {
      answer->message = *m;
    }
  };
  ASSIGN_OR_RETURN(ChildProcess child, ChildProcess::Spawn(std::move(spawn)));
  // Waited for in short steps, so that Shutdown() does not wait for a
  // program that hangs.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::optional<ProcessExit> exit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    exit = child.WaitFor(std::clamp(left, std::chrono::milliseconds(0), std::chrono::milliseconds(100)));
    if (exit || left.count() <= 0) break;
    bool stopping;
    {
      std::lock_guard<std::mutex> lock(impl_->mu);
      stopping = impl_->shutting_down;
    }
    if (stopping) {
      child.Kill();
      return UnavailableError(what + " stopped: the server is shutting down");
    }
  }
  if (!exit) {
    child.Kill();
    return DeadlineExceededError(what + " did not answer within " + std::to_string(timeout.count()) + " ms");
  }
  std::string tail = child.LogTail(16384);
  {
    std::lock_guard<std::mutex> lock(answer->mu);
    if (answer->message) return *answer->message;
  }
  // No answer on the protocol pipe: a program may print its one line on
  // standard output instead (the last such line counts).
  size_t end = tail.size();
  while (end > 0) {
    size_t begin = tail.rfind('\n', end - 1);
    begin = begin == std::string::npos ? 0 : begin + 1;
    std::string_view line(tail.data() + begin, end - begin);
    if (!line.empty() && line.front() == '{') {
      Result<protocol::Message> m = protocol::DecodeMessage(line);
      if (m.ok() && !std::holds_alternative<protocol::ProgressMessage>(*m)) return *m;
    }
    if (begin == 0) break;
    end = begin - 1;
  }
  while (!tail.empty() && tail.back() == '\n') tail.pop_back();
  std::string last_line = tail.substr(tail.rfind('\n') == std::string::npos ? 0 : tail.rfind('\n') + 1);
  std::lock_guard<std::mutex> lock(answer->mu);
  return UnavailableError(what + " gave no answer (" + exit->Describe() +
                          (answer->error.empty() ? "" : "; protocol error: " + answer->error) +
                          (last_line.empty() ? "" : "; last output: " + last_line) + ")");
}

}  // namespace mw
