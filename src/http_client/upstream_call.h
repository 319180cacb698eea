// http_client/upstream_call.h: the upstream call of the /v1 reverse proxy
// (one of the client room's three, see loopback_http.h).
//
// UpstreamCall   one HTTP request to a model's engine at its EngineEndpoint
//                (a Unix socket, or a 127.0.0.1 port with the per-load key),
//                over loopback_http.h's HttpStream (written when the server
//                used Debian's httplib 0.11, which has no Unix-socket client),
//                run on its own thread so that the request thread can watch
//                its client while the engine works; the response head and
//                body pieces are handed over as they arrive (bounded buffer).
//                Cancel() closes the connection to the engine, which is how
//                an engine (llama.cpp's server included) learns that the
//                client went away and stops the generation.
//                The same call carries a /v1 request or a load to a fleet
//                peer (SPEC §21: any node answers): `engine` is then the
//                peer's address and the fleet's key, with `headers` added
//                and the answer's headers kept.
// The served request's own socket (a client that hung up) is watched at the
// HTTP edge: api/client_connection.h.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "http_client/loopback_http.h"

namespace mw::http {

class UpstreamCall {
 public:
  struct Options {
    EngineEndpoint engine;
    std::string path;
    std::string body;  // POSTed as application/json
    std::string headers;  // more request header lines, each ending in "\r\n"
    int connect_timeout_s = 10;
    int read_timeout_s = 3600;  // a long prompt may take minutes before the first byte
    size_t max_buffered = 4 << 20;  // the engine is paused (not read) beyond this
  };
  enum class Read { kData, kTimeout, kEnd };

  explicit UpstreamCall(Options options);
  // Cancels and joins the thread. Never throws.
  ~UpstreamCall();
  UpstreamCall(const UpstreamCall&) = delete;
  UpstreamCall& operator=(const UpstreamCall&) = delete;

  // Waits up to `wait` for the response head or the end of the call; true
  // when one of them happened.
  bool WaitHead(std::chrono::milliseconds wait);
  bool has_head() const;
  int status() const;
  std::string content_type() const;
  // The answer's headers (names lower case), once has_head().
  std::vector<std::pair<std::string, std::string>> headers() const;
  // The next piece of the body (appended to *out), kTimeout after `wait`,
  // kEnd when the call is over and everything was handed out.
  Read Next(std::string* out, std::chrono::milliseconds wait);
  // After kEnd: true if the call failed (could not connect, the connection
  // broke, timed out) rather than ending normally or by Cancel().
  bool failed() const;
  std::string error_text() const;
  // Closes the connection to the engine (thread-safe, idempotent).
  void Cancel();

 private:
  void Run();

  Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool head_ = false;
  int status_ = 0;
  std::string content_type_;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::deque<std::string> pieces_;
  size_t buffered_ = 0;
  bool done_ = false;
  bool cancelled_ = false;
  std::string error_;                    // empty: no failure
  std::shared_ptr<HttpStream> stream_;   // set once connected
  std::thread thread_;  // last: started after everything above exists
};

}  // namespace mw::http
