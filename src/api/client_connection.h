// api/client_connection.h: the socket of the request being served, to notice
// a client that hung up while nothing is being written to it (httplib's
// Request::is_connection_closed: a non-blocking peek). Used by the /v1 proxy
// while its upstream call (http_client/upstream_call.h) waits on the engine.
#pragma once

#include <httplib.h>

#include <functional>

namespace mw::api {

class ClientConnection {
 public:
  // httplib's own check of the request's socket (open and ours while it is served).
  explicit ClientConnection(const httplib::Request& req) : is_closed_(req.is_connection_closed) {}
  // True once the client closed its end (or the socket failed); false while
  // it is open (data waiting, e.g. a pipelined request, counts as open).
  bool Gone() const { return is_closed_ && is_closed_(); }

 private:
  std::function<bool()> is_closed_;
};

}  // namespace mw::api
