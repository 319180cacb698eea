// common/pid_lock.h: an exclusive lock on a file that also records the pid
// of its holder — "one modelwarden server per data directory" (SPEC §13).
//
// The lock is flock(2) on <path>, held through an open file descriptor
// (close-on-exec, so workers never inherit it) for the PidLock's lifetime.
// The kernel drops it when the process dies, however it dies: there is no
// stale lock after a crash, and nothing to clean up. The file itself stays
// (unlinking it would let two starters lock two different files); it holds
// the holder's pid as text while held, and is emptied on release.
//
// This replaces SQLite's exclusive locking mode: the registry stays readable
// (and writable, under SQLite's own locks) by other programs while the server
// runs, while the startup cleanup keeps its premise that no other server is
// mid-load on the same registry.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

#include "common/status.h"

namespace mw {

class PidLock {
 public:
  // Creates `path` if needed, locks it without waiting and writes this
  // process's pid into it. Errors: kUnavailable when another process holds
  // it (the message names that process's pid, read from the file);
  // kPermissionDenied when the file cannot be created or opened; kInternal otherwise.
  [[nodiscard]] static Result<PidLock> Acquire(const std::filesystem::path& path);

  PidLock(PidLock&& other) noexcept;
  PidLock& operator=(PidLock&& other) noexcept;
  PidLock(const PidLock&) = delete;
  PidLock& operator=(const PidLock&) = delete;
  ~PidLock();  // empties the file and releases the lock

  const std::filesystem::path& path() const { return path_; }

  // The pid written in a lock file (0 when empty or unreadable): for messages and tests.
  static pid_t ReadHolder(const std::filesystem::path& path);

 private:
  PidLock(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  void Release();

  int fd_ = -1;
  std::filesystem::path path_;
};

}  // namespace mw
