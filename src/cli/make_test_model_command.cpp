#include "cli/make_test_model_command.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace mw::cli {
namespace {

constexpr const char* kMakeTestModelUsage =
    "usage: modelwarden make-test-model OUT.gguf [--layers N] [--embd N] [--ff N] [--ctx N]\n"
    "                                   [--size-mb N] [--type f16|f32] [--seed N] [--vocab PATH]\n"
    "Writes a small llama-architecture GGUF with random weights, for tests (run by modelwarden-worker).\n";

std::string WorkerPath() {
  if (const char* env = std::getenv("MODELWARDEN_WORKER"); env != nullptr && *env != '\0') return env;
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "modelwarden-worker";
  std::string self(buf, static_cast<size_t>(n));
  size_t slash = self.rfind('/');
  return (slash == std::string::npos ? std::string() : self.substr(0, slash + 1)) + "modelwarden-worker";
}

}  // namespace

int RunMakeTestModelCommand(int argc, char** argv) {
  int first = (argc > 0 && std::strcmp(argv[0], "make-test-model") == 0) ? 1 : 0;
  // Our usage, not the worker's (which would take --help for an option missing its value).
  for (int i = first; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::fputs(kMakeTestModelUsage, stdout);
      return 0;
    }
  }
  const std::string worker = WorkerPath();
  std::vector<char*> args;
  std::string sub = "make-test-model";
  args.push_back(const_cast<char*>(worker.c_str()));
  args.push_back(sub.data());
  for (int i = first; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);

  // The worker's protocol fd gets /dev/null: its stderr already carries the
  // human-readable summary or error.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 3, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, worker.c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    std::fprintf(stderr, "modelwarden: cannot start %s: %s\n", worker.c_str(), std::strerror(rc));
    return 1;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      std::fprintf(stderr, "modelwarden: waiting for %s failed: %s\n", worker.c_str(), std::strerror(errno));
      return 1;
    }
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  std::fprintf(stderr, "modelwarden: %s was killed by signal %d\n", worker.c_str(), WTERMSIG(status));
  return 1;
}

}  // namespace mw::cli
