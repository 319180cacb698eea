#include "supervisor/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

#include "common/log.h"
#include "common/time_util.h"
#include "supervisor/fd.h"
#include "supervisor/keeper_protocol.h"

extern char** environ;

namespace mw {

bool IsServerSecret(std::string_view name) {
  return name == "MODELWARDEN_API_KEY" || name == "HF_TOKEN" || name == "HUGGING_FACE_HUB_TOKEN" ||
         name.rfind("PG", 0) == 0;
}

using supervisor_internal::Fd;
namespace si = supervisor_internal;

std::string SignalName(int signal) {
  const char* abbrev = ::sigabbrev_np(signal);
  if (abbrev == nullptr) return "SIG" + std::to_string(signal);
  return std::string("SIG") + abbrev;
}

std::string ProcessExit::Describe() const {
  std::string text;
  if (signaled()) {
    text = "killed by " + SignalName(signal);
    if (core_dumped) text += " (core dumped)";
  } else {
    text = "exit code " + std::to_string(exit_code);
  }
  if (status_unknown) text = "status unknown (supervising process " + text + ")";
  return text;
}

std::string DefaultHelperPath(std::string_view name) {
  std::string exe_dir = ".";
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n > 0) {
    std::string exe(buf, static_cast<size_t>(n));
    exe_dir = exe.substr(0, exe.rfind('/'));
  }
  std::vector<std::string> candidates = {exe_dir + "/" + std::string(name),
                                         exe_dir + "/../bin/" + std::string(name)};
  if (const char* bin_dir = std::getenv("MW_BIN_DIR"); bin_dir != nullptr && *bin_dir != '\0') {
    candidates.push_back(std::string(bin_dir) + "/" + std::string(name));
  }
  for (const std::string& c : candidates) {
    if (::access(c.c_str(), X_OK) == 0) return c;
  }
  return candidates.front();
}

struct ChildProcess::State {
  SpawnOptions options;
  pid_t keeper_pid = 0;
  pid_t pid = 0;
  LogBuffer log;
  std::thread monitor;
  std::thread::id monitor_id;

  mutable std::mutex mu;
  mutable std::condition_variable cv;
  Fd stdin_fd;      // guarded by mu
  Fd lifeline_fd;   // guarded by mu
  bool keeper_reaped = false;  // guarded by mu: never signal keeper_pid after this
  std::optional<ProcessExit> exit;  // guarded by mu; set once, when finished

  explicit State(SpawnOptions o) : options(std::move(o)), log(options.log_capacity) {}

  bool OnMonitorThread() const { return std::this_thread::get_id() == monitor_id; }

  void SignalKeeper(int sig) {
    std::lock_guard<std::mutex> lock(mu);
    if (!keeper_reaped) ::kill(keeper_pid, sig);
  }
};

namespace {

// Writes all of `data` to a non-blocking pipe without ever raising SIGPIPE
// in this process (the signal is blocked in this thread and a pending one we
// caused is consumed).
Status WriteNoSigpipe(int fd, std::string_view data) {
  sigset_t pipe_set, old_set, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  Status status;
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n >= 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    int err = errno;
    if (err == EPIPE && !was_pending) {
      timespec zero{};
      ::sigtimedwait(&pipe_set, nullptr, &zero);
    }
    status = UnavailableError(err == EAGAIN ? "program's stdin is full (it does not read it)"
                                            : std::string("program's stdin is closed: ") + std::strerror(err));
    break;
  }
  pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  return status;
}

// Parses "exited N" / "signaled S C" from the keeper.
std::optional<ProcessExit> ParseEndLine(std::string_view line) {
  ProcessExit e;
  std::string s(line);
  int a = 0, b = 0;
  if (s.rfind(si::kStatusExited, 0) == 0 && std::sscanf(s.c_str() + std::strlen(si::kStatusExited), "%d", &a) == 1) {
    e.exit_code = a;
    return e;
  }
  if (s.rfind(si::kStatusSignaled, 0) == 0 &&
      std::sscanf(s.c_str() + std::strlen(si::kStatusSignaled), "%d %d", &a, &b) == 2) {
    e.signal = a;
    e.core_dumped = b != 0;
    return e;
  }
  return std::nullopt;
}

