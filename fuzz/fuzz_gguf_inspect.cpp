// libFuzzer target: GGUF metadata inspection (worker/gguf_inspect.h), which
// the worker runs on any file a user registers.
//
// InspectGguf takes a path, so each input is written to one file in
// /dev/shm (memory, not disk) and inspected there. The gguf reader itself
// is llama.cpp's prebuilt libggml-base (not instrumented); our checks on
// top of it are. Checked: no crash/UB; OK only with sane facts; failures
// are kDataLoss (a corrupt file), never anything else for a regular file.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz_support.h"
#include "ggml.h"
#include "worker/gguf_inspect.h"

namespace {

std::string g_path;

void QuietLog(enum ggml_log_level, const char*, void*) {}

bool WriteAll(const uint8_t* data, size_t size) {
  int fd = ::open(g_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n <= 0) {
      ::close(fd);
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return ::close(fd) == 0;
}

void RemoveFile() { ::unlink(g_path.c_str()); }

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  g_path = std::string(dir) + "/mw-fuzz-gguf-" + std::to_string(::getpid()) + ".gguf";
  std::atexit(RemoveFile);
  // gguf explains every rejected file on the log; thousands per second of that is noise.
  if (std::getenv("MW_FUZZ_VERBOSE") == nullptr) ggml_log_set(QuietLog, nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!WriteAll(data, size)) std::abort();  // /dev/shm full: not a finding, but do not hide it
  auto meta = mw::worker::InspectGguf(g_path);
  if (!meta.ok()) {
    MW_FUZZ_CHECK(meta.status().code() == mw::StatusCode::kDataLoss);
    return 0;
  }
  MW_FUZZ_CHECK(meta->file_size == size);
  MW_FUZZ_CHECK(meta->tensor_count >= 0);
  return 0;
}
