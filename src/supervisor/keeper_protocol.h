// The private contract between ChildProcess (in the server) and mw-keeper.
// Nothing outside src/supervisor/ includes this file.
//
// The server starts `mw-keeper --parent-pid P [--protocol] [--cwd DIR] -- PROGRAM ARGS...`
// with these descriptors:
//   0  read end of the program's stdin pipe
//   1  write end of the output pipe (stdout and stderr share it)
//   2  the same output pipe
//   3  write end of the protocol pipe (or /dev/null without --protocol)
//   4  read end of the lifeline pipe: the server holds the only write end
//      (O_CLOEXEC), so EOF here means "the server is gone or wants every
//      process of this child killed now"
//   5  write end of the status pipe, on which the keeper writes lines:
//        "started <pid>"            the program runs (pid == its process group)
//        "exec-failed <errno>"      the program could not be executed
//        "exited <code>"            the program exited
//        "signaled <sig> <core>"    the program died of a signal (core 0|1)
//      EOF on the status pipe means the keeper has exited.
// Signals the server sends to the keeper:
//   SIGTERM  forward SIGTERM to the program's process group (polite kill)
#pragma once

namespace mw::supervisor_internal {

inline constexpr int kKeeperLifelineFd = 4;
inline constexpr int kKeeperStatusFd = 5;
inline constexpr int kKeeperFirstFreeFd = 6;

inline constexpr const char* kStatusStarted = "started";
inline constexpr const char* kStatusExecFailed = "exec-failed";
inline constexpr const char* kStatusExited = "exited";
inline constexpr const char* kStatusSignaled = "signaled";

}  // namespace mw::supervisor_internal
