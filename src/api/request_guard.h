// api/request_guard.h: the browser-attack checks every request passes before
// any route sees it (SPEC §9.1). Pure: no HTTP library, no I/O; thread-safe.
//
// Why: a server on 127.0.0.1 is reachable from every web page the user opens.
//   - A page can send a "simple" cross-origin request (text/plain or form
//     POST, no CORS preflight): the Content-Type check keeps such bodies from
//     reaching a handler, and the Origin check refuses any foreign Origin on a
//     state-changing method (and on the event stream, which leaks data).
//   - DNS rebinding points an attacker's name at 127.0.0.1, making the
//     attacker's page same-origin with us: the Host check refuses every
//     request whose Host is not one of our own names.
//
// Every value is checked as it was sent: httplib 0.54 never percent-decodes
// header values, and a Host is a plain name ([A-Za-z0-9._-]) or a bracketed
// IPv6 literal followed by nothing but ":digits" (SPEC §20). Messages echo at
// most kMaxEchoBytes of a value.
//
// CheckRequest, in this order (first failure wins):
//   1. Host (any method, any path): the name before the port must be
//      `localhost`, a loopback address, the bound address, one of
//      local_addresses (when bound to a wildcard), or in allowed_hosts ("*"
//      allows any). A request without Host (HTTP/1.0 tools) passes: browsers
//      always send one. -> 403 host_not_allowed
//   2. Origin (POST/PUT/PATCH/DELETE anywhere, and GET /api/events): an
//      Origin header must be our own origin ("http://" + the Host header) or
//      in allowed_origins; "null" never is. Without Origin, a
//      Sec-Fetch-Site other than same-origin/none is refused too.
//      -> 403 origin_not_allowed
//   3. Content type: a request with a body must be application/json (any
//      parameters, e.g. charset). -> 415 unsupported_media_type
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/errors.h"

namespace mw::api {

struct GuardOptions {
  std::string bound_host;                    // the address the server listens on
  std::vector<std::string> local_addresses;  // this machine's addresses (used when bound_host is a wildcard)
  std::vector<std::string> allowed_hosts;    // lower case; "*" = any
  std::vector<std::string> allowed_origins;  // exact "scheme://host[:port]"
};

// What the guard looks at; absent headers are std::nullopt.
struct RequestFacts {
  std::string_view method;
  std::string_view path;
  std::optional<std::string_view> host;
  std::optional<std::string_view> origin;
  std::optional<std::string_view> sec_fetch_site;
  std::optional<std::string_view> content_type;
  bool has_body = false;
};

struct Refusal {
  ErrorKind kind;
  std::string message;
};

// nullopt: the request may go on. See the contract above.
std::optional<Refusal> CheckRequest(const GuardOptions& options, const RequestFacts& request);

// True when `origin` is in allowed_origins: such a browser app gets CORS headers.
bool IsCorsOrigin(const GuardOptions& options, std::string_view origin);

// The host name of a Host header without its port, lower case, without a
// trailing dot ("[::1]:8080" -> "::1", "LocalHost.:80" -> "localhost").
std::string HostName(std::string_view host_header);

}  // namespace mw::api