// The monitor thread: reads output, protocol and status pipes until the
// keeper has exited and the pipes are drained, then delivers the exit.
void Monitor(std::shared_ptr<ChildProcess::State> s, Fd output, Fd protocol, Fd status) {
  constexpr int64_t kDrainMillis = 500;  // after the keeper exits, wait this long at most for EOF
  LineSplitter output_lines;
  LineSplitter protocol_lines(64 * 1024);
  LineSplitter status_lines(256);
  std::optional<ProcessExit> reported;
  ProcessExit keeper_exit;
  int64_t drain_deadline = -1;
  const SpawnOptions& opt = s->options;
  auto on_output = [&](std::string_view line) {
    if (opt.on_output_line) opt.on_output_line(line);
  };
  auto on_protocol = [&](std::string_view line) {
    if (opt.on_protocol_line) opt.on_protocol_line(line);
  };
  auto on_status = [&](std::string_view line) {
    if (auto e = ParseEndLine(line)) reported = e;
  };
  char buf[65536];
  for (;;) {
    pollfd fds[3];
    Fd* owners[3];
    nfds_t n = 0;
    for (Fd* f : {&output, &protocol, &status}) {
      if (f->valid()) {
        fds[n] = {f->get(), POLLIN, 0};
        owners[n++] = f;
      }
    }
    if (n == 0) break;
    int timeout = -1;
    if (drain_deadline >= 0) {
      int64_t left = drain_deadline - MonotonicMillis();
      if (left <= 0) break;
      timeout = static_cast<int>(left);
    }
    int r = ::poll(fds, n, timeout);
    if (r < 0 && errno != EINTR) break;
    for (nfds_t i = 0; i < n && r > 0; ++i) {
      if (fds[i].revents == 0) continue;
      ssize_t got = ::read(fds[i].fd, buf, sizeof(buf));
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      Fd* f = owners[i];
      if (got <= 0) {
        if (f == &status) {
          status_lines.Flush(on_status);
          // The keeper has exited: reap it without racing SignalKeeper().
          siginfo_t info{};
          int w = ::waitid(P_PID, static_cast<id_t>(s->keeper_pid), &info, WEXITED | WNOWAIT);
          std::lock_guard<std::mutex> lock(s->mu);
          int wstatus = 0;
          if (w == 0 && ::waitpid(s->keeper_pid, &wstatus, 0) == s->keeper_pid) {
            keeper_exit.exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
            keeper_exit.signal = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
          }
          s->keeper_reaped = true;
          s->lifeline_fd.Reset();
          drain_deadline = MonotonicMillis() + kDrainMillis;
        } else if (f == &output) {
          output_lines.Flush(on_output);
        } else {
          protocol_lines.Flush(on_protocol);
          if (opt.on_protocol_closed) opt.on_protocol_closed();
        }
        f->Reset();
        continue;
      }
      std::string_view data(buf, static_cast<size_t>(got));
      if (f == &output) {
        s->log.Append(data);
        output_lines.Feed(data, on_output);
      } else if (f == &protocol) {
        protocol_lines.Feed(data, on_protocol);
      } else {
        status_lines.Feed(data, on_status);
      }
    }
  }
  ProcessExit final_exit;
  if (reported) {
    final_exit = *reported;
  } else {
    final_exit = keeper_exit;
    final_exit.status_unknown = true;
  }
  {
    std::lock_guard<std::mutex> lock(s->mu);
    s->stdin_fd.Reset();
    s->exit = final_exit;
  }
  s->cv.notify_all();
  MW_LOG(kDebug, "supervisor") << "process ended pid=" << s->pid << " " << final_exit.Describe();
  if (opt.on_exit) opt.on_exit(final_exit);
}

Status ExecError(const std::string& program, int err) {
  std::string message = "cannot execute '" + program + "': " + std::strerror(err);
  if (err == ENOENT || err == ENOTDIR) return NotFoundError(message);
  if (err == EACCES || err == EPERM) return PermissionDeniedError(message);
  return InvalidArgumentError(message);
}

