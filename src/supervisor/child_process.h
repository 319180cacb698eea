// ChildProcess: one program started by the server, owned as an RAII object.
//
// Design (SPEC §6, STYLE item 8):
//   server ──posix_spawn──> mw-keeper ──fork/exec──> PROGRAM ──> its children...
// Every program runs under a tiny `mw-keeper` process (keeper_main.cpp):
//   * the keeper is a child subreaper, so descendants orphaned by the program
//     (even ones that called setsid()) are reparented to it and can be found;
//   * the server holds the only write end of a "lifeline" pipe (O_CLOEXEC);
//     when the server dies, even by SIGKILL, the kernel closes it and the
//     keeper sees EOF, kills the program's process group and every remaining
//     descendant until none is left, then exits. PR_SET_PDEATHSIG is a second
//     trigger (checked against getppid(), so a dying server *thread* does not
//     count). The program has PR_SET_PDEATHSIG=SIGKILL on the keeper;
//   * the keeper reports the program's pid and its exact exit code or signal
//     on a status pipe; EOF on that pipe means the keeper has exited, so no
//     polling is needed: one monitor thread per child poll()s the output,
//     protocol and status pipes and sees an exit within milliseconds.
// The program's stdout and stderr go to one pipe, kept in a LogBuffer (the
// last `log_capacity` bytes) and split into lines for `on_output_line`. With
// `protocol_pipe`, the program also gets fd 3 (env MW_PROTOCOL_FD=3) as a
// separate pipe whose lines go to `on_protocol_line`. Its stdin is a pipe from
// the server: Stop() writes the polite stop line there, then closes it.
// No shell is ever involved: argv[0] is searched in PATH and exec'd directly.
//
// Requirements on the host process: it must not reap children it did not
// start (no waitpid(-1, ...)) and must not set SIGCHLD to SIG_IGN. Signals
// the server's terminal sends (Ctrl-C) do not reach programs: the keeper and
// the program each run in their own process group.
//
// Thread-safety: all methods may be called from any thread concurrently,
// except that a moved-from object may only be destroyed or assigned to.
// Callbacks run on the child's monitor thread, one at a time, in order; they
// must not block for long; they may call any method of this object (Stop()
// and Wait() from inside a callback do not deadlock but return without waiting
// for the exit, which is only delivered after the callback returns).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "supervisor/log_buffer.h"

namespace mw {

// "SIGSEGV", "SIGABRT", ...; "SIG<n>" for a number without a name.
std::string SignalName(int signal);

// How a program ended.
struct ProcessExit {
  int exit_code = -1;        // valid when signal == 0
  int signal = 0;            // > 0: killed by this signal
  bool core_dumped = false;
  // The keeper vanished without reporting (it was killed from outside);
  // exit_code/signal then describe the keeper, not the program.
  bool status_unknown = false;

  bool signaled() const { return signal != 0; }
  bool success() const { return signal == 0 && exit_code == 0 && !status_unknown; }
  // "exit code 1", "killed by SIGSEGV (core dumped)".
  std::string Describe() const;
};

// Environment variables that hold the server's secrets and that no program
// it starts inherits: MODELWARDEN_API_KEY, HF_TOKEN and
// HUGGING_FACE_HUB_TOKEN (registry tokens), and libpq's PG* variables
// (PGPASSWORD, PGPASSFILE, ...: the PostgreSQL registry's credentials).
bool IsServerSecret(std::string_view name);

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0]: a path, or a name searched in PATH
  // Set (or override; the last of a name wins) in the program's
  // environment. The rest is inherited, less the server's secrets (SPEC §20,
  // IsServerSecret): a secret reaches a program only when set here.
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_dir;        // empty: the server's
  bool protocol_pipe = false;     // fd 3 + MW_PROTOCOL_FD=3
  size_t log_capacity = kDefaultLogCapacity;  // raised to 64 KiB if smaller
  std::string keeper_path;        // empty: DefaultHelperPath("mw-keeper")

  std::function<void(std::string_view line)> on_output_line;
  std::function<void(std::string_view line)> on_protocol_line;
  // EOF on the protocol pipe (the program closed fd 3, or it is ending).
  std::function<void()> on_protocol_closed;
  // Fires once, after the output and protocol pipes are drained (so the log
  // tail is complete), whether the program ended on its own or was stopped.
  std::function<void(const ProcessExit&)> on_exit;
};

