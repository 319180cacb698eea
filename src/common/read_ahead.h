// Read-ahead of a model file (SPEC §16): asks the kernel to start reading a
// file into the page cache now, so a load that maps it a moment later (the
// worker's exec, dynamic linking and backend discovery, the durable
// `testing` commit, all run in between) finds more of it in memory.
#pragma once

#include <string>

#include "common/status.h"

namespace mw {

// posix_fadvise(POSIX_FADV_WILLNEED) over the whole file, 128 KiB at a time:
// the kernel queues the reads and returns (on a cold cache it may block while
// it submits them). Pages already cached cost only their lookup.
// kNotFound / kPermissionDenied / kInternal when the file cannot be opened or
// the advice is refused.
Status ReadAhead(const std::string& path);

// ReadAhead on a detached thread, so the caller never waits for the disk;
// failures are only logged (the load itself reports a missing file).
void StartReadAhead(const std::string& path);

}  // namespace mw