// Reads one '\n'-terminated line from a non-blocking fd, waiting up to
// timeout_ms in total. Reads byte by byte so nothing after the line is taken.
std::optional<std::string> ReadLine(int fd, int timeout_ms) {
  std::string line;
  const int64_t deadline = MonotonicMillis() + timeout_ms;
  for (;;) {
    char c;
    ssize_t n = ::read(fd, &c, 1);
    if (n == 1) {
      if (c == '\n') return line;
      line.push_back(c);
      if (line.size() > 256) return std::nullopt;
      continue;
    }
    if (n == 0) return std::nullopt;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return std::nullopt;
    int64_t left = deadline - MonotonicMillis();
    if (left <= 0) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left));
  }
}

}  // namespace

Result<ChildProcess> ChildProcess::Spawn(SpawnOptions options) {
  if (options.argv.empty() || options.argv[0].empty()) return InvalidArgumentError("empty argv");
  std::string keeper = options.keeper_path.empty() ? DefaultHelperPath("mw-keeper") : options.keeper_path;
  if (::access(keeper.c_str(), X_OK) != 0) {
    return FailedPreconditionError("helper program mw-keeper not found or not executable at '" + keeper + "'");
  }
  options.log_capacity = std::max(options.log_capacity, kDefaultLogCapacity);

  // Parent ends stay here; child ends are moved to fds >= 10 first so the
  // dup2 actions below cannot clobber one another.
  Fd in_r, in_w, out_r, out_w, proto_r, proto_w, life_r, life_w, stat_r, stat_w;
  RETURN_IF_ERROR(si::MakePipe(in_r, in_w));
  RETURN_IF_ERROR(si::MakePipe(out_r, out_w));
  RETURN_IF_ERROR(si::MakePipe(life_r, life_w));
  RETURN_IF_ERROR(si::MakePipe(stat_r, stat_w));
  if (options.protocol_pipe) {
    RETURN_IF_ERROR(si::MakePipe(proto_r, proto_w));
  } else {
    proto_w = Fd(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    if (!proto_w.valid()) return InternalError(std::string("open /dev/null: ") + std::strerror(errno));
  }
  for (Fd* f : {&in_r, &out_w, &proto_w, &life_r, &stat_w}) {
    Fd high(::fcntl(f->get(), F_DUPFD_CLOEXEC, 10));
    if (!high.valid()) return InternalError(std::string("fcntl: ") + std::strerror(errno));
    *f = std::move(high);
  }

  std::vector<std::string> env_strings;
  std::vector<std::pair<std::string, std::string>> overrides = options.env;
  if (options.protocol_pipe) overrides.emplace_back("MW_PROTOCOL_FD", "3");
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::string_view key = entry.substr(0, entry.find('='));
    bool overridden = std::any_of(overrides.begin(), overrides.end(), [&](const auto& kv) { return kv.first == key; });
    if (!overridden && !IsServerSecret(key)) env_strings.emplace_back(entry);
  }
  for (size_t i = 0; i < overrides.size(); ++i) {
    const std::string& key = overrides[i].first;
    bool later = std::any_of(overrides.begin() + static_cast<std::ptrdiff_t>(i) + 1, overrides.end(),
                             [&](const auto& kv) { return kv.first == key; });
    if (!later) env_strings.push_back(key + "=" + overrides[i].second);
  }

  std::vector<std::string> args = {keeper, "--parent-pid", std::to_string(::getpid())};
  if (options.protocol_pipe) args.emplace_back("--protocol");
  if (!options.working_dir.empty()) {
    args.emplace_back("--cwd");
    args.push_back(options.working_dir);
  }
  args.emplace_back("--");
  args.insert(args.end(), options.argv.begin(), options.argv.end());

  std::vector<char*> argv_ptrs, env_ptrs;
  for (std::string& a : args) argv_ptrs.push_back(a.data());
  argv_ptrs.push_back(nullptr);
  for (std::string& e : env_strings) env_ptrs.push_back(e.data());
  env_ptrs.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&actions, in_r.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, out_w.get(), 2);
  posix_spawn_file_actions_adddup2(&actions, proto_w.get(), 3);
  posix_spawn_file_actions_adddup2(&actions, life_r.get(), si::kKeeperLifelineFd);
  posix_spawn_file_actions_adddup2(&actions, stat_w.get(), si::kKeeperStatusFd);
  posix_spawn_file_actions_addclosefrom_np(&actions, si::kKeeperFirstFreeFd);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);  // e.g. an ignored SIGPIPE must not leak into programs
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setpgroup(&attr, 0);  // the terminal's Ctrl-C is for the server only
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  pid_t keeper_pid = 0;
  int rc = ::posix_spawn(&keeper_pid, keeper.c_str(), &actions, &attr, argv_ptrs.data(), env_ptrs.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return InternalError("cannot start mw-keeper: " + std::string(std::strerror(rc)));
  for (Fd* f : {&in_r, &out_w, &proto_w, &life_r, &stat_w}) f->Reset();
  for (Fd* f : {&in_w, &out_r, &proto_r, &stat_r}) {
    if (f->valid()) ::fcntl(f->get(), F_SETFL, O_NONBLOCK);
  }

  auto fail = [&](Status st) {
    life_w.Reset();  // the keeper kills whatever it started
    ::kill(keeper_pid, SIGKILL);
    ::waitpid(keeper_pid, nullptr, 0);
    return st;
  };
  std::optional<std::string> first = ReadLine(stat_r.get(), 30000);
  if (!first) return fail(InternalError("mw-keeper did not report the start of '" + options.argv[0] + "'"));
  int value = 0;
  if (first->rfind(si::kStatusExecFailed, 0) == 0) {
    std::sscanf(first->c_str() + std::strlen(si::kStatusExecFailed), "%d", &value);
    return fail(ExecError(options.argv[0], value));
  }
  if (first->rfind(si::kStatusStarted, 0) != 0 ||
      std::sscanf(first->c_str() + std::strlen(si::kStatusStarted), "%d", &value) != 1 || value <= 0) {
    return fail(InternalError("mw-keeper sent an unexpected line: " + *first));
  }

  auto state = std::make_shared<State>(std::move(options));
  state->keeper_pid = keeper_pid;
  state->pid = value;
  state->stdin_fd = std::move(in_w);
  state->lifeline_fd = std::move(life_w);
  try {
    std::lock_guard<std::mutex> lock(state->mu);  // monitor_id is set before the thread reads it
    state->monitor = std::thread(Monitor, state, std::move(out_r), std::move(proto_r), std::move(stat_r));
    state->monitor_id = state->monitor.get_id();
  } catch (const std::system_error& e) {
    state->lifeline_fd.Reset();  // life_w was moved into the state
    return fail(InternalError(std::string("cannot start monitor thread: ") + e.what()));
  }
  MW_LOG(kDebug, "supervisor") << "started pid=" << value << " program=" << state->options.argv[0];
  return ChildProcess(std::move(state));
}