// The escalation of Stop(): each stage waits up to its grace for the program
// and its processes to be gone before the next.
struct StopOptions {
  std::string stop_line;  // written to stdin before closing it ("stop"); empty: just close
  std::chrono::milliseconds polite_grace{5000};  // after closing stdin (0: skip)
  std::chrono::milliseconds term_grace{5000};    // after SIGTERM to the program's group
  std::chrono::milliseconds kill_grace{5000};    // after asking the keeper to SIGKILL all
};

// Path of a helper program (mw-keeper, modelwarden-worker) of this
// installation: next to the running executable, else in ../bin (tests run
// from build/tests), else in $MW_BIN_DIR. Returns the first candidate that is
// executable, or the plain "next to the executable" path if none is.
std::string DefaultHelperPath(std::string_view name);

class ChildProcess {
 public:
  // Starts the program. On success the program is running (its exec
  // succeeded) and pid() is known. Errors: kInvalidArgument (empty argv),
  // kFailedPrecondition (mw-keeper missing), kNotFound / kPermissionDenied
  // (argv[0] not found / not executable; message names it and the errno
  // text), kInternal (pipes, spawn). Nothing is left running on error.
  static Result<ChildProcess> Spawn(SpawnOptions options);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // Kills (no polite stage) and reaps everything still running. Never throws.
  ~ChildProcess();

  // The program's pid, also its process group id.
  int pid() const;
  // True until the program's end has been delivered (on_exit returned... or is running).
  bool running() const;
  // Set once the program has ended and its output was drained.
  std::optional<ProcessExit> exit_status() const;
  // Waits up to `timeout` for the end; returns it, or nullopt on timeout.
  std::optional<ProcessExit> WaitFor(std::chrono::milliseconds timeout) const;
  ProcessExit Wait() const;

  // Writes to the program's stdin. kUnavailable if stdin is closed or the
  // program no longer reads it. Never raises SIGPIPE.
  Status WriteStdin(std::string_view data);
  void CloseStdin();
  // SIGTERM to the program's process group (through the keeper).
  void Terminate();
  // Whether the program is stopped by a signal now (its /proc state is T).
  bool stopped() const;

  // Graceful stop: stop line + close stdin, SIGTERM, SIGKILL of everything,
  // then SIGKILL of the keeper as a last resort; always reaps. Returns how the
  // program ended (if it had already ended, that status). A program that is
  // stopped (SIGSTOP, SIGTSTP: /proc state T), before or during a grace,
  // acts on nothing but SIGKILL: the polite and SIGTERM graces are cut short
  // (SIGTERM is still sent, then SIGKILL at once).
  ProcessExit Stop(const StopOptions& options);
  // Immediate SIGKILL of the program and all its descendants; waits and reaps.
  ProcessExit Kill();

  // The last `max_bytes` of captured stdout+stderr.
  std::string LogTail(size_t max_bytes = SIZE_MAX) const;
  uint64_t log_total_bytes() const;

  struct State;  // shared with the monitor thread (child_process.cpp)

 private:
  explicit ChildProcess(std::shared_ptr<State> state);
  void Release() noexcept;
  // Waits up to `grace` for the end; nullopt at once when the program is (or
  // becomes) stopped, or at the end of the grace.
  std::optional<ProcessExit> WaitUnlessStopped(std::chrono::milliseconds grace) const;
  std::shared_ptr<State> state_;
};

}  // namespace mw
