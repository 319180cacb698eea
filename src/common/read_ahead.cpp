#include "common/read_ahead.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "common/log.h"

namespace mw {

Status ReadAhead(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string what = "read-ahead of " + path + ": " + std::strerror(err);
    if (err == ENOENT) return NotFoundError(what);
    if (err == EACCES || err == EPERM) return PermissionDeniedError(what);
    return InternalError(what);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return InternalError("read-ahead of " + path + ": " + std::strerror(err));
  }
  // Linux reads at most max(read_ahead_kb, max_sectors_kb) of the range one
  // WILLNEED names (8 MiB of a 16 MiB file here), so the file is advised
  // chunk by chunk, each no larger than the smallest such limit (128 KiB).
  constexpr off_t kChunk = 128 * 1024;
  int rc = 0;
  for (off_t at = 0; at < st.st_size && rc == 0; at += kChunk) {
    rc = ::posix_fadvise(fd, at, kChunk, POSIX_FADV_WILLNEED);  // returns the error, no errno
  }
  ::close(fd);
  if (rc != 0) return InternalError("read-ahead of " + path + ": " + std::strerror(rc));
  return Status();
}

void StartReadAhead(const std::string& path) {
  std::thread([path] {
    if (Status st = ReadAhead(path); !st.ok()) MW_LOG(kDebug, "load") << st.ToString();
  }).detach();
}

}  // namespace mw
