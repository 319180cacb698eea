// The server's runtime directory (SPEC §20): where each llama.cpp engine
// listens on its Unix socket. Only the server's user can enter it (mode
// 0700, owned by the effective uid), so neither a web page, a port scan nor
// another local user can reach an engine; the server reaches it through its
// /v1 proxy.
#pragma once

#include <string>

#include "common/status.h"

namespace mw {

// The longest name Supervisor gives a file in the directory ("4294967295.sock").
inline constexpr size_t kRuntimeNameRoom = 16;

struct RuntimeDir {
  std::string path;
  bool temporary = false;  // made by us under $XDG_RUNTIME_DIR or /tmp: remove it at the end
};

// Prepares `preferred` (e.g. <data_dir>/run): creates it (mode 0700) or, if
// it exists, checks that it is a real directory (not a link) owned by this
// user and sets its mode to 0700, then removes the sockets earlier runs left
// in it (*.sock: the data directory's lock says no other server uses them).
// When `preferred` is empty, or too long for a socket path (sun_path holds
// 107 bytes), a fresh directory is made with mkdtemp under $XDG_RUNTIME_DIR
// or /tmp ("mw-XXXXXX", 0700) instead. kFailedPrecondition if `preferred`
// belongs to another user or is not a directory; kInternal if nothing can be
// created.
Result<RuntimeDir> PrepareRuntimeDir(const std::string& preferred);

// Removes the sockets in `dir` and, if it is temporary, the directory.
// Never fails (best effort).
void RemoveRuntimeDir(const RuntimeDir& dir);

}  // namespace mw
