// mw-bench-crash STAMP_FILE [--after-ms N] [--signal segv|abrt|kill]
//
// A `command`-engine loader for the crash-to-durable benchmark: prints a few
// loader-like lines, waits N ms (default 50, so the server has settled into
// supervising it), writes the instant as "MONO_NS REAL_NS" to STAMP_FILE and
// raises the signal at once. The benchmark compares that instant with the
// moment the server's answer (sent after the outcome is committed) arrives.
// Core dumps are switched off so that the kernel writing one is not counted
// against the server.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: mw-bench-crash STAMP_FILE [--after-ms N] [--signal segv|abrt|kill]\n");
    return 2;
  }
  long after_ms = 50;
  int sig = SIGSEGV;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--after-ms") == 0) after_ms = std::atol(argv[i + 1]);
    if (std::strcmp(argv[i], "--signal") == 0) {
      sig = std::strcmp(argv[i + 1], "abrt") == 0 ? SIGABRT : std::strcmp(argv[i + 1], "kill") == 0 ? SIGKILL : SIGSEGV;
    }
  }
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  std::printf("llama_model_loader: loaded meta data with 24 key-value pairs (bench fixture)\n");
  std::printf("load_tensors: loading model tensors, this can take a while...\n");
  std::fflush(stdout);
  int fd = ::open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror("mw-bench-crash: open");
    return 1;
  }
  timespec pause{after_ms / 1000, (after_ms % 1000) * 1000000L};
  nanosleep(&pause, nullptr);
  // Both clocks: the driver compares CLOCK_MONOTONIC with its own hrtime and
  // CLOCK_REALTIME with the attempt's finished_at.
  timespec mono{}, real{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  auto ns = [](const timespec& t) { return std::to_string(static_cast<long long>(t.tv_sec) * 1000000000LL + t.tv_nsec); };
  const std::string stamp = ns(mono) + " " + ns(real) + "\n";
  [[maybe_unused]] ssize_t n = ::write(fd, stamp.data(), stamp.size());
  ::close(fd);
  ::raise(sig);
  return 1;
}
