// api/openai_proxy.h: the reverse-proxy plumbing of /v1 (internal to api/).
//
// UpstreamCall   one HTTP request to a model's engine at its EngineEndpoint
//                (a Unix socket, or a 127.0.0.1 port with the per-load key),
//                over common/loopback_http.h's HttpStream (Debian's httplib
//                0.11 has no Unix-socket client), run on its own thread so
//                that the request thread can watch its client while the
//                engine works; the response head and body
//                pieces are handed over as they arrive (bounded buffer).
//                Cancel() closes the connection to the engine, which is how
//                an engine (llama.cpp's server included) learns that the
//                client went away and stops the generation.
// ClientConnection  the socket of the request being served, to notice a
//                client that hung up while nothing is being written to it
//                (httplib's Request::is_connection_closed: a non-blocking peek).
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/loopback_http.h"

namespace mw::api {

class UpstreamCall {
 public:
  struct Options {
    EngineEndpoint engine;
    std::string path;
    std::string body;  // POSTed as application/json
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
  std::deque<std::string> pieces_;
  size_t buffered_ = 0;
  bool done_ = false;
  bool cancelled_ = false;
  std::string error_;                    // empty: no failure
  std::shared_ptr<HttpStream> stream_;   // set once connected
  std::thread thread_;  // last: started after everything above exists
};

class ClientConnection {
 public:
  explicit ClientConnection(const httplib::Request& req);
  // True once the client closed its end (or the socket failed); false while
  // it is open (data waiting, e.g. a pipelined request, counts as open).
  bool Gone() const;

 private:
  std::function<bool()> is_closed_;
};

}  // namespace mw::api
