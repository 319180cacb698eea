// gdb_stop: holds a running server at an exact line of its code.
//
// Why: the interesting crash points of a load (the durable `testing` commit
// done but no worker started yet; the worker loaded but the success not yet
// recorded) last microseconds, so no amount of polling from outside hits
// them reliably. gdb attaches to the real server, sets a breakpoint on a
// function (e.g. mw::Supervisor::Load, the first call after the durable
// commit), and stops the whole process there; the test then SIGKILLs it.
// gdb reads further commands from a pipe that we never write to, so it
// starts no child of its own and exits when the pipe closes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

namespace mw::testing_harness {

class GdbStop {
 public:
  // kWholeProcess: the breakpoint stops every thread (gdb's all-stop mode).
  // kHitThreadOnly: only the thread that reaches it stops (non-stop mode);
  // the rest of the server keeps serving, so a test can look at the API
  // while one thread is held at an exact line. Provoke the hit only after
  // Attach returned (it resumes threads stopped by the attach until then).
  enum class Mode { kWholeProcess, kHitThreadOnly };

  // Attaches to `pid` and sets a breakpoint on `function`; returns once gdb
  // says the breakpoint is set and the process runs again (false + *error
  // on failure: gdb missing, attach refused, unknown function).
  bool Attach(pid_t pid, const std::string& function, const std::string& log_path, std::string* error,
              Mode mode = Mode::kWholeProcess);
  // True once the process stopped at the breakpoint (polls up to `timeout`).
  bool WaitHit(std::chrono::milliseconds timeout);
  // Closes gdb's command pipe (gdb detaches and quits), SIGKILLs gdb if it
  // does not, and reaps it. Idempotent. Kill the stopped process first:
  // while gdb holds it, its parent cannot reap it (ptrace reports the death
  // to gdb first), and a process left running with gdb gone could still
  // meet a breakpoint instruction.
  void Detach();
  ~GdbStop() { Detach(); }

  // True when gdb can be run here (/usr/bin/gdb, or the one $MW_GDB names).
  static bool Available();

 private:
  pid_t gdb_pid_ = -1;
  int command_fd_ = -1;
  std::string log_path_;
};

}  // namespace mw::testing_harness
