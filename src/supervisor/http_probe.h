// Loopback helpers for `command` engines: a free port to hand them, and a
// minimal HTTP GET to see their health endpoint answer (SPEC §5).
// No HTTP library here on purpose (httplib stays in api/).
#pragma once

#include <chrono>
#include <string_view>

#include "common/status.h"

namespace mw {

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and
// released). kUnavailable if no socket could be bound. Thread-safe.
Result<int> PickFreeLoopbackPort();

// GET `path` on 127.0.0.1:`port` with HTTP/1.0; returns the response status
// code. kUnavailable if nothing listens or the answer is not HTTP,
// kDeadlineExceeded after `timeout`. Thread-safe.
Result<int> HttpGetStatus(int port, std::string_view path, std::chrono::milliseconds timeout);

}  // namespace mw
