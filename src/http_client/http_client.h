// http_client/http_client.h: a minimal blocking HTTP client for the
// command-line client (cli/), so that httplib stays out of cli/. One of the
// client room's three (see loopback_http.h).
//
// Send() returns the response whatever its HTTP status (the caller decides
// what a 4xx means); an error Status only when no response came:
// kUnavailable (cannot connect: server not running?), kDeadlineExceeded
// (read timeout), kInvalidArgument (bad URL). Not thread-safe: one client per thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace mw::http {

struct HttpResponse {
  int status = 0;
  std::string body;
  std::string content_type;
};

class HttpClient {
 public:
  // `base_url` like "http://127.0.0.1:8080" (http only). kInvalidArgument otherwise.
  [[nodiscard]] static Result<std::unique_ptr<HttpClient>> Create(std::string_view base_url, std::string api_key,
                                                                  std::chrono::seconds read_timeout);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // method: GET, POST, PATCH, DELETE. `body` is sent as application/json when non-empty.
  [[nodiscard]] Result<HttpResponse> Send(std::string_view method, const std::string& path,
                                          const std::string& body = {});
  // POSTs `body` and hands each piece of a 200 answer to `on_data` as it
  // arrives (return false to stop: the connection is closed, which cancels a
  // generation on the server). A non-200 answer is returned whole in .body
  // and not passed to on_data. A stop (on_data false, or Stop()) is not an
  // error. Errors as Send().
  [[nodiscard]] Result<HttpResponse> PostStreaming(const std::string& path, const std::string& body,
                                                   const std::function<bool(std::string_view)>& on_data);
  // Aborts a request in progress on another thread (closes its connection). Thread-safe.
  void Stop();
  const std::string& base_url() const { return base_url_; }

 private:
  struct Impl;
  HttpClient(std::unique_ptr<Impl> impl, std::string base_url);
  std::unique_ptr<Impl> impl_;
  std::string base_url_;
};

}  // namespace mw::http
