#include "gdb_stop.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include "server_harness.h"

extern char** environ;

namespace mw::testing_harness {
namespace {

constexpr const char* kReady = "MW-GDB-READY";
constexpr const char* kHit = "MW-GDB-HIT";

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// MW_GDB names another gdb (a path that does not exist hides gdb, to check
// that the tests needing it fail: tests/require.h).
std::string GdbPath() {
  const char* path = std::getenv("MW_GDB");
  return path != nullptr && *path != '\0' ? path : "/usr/bin/gdb";
}

}  // namespace

bool GdbStop::Available() { return ::access(GdbPath().c_str(), X_OK) == 0; }

bool GdbStop::Attach(pid_t pid, const std::string& function, const std::string& log_path, std::string* error,
                     Mode mode) {
  const bool non_stop = mode == Mode::kHitThreadOnly;
  log_path_ = log_path;
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    *error = "pipe failed";
    return false;
  }
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[0], 0);
  posix_spawn_file_actions_adddup2(&actions, log_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, log_fd, 2);
  std::vector<std::string> args = {
      GdbPath(), "-nx",
      "-q",
      "-readnever",  // the ELF symbol table is enough for a breakpoint: attach in ~1 s
      "-iex",         non_stop ? "set non-stop on" : "set non-stop off",
      "-p",           std::to_string(pid),
      "-ex",          "set pagination off",
      "-ex",          "set confirm off",
      "-ex",          "set breakpoint pending off",
      "-ex",          "break " + function};
  if (non_stop) {
    // In the background, so that gdb goes on reading commands (see below).
    args.insert(args.end(), {"-ex", "continue -a &", "-ex", std::string("echo ") + kReady + "\\n"});
  } else {
    args.insert(args.end(), {"-ex", std::string("echo ") + kReady + "\\n", "-ex", "continue", "-ex",
                             std::string("echo ") + kHit + "\\n"});
  }
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  int rc = ::posix_spawn(&gdb_pid_, cargs[0], &actions, nullptr, cargs.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[0]);
  ::close(log_fd);
  command_fd_ = pipe_fds[1];
  if (rc != 0) {
    gdb_pid_ = -1;
    *error = "cannot start gdb";
    Detach();
    return false;
  }
  // gdb reads symbols first: give it time on a busy machine.
  bool ready = PollUntil(
      [&] {
        int status = 0;
        if (::waitpid(gdb_pid_, &status, WNOHANG) == gdb_pid_) {
          gdb_pid_ = -1;  // gdb gave up (attach refused, ...)
          return true;
        }
        return Slurp(log_path_).find(kReady) != std::string::npos;
      },
      std::chrono::milliseconds(60000));
  std::string log = Slurp(log_path_);
  if (!ready || log.find("Breakpoint 1 at") == std::string::npos) {
    *error = "gdb did not set the breakpoint on " + function + ":\n" + log;
    Detach();
    return false;
  }
  if (non_stop) {
    // Attaching stops every thread, and gdb learns of some of those stops
    // only after the first `continue -a` ran: resume the stragglers.
    for (int i = 0; i < 3; ++i) {
      SleepMs(300);
      const std::string again = "continue -a &\n";
      if (::write(command_fd_, again.data(), again.size()) != static_cast<ssize_t>(again.size())) {
        *error = "cannot write to gdb";
        Detach();
        return false;
      }
    }
    SleepMs(300);
  }
  return true;
}

bool GdbStop::WaitHit(std::chrono::milliseconds timeout) {
  return PollUntil(
      [&] {
        const std::string log = Slurp(log_path_);
        return log.find(kHit) != std::string::npos || log.find("hit Breakpoint 1") != std::string::npos;
      },
      timeout);
}

void GdbStop::Detach() {
  if (command_fd_ >= 0) {
    ::close(command_fd_);
    command_fd_ = -1;
  }
  if (gdb_pid_ > 0) {
    // EOF on its commands makes gdb detach (removing its breakpoints) and
    // quit; SIGKILL only if it does not.
    int status = 0;
    if (!PollUntil([&] { return ::waitpid(gdb_pid_, &status, WNOHANG) == gdb_pid_; },
                   std::chrono::milliseconds(5000))) {
      ::kill(gdb_pid_, SIGKILL);
      while (::waitpid(gdb_pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
    gdb_pid_ = -1;
  }
}

}  // namespace mw::testing_harness
