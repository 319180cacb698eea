// http_client/loopback_http.h — the client room (src/http_client/) holds
// every HTTP client modelwarden runs against a loopback peer:
//   loopback_http.h  (this file) the engine client: Unix sockets and
//                    127.0.0.1 TCP, HTTP/1.1 without an HTTP library;
//   upstream_call.h  the /v1 proxy's call to an engine, on its own thread;
//   http_client.h    the command-line client's blocking client to
//                    `modelwarden serve` (over httplib).
// The outside world (Hugging Face downloads) goes through libcurl in hub/,
// never through here.
//
// This file, without an HTTP library: where a loaded model's engine answers (EngineEndpoint: a Unix socket, or a
// 127.0.0.1 port plus a per-load secret), a free port to hand a command
// engine, and a small HTTP/1.1 client for the engine: a GET that only reads
// the status (health checks), a request that reads the whole answer (the
// worker's first decode, /props), and a stream that hands the answer's body
// over as it arrives (the /v1 proxy).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace mw {

// Where an engine answers HTTP (SPEC §20): llama.cpp engines on a Unix
// socket in the server's private runtime directory; command engines on a
// 127.0.0.1 port, with the per-load secret every request carries as
// "Authorization: Bearer <api_key>" (empty: none).
// A fleet peer (SPEC §21) is reached the same way at its advertise_url's
// host and port, with the fleet's API key.
struct EngineEndpoint {
  std::string socket_path = {};  // set: a Unix socket (port is then unused)
  int port = 0;                  // TCP port when socket_path is empty
  std::string api_key = {};      // never logged
  std::string host = {};         // TCP host (IPv4 address or name); empty: 127.0.0.1

  bool empty() const { return socket_path.empty() && port <= 0; }
  // "unix:PATH" or "HOST:PORT" (without the key), for logs and errors.
  std::string Describe() const;
  bool operator==(const EngineEndpoint&) const = default;
};

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and
// released). kUnavailable if no socket could be bound. Thread-safe.
Result<int> PickFreeLoopbackPort();

// GET `path` at `at` (HTTP/1.1, Connection: close); returns the response
// status code. kUnavailable if nothing listens or the answer is not HTTP,
// kDeadlineExceeded after `timeout`. Thread-safe.
Result<int> HttpGetStatus(const EngineEndpoint& at, std::string_view path, std::chrono::milliseconds timeout);

struct HttpAnswer {
  int status = 0;
  std::string body;  // Content-Length or until EOF; chunked bodies are joined
};

// `method` `path` at `at`, with `body` as application/json when not empty;
// reads the whole answer. kUnavailable if nothing listens, the connection
// breaks or the answer is not HTTP; kResourceExhausted for an answer over
// `max_bytes`; kDeadlineExceeded after `timeout`. Thread-safe.
Result<HttpAnswer> HttpRequest(const EngineEndpoint& at, std::string_view method, std::string_view path,
                               std::string_view body, std::chrono::milliseconds timeout,
                               size_t max_bytes = 4 << 20);

// One request whose answer's body is read piece by piece, as it arrives
// (chunked encoding decoded). Use: Connect, Send, ReadHead, then Read until
// *end. Each call is used by one thread at a time, except Shutdown(), which
// any thread may call at any moment to make a blocked call return (kAborted).
class HttpStream {
 public:
  // kUnavailable if nothing listens at `at`, kDeadlineExceeded after `timeout`.
  static Result<std::unique_ptr<HttpStream>> Connect(const EngineEndpoint& at, std::chrono::milliseconds timeout);
  ~HttpStream();
  HttpStream(const HttpStream&) = delete;
  HttpStream& operator=(const HttpStream&) = delete;

  // Sends the request (HTTP/1.1, Connection: close, the endpoint's key, and
  // `body` as application/json when not empty). `extra_headers`: more header
  // lines, each ending in "\r\n".
  Status Send(std::string_view method, std::string_view path, std::string_view body,
              std::chrono::milliseconds timeout, std::string_view extra_headers = {});
  // Reads the answer's status line and headers (at most 64 KiB).
  Status ReadHead(std::chrono::milliseconds timeout);
  int status() const { return status_; }
  const std::string& content_type() const { return content_type_; }  // lower case
  // Every header of the answer: names in lower case, values as sent.
  std::vector<std::pair<std::string, std::string>> headers() const;
  // Appends the body bytes that have arrived (waiting up to `timeout` for
  // some) to *out; sets *end once the whole body was handed out.
  // kDeadlineExceeded when nothing came in time, kUnavailable when the
  // connection broke before the end of the body.
  Status Read(std::string* out, bool* end, std::chrono::milliseconds timeout);
  // Shuts the connection down (idempotent, thread-safe).
  void Shutdown();

 private:
  enum class Framing { kLength, kChunked, kUntilClose };
  enum class ChunkState { kSize, kData, kDataEnd, kDone };
  HttpStream(int fd, EngineEndpoint at) : fd_(fd), at_(std::move(at)) {}
  // Reads more bytes into in_; sets *eof at the end of the stream.
  Status Fill(int64_t deadline, bool* eof);
  // Moves what in_ holds of the body to *out.
  Status Decode(std::string* out, bool* end);

  int fd_;
  EngineEndpoint at_;
  std::atomic<bool> shut_{false};
  std::string in_;  // bytes received and not yet decoded
  int status_ = 0;
  std::string content_type_;
  std::string head_;  // the answer's header lines as sent (after the status line)
  Framing framing_ = Framing::kUntilClose;
  uint64_t left_ = 0;  // kLength: body bytes still to come; kChunked: of the current chunk
  ChunkState chunk_ = ChunkState::kSize;
  bool finished_ = false;
};

}  // namespace mw