ChildProcess::ChildProcess(std::shared_ptr<State> state) : state_(std::move(state)) {}
ChildProcess::ChildProcess(ChildProcess&& other) noexcept = default;
ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    Release();
    state_ = std::move(other.state_);
  }
  return *this;
}
ChildProcess::~ChildProcess() { Release(); }

void ChildProcess::Release() noexcept {
  if (!state_) return;
  if (running()) Kill();
  if (state_->OnMonitorThread()) {
    state_->monitor.detach();  // destroyed from a callback: the thread ends on its own
  } else if (state_->monitor.joinable()) {
    state_->monitor.join();
  }
  state_.reset();
}

int ChildProcess::pid() const { return state_->pid; }

bool ChildProcess::running() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return !state_->exit.has_value();
}

std::optional<ProcessExit> ChildProcess::exit_status() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->exit;
}

std::optional<ProcessExit> ChildProcess::WaitFor(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(state_->mu);
  if (!state_->OnMonitorThread()) {
    state_->cv.wait_for(lock, timeout, [&] { return state_->exit.has_value(); });
  }
  return state_->exit;
}

ProcessExit ChildProcess::Wait() const {
  std::unique_lock<std::mutex> lock(state_->mu);
  if (state_->OnMonitorThread()) return state_->exit.value_or(ProcessExit{});
  state_->cv.wait(lock, [&] { return state_->exit.has_value(); });
  return *state_->exit;
}

