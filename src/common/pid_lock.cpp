#include "common/pid_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <utility>

namespace mw {

Result<PidLock> PidLock::Acquire(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    std::string msg = "cannot open the lock file '" + path.string() + "': " + std::strerror(err);
    if (err == EACCES || err == EROFS || err == EPERM) return PermissionDeniedError(msg);
    return InternalError(msg);
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err != EWOULDBLOCK) {
      return InternalError("cannot lock '" + path.string() + "': " + std::strerror(err));
    }
    const pid_t holder = ReadHolder(path);
    return UnavailableError("another modelwarden server (" +
                            (holder > 0 ? "pid " + std::to_string(holder) : std::string("pid unknown")) +
                            ") is using this data directory (it holds '" + path.string() +
                            "'); stop that server, or give this one a different --data-dir");
  }
  // Ours now: record the pid for the next one to name.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int err = errno;
    ::close(fd);
    return InternalError("cannot write the pid into '" + path.string() + "': " + std::strerror(err));
  }
  return PidLock(fd, path);
}

pid_t PidLock::ReadHolder(const std::filesystem::path& path) {
  std::ifstream in(path);
  long long pid = 0;
  if (!(in >> pid) || pid <= 0) return 0;
  return static_cast<pid_t>(pid);
}

PidLock::PidLock(PidLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

PidLock& PidLock::operator=(PidLock&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

PidLock::~PidLock() { Release(); }

void PidLock::Release() {
  if (fd_ < 0) return;
  // Emptied while still locked, so no one reads a pid that is about to be stale.
  [[maybe_unused]] int ignored = ::ftruncate(fd_, 0);
  ::close(fd_);
  fd_ = -1;
}

}  // namespace mw
