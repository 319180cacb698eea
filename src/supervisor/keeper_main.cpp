// mw-keeper: the tiny process between the server and every program it runs.
//
// Why it exists: a worker (or a `command` engine such as a Python script) may
// fork children of its own, even ones that call setsid(). When the server is
// killed with SIGKILL nothing in it runs, so the server cannot clean up. The
// keeper can: it is a child subreaper (orphaned descendants are reparented to
// it), it learns of the server's death from EOF on the lifeline pipe (the
// server holds its only write end) and, as a backup, from PR_SET_PDEATHSIG,
// and it then kills the program's process group and every remaining
// descendant until none is left. The program itself gets PR_SET_PDEATHSIG =
// SIGKILL on the keeper, so even a keeper killed from outside takes the
// program with it.
//
// The keeper is transparent: it reports the program's pid and its exact exit
// code or signal on the status pipe (see keeper_protocol.h). It is
// single-threaded, so fork() + PR_SET_PDEATHSIG here has none of the
// "parent thread exited" surprises it would have in the server.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "supervisor/keeper_protocol.h"

namespace {

using namespace mw::supervisor_internal;  // NOLINT(google-build-using-namespace)

void WriteStatus(const std::string& line) {
  std::string data = line + "\n";
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(kKeeperStatusFd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the server is gone; nobody to tell
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void ReportWaitStatus(int status) {
  if (WIFSIGNALED(status)) {
    WriteStatus(std::string(kStatusSignaled) + " " + std::to_string(WTERMSIG(status)) + " " +
                (WCOREDUMP(status) ? "1" : "0"));
  } else {
    WriteStatus(std::string(kStatusExited) + " " + std::to_string(WEXITSTATUS(status)));
  }
}

// execv with our own PATH search (execvp would fall back to /bin/sh for a
// file without a shebang; we never run a shell). Returns errno on failure.
int ExecProgram(char** argv) {
  const char* file = argv[0];
  if (std::strchr(file, '/') != nullptr) {
    ::execv(file, argv);
    return errno;
  }
  const char* path_env = std::getenv("PATH");
  std::string path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  int result = ENOENT;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + file;
    ::execv(candidate.c_str(), argv);
    if (errno != ENOENT && errno != ENOTDIR) result = errno;  // e.g. EACCES: remember, keep looking
    start = end + 1;
  }
  return result;
}

// Every process below `root` in the process tree, found by scanning /proc
// (works without CONFIG_PROC_CHILDREN).
std::vector<pid_t> Descendants(pid_t root) {
  std::multimap<pid_t, pid_t> children;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return {};
  while (dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || pid <= 0) continue;
    std::string stat_path = std::string("/proc/") + entry->d_name + "/stat";
    int fd = ::open(stat_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[512];
    ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
    ::close(fd);
    if (n <= 0) continue;
    buf[n] = '\0';
    // "pid (comm) S ppid ...": comm may contain spaces and parentheses.
    char* close_paren = std::strrchr(buf, ')');
    if (close_paren == nullptr) continue;
    char state = '\0';
    int ppid = 0;
    if (std::sscanf(close_paren + 1, " %c %d", &state, &ppid) != 2) continue;
    children.emplace(static_cast<pid_t>(ppid), static_cast<pid_t>(pid));
  }
  ::closedir(dir);
  std::vector<pid_t> result;
  std::vector<pid_t> frontier{root};
  while (!frontier.empty()) {
    pid_t p = frontier.back();
    frontier.pop_back();
    auto range = children.equal_range(p);
    for (auto it = range.first; it != range.second; ++it) {
      result.push_back(it->second);
      frontier.push_back(it->second);
    }
  }
  return result;
}

void DrainSignalFd(int sfd) {
  signalfd_siginfo info;
  while (::read(sfd, &info, sizeof(info)) == sizeof(info)) {
  }
}

class Keeper {
 public:
  Keeper(pid_t parent_pid, int sfd) : parent_pid_(parent_pid), sfd_(sfd) {}

  void set_program(pid_t pid) { program_ = pid; }

  // Reaps every child that has ended; reports the program's status once.
  // Returns false when no child at all is left.
  bool ReapAvailable() {
    for (;;) {
      int status = 0;
      pid_t w = ::waitpid(-1, &status, WNOHANG);
      if (w > 0) {
        if (w == program_ && !program_done_) {
          program_done_ = true;
          ReportWaitStatus(status);
        }
        continue;
      }
      if (w == 0) return true;
      if (errno == EINTR) continue;
      return false;  // ECHILD
    }
  }

  // Waits for the program to end or for the server to go away.
  void Watch() {
    while (!program_done_) {
      pollfd fds[2] = {{sfd_, POLLIN, 0}, {kKeeperLifelineFd, POLLIN, 0}};
      int n = ::poll(fds, 2, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) {
        char buf[64];
        ssize_t r = ::read(kKeeperLifelineFd, buf, sizeof(buf));
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) return;  // server gone: kill all
      }
      if (fds[0].revents != 0) {
        signalfd_siginfo info;
        while (::read(sfd_, &info, sizeof(info)) == sizeof(info)) {
          int sig = static_cast<int>(info.ssi_signo);
          if (sig == SIGCHLD) continue;  // reaped below
          if (sig == SIGUSR2) {          // PDEATHSIG: the forking thread or the server died
            if (::getppid() != parent_pid_) return;
            continue;
          }
          ::kill(-program_, sig);  // SIGTERM/SIGINT/SIGHUP/SIGQUIT: forward to the group
        }
        ReapAvailable();
      }
    }
  }

  // Kills the program's group and every descendant until none is left.
  void KillEverything() {
    ::kill(-program_, SIGKILL);
    for (;;) {
      // No child at all means no descendant either: an orphaned grandchild
      // would have been reparented to us. So the common case (the program
      // ended alone) needs no /proc scan and the keeper exits at once.
      if (!ReapAvailable()) return;
      for (pid_t p : Descendants(::getpid())) ::kill(p, SIGKILL);
      pollfd fd{sfd_, POLLIN, 0};
      ::poll(&fd, 1, 50);  // SIGCHLD, or look again for processes forked meanwhile
      DrainSignalFd(sfd_);
    }
  }

 private:
  pid_t parent_pid_;
  int sfd_;
  pid_t program_ = 0;
  bool program_done_ = false;
};

int Usage() {
  std::fprintf(stderr,
               "usage: mw-keeper --parent-pid PID [--protocol] [--cwd DIR] -- PROGRAM [ARGS...]\n"
               "Started by modelwarden; not meant to be run by hand.\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);  // a gone server must not kill us mid-cleanup
  pid_t parent_pid = 0;
  bool protocol = false;
  const char* cwd = nullptr;
  int i = 1;
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") break;
    if (arg == "--parent-pid" && i + 1 < argc) {
      parent_pid = static_cast<pid_t>(std::atol(argv[++i]));
    } else if (arg == "--protocol") {
      protocol = true;
    } else if (arg == "--cwd" && i + 1 < argc) {
      cwd = argv[++i];
    } else {
      return Usage();
    }
  }
  if (i + 1 >= argc || parent_pid <= 0) return Usage();
  char** program_argv = argv + i + 1;

  ::fcntl(kKeeperLifelineFd, F_SETFD, FD_CLOEXEC);
  ::fcntl(kKeeperStatusFd, F_SETFD, FD_CLOEXEC);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  ::prctl(PR_SET_PDEATHSIG, SIGUSR2);
  if (::getppid() != parent_pid) return 1;  // the server died before we could watch it

  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR2}) sigaddset(&handled, sig);
  ::sigprocmask(SIG_BLOCK, &handled, nullptr);
  int sfd = ::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    WriteStatus(std::string(kStatusExecFailed) + " " + std::to_string(errno));
    return 1;
  }

  int errpipe[2];
  if (::pipe2(errpipe, O_CLOEXEC) != 0) {
    WriteStatus(std::string(kStatusExecFailed) + " " + std::to_string(errno));
    return 1;
  }
  const pid_t keeper_pid = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    WriteStatus(std::string(kStatusExecFailed) + " " + std::to_string(errno));
    return 1;
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != keeper_pid) ::_exit(127);
    if (!protocol) ::close(3);
    int err = 0;
    if (cwd != nullptr && ::chdir(cwd) != 0) err = errno;
    if (err == 0) {
      for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      err = ExecProgram(program_argv);
    }
    [[maybe_unused]] ssize_t w = ::write(errpipe[1], &err, sizeof(err));
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also done in the child: whichever runs first wins the race
  ::close(errpipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(errpipe[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  ::close(errpipe[0]);
  if (n == static_cast<ssize_t>(sizeof(child_errno))) {
    ::waitpid(pid, nullptr, 0);
    WriteStatus(std::string(kStatusExecFailed) + " " + std::to_string(child_errno));
    return 0;
  }
  WriteStatus(std::string(kStatusStarted) + " " + std::to_string(pid));

  // Let go of the program's pipes: the server then sees EOF as soon as the
  // program's own processes are gone.
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) {
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::close(devnull);
  }
  ::close(3);

  Keeper keeper(parent_pid, sfd);
  keeper.set_program(pid);
  keeper.Watch();
  keeper.KillEverything();  // returns once the program is reaped (and reported)
  return 0;
}