Status ChildProcess::WriteStdin(std::string_view data) {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (!state_->stdin_fd.valid()) return UnavailableError("program's stdin is closed");
  return WriteNoSigpipe(state_->stdin_fd.get(), data);
}

void ChildProcess::CloseStdin() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->stdin_fd.Reset();
}

void ChildProcess::Terminate() { state_->SignalKeeper(SIGTERM); }

bool ChildProcess::stopped() const {
  // /proc/PID/stat: "PID (COMM) STATE ...", COMM may hold spaces and ')'.
  const std::string path = "/proc/" + std::to_string(pid()) + "/stat";
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  char buf[512];
  const ssize_t n = ::read(fd.get(), buf, sizeof(buf) - 1);
  if (n <= 0) return false;
  const std::string_view stat(buf, static_cast<size_t>(n));
  const size_t close = stat.rfind(')');
  return close != std::string_view::npos && close + 2 < stat.size() && stat[close + 2] == 'T';
}

std::optional<ProcessExit> ChildProcess::WaitUnlessStopped(std::chrono::milliseconds grace) const {
  constexpr std::chrono::milliseconds kLook{100};  // how often the program's state is read
  const auto deadline = std::chrono::steady_clock::now() + grace;
  for (;;) {
    if (auto e = exit_status()) return e;
    if (stopped()) return std::nullopt;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    if (auto e = WaitFor(std::min(left, kLook))) return e;
  }
}

ProcessExit ChildProcess::Stop(const StopOptions& options) {
  if (auto done = exit_status()) return *done;
  if (!options.stop_line.empty()) {
    // A program that already closed its stdin simply skips this stage.
    [[maybe_unused]] Status ignored = WriteStdin(options.stop_line + "\n");
  }
  CloseStdin();
  if (options.polite_grace.count() > 0) {
    if (auto e = WaitUnlessStopped(options.polite_grace)) return *e;
  }
  // A stopped program reads no stop line and acts on no SIGTERM until it is
  // continued (a handler runs only then): waiting for it would only delay
  // the SIGKILL, which ends it stopped or not.
  bool is_stopped = stopped();
  if (options.polite_grace.count() > 0 && !is_stopped) {
    MW_LOG(kInfo, "supervisor") << "pid=" << pid() << " did not stop politely; sending SIGTERM";
  }
  Terminate();
  if (!is_stopped) {
    if (auto e = WaitUnlessStopped(options.term_grace)) return *e;
    is_stopped = stopped();
  }
  if (is_stopped) {
    MW_LOG(kWarn, "supervisor") << "pid=" << pid() << " is stopped (SIGSTOP); killing it and its children";
  } else if (options.term_grace.count() > 0) {
    MW_LOG(kWarn, "supervisor") << "pid=" << pid() << " ignored SIGTERM; killing it and its children";
  }
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->lifeline_fd.Reset();
  }
  if (auto e = WaitFor(options.kill_grace)) return *e;
  MW_LOG(kError, "supervisor") << "pid=" << pid() << " keeper did not finish; SIGKILL to keeper";
  state_->SignalKeeper(SIGKILL);
  return Wait();
}

ProcessExit ChildProcess::Kill() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->exit) return *state_->exit;
    state_->lifeline_fd.Reset();
  }
  if (auto e = WaitFor(StopOptions{}.kill_grace)) return *e;
  state_->SignalKeeper(SIGKILL);
  return Wait();
}

std::string ChildProcess::LogTail(size_t max_bytes) const { return state_->log.Tail(max_bytes); }
uint64_t ChildProcess::log_total_bytes() const { return state_->log.total_bytes(); }

}  // namespace mw
