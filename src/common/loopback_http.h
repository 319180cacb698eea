// Loopback HTTP, without an HTTP library (httplib stays in api/): a free
// port to hand an engine, a GET that only reads the status line (command
// engines' health_path, SPEC §5), and a small request/answer client the
// worker uses to talk to the llama.cpp server code it runs (/health, the
// first decode, /props).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
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

struct HttpAnswer {
  int status = 0;
  std::string body;  // Content-Length or until EOF; chunked bodies are joined
};

// `method` `path` on 127.0.0.1:`port` (HTTP/1.0, Connection: close), with
// `body` as application/json when not empty; reads the whole answer.
// kUnavailable if nothing listens, the connection breaks or the answer is not
// HTTP; kResourceExhausted for an answer over `max_bytes`; kDeadlineExceeded
// after `timeout`. Thread-safe.
Result<HttpAnswer> HttpRequest(int port, std::string_view method, std::string_view path, std::string_view body,
                               std::chrono::milliseconds timeout, size_t max_bytes = 4 << 20);

}  // namespace mw
