#include "api/request_guard.h"

#include <arpa/inet.h>

#include <algorithm>

namespace mw::api {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsLoopbackAddress(const std::string& name) {
  if (name == "::1") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, name.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, name.c_str(), &v6) == 1) {
    // ::ffff:127.x.y.z
    static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::equal(kMapped, kMapped + 12, v6.s6_addr) && v6.s6_addr[12] == 127;
  }
  return false;
}

bool IsWildcard(std::string_view host) { return host == "0.0.0.0" || host == "::" || host == "[::]" || host.empty(); }

bool Contains(const std::vector<std::string>& list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

bool HostAllowed(const GuardOptions& options, std::string_view host_header) {
  if (Contains(options.allowed_hosts, "*")) return true;
  const std::string name = HostName(host_header);
  if (name.empty()) return false;
  if (name == "localhost" || IsLoopbackAddress(name)) return true;
  if (name == HostName(options.bound_host)) return true;
  if (IsWildcard(options.bound_host) && Contains(options.local_addresses, name)) return true;
  return Contains(options.allowed_hosts, name);
}

bool ChangesState(std::string_view method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
}

}  // namespace

std::string HostName(std::string_view host_header) {
  // Checked as sent (header values are never percent-decoded, SPEC §20): a
  // host is [A-Za-z0-9._-] or a bracketed IPv6 literal, and only ":digits"
  // may follow it. Anything else ("127.0.0.1%00.evil", "[::1].evil.example",
  // a NUL, a space) is no name at all.
  std::string_view h = Trim(host_header);
  std::string_view port;
  bool literal = false;
  if (!h.empty() && h.front() == '[') {
    size_t close = h.find(']');
    if (close == std::string_view::npos) return "";
    port = h.substr(close + 1);
    if (!port.empty() && port.front() != ':') return "";
    h = h.substr(1, close - 1);
    literal = true;
  } else if (std::count(h.begin(), h.end(), ':') == 1) {
    // One colon: name:port. More than one without brackets: a bare IPv6 literal.
    port = h.substr(h.find(':'));
    h = h.substr(0, h.find(':'));
  } else if (std::count(h.begin(), h.end(), ':') > 1) {
    literal = true;
  }
  if (!port.empty()) {
    port.remove_prefix(1);  // the ':'
    if (port.size() > 5 || std::any_of(port.begin(), port.end(), [](char c) { return c < '0' || c > '9'; })) return "";
  }
  for (char c : h) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    const bool ok = literal ? alnum || c == ':' || c == '.' : alnum || c == '.' || c == '-' || c == '_';
    if (!ok) return "";
  }
  std::string name = Lower(h);
  // Brackets hold an IPv6 literal; a trailing dot makes no sense there.
  if (!name.empty() && name.back() == '.') {
    if (literal) return "";
    name.pop_back();
  }
  return name;
}

bool IsCorsOrigin(const GuardOptions& options, std::string_view origin) {
  return !origin.empty() && Contains(options.allowed_origins, origin);
}

std::optional<Refusal> CheckRequest(const GuardOptions& options, const RequestFacts& request) {
  if (request.host && !HostAllowed(options, *request.host)) {
    return Refusal{ErrorKind::kHostNotAllowed,
                   "Host '" + Echo(*request.host) +
                       "' is not a name of this server (a DNS-rebinding page would use such a name); to serve it "
                       "under this name, add it to allowed_hosts in the configuration"};
  }
  const bool guarded = ChangesState(request.method) || (request.method == "GET" && request.path == "/api/events");
  if (guarded && request.origin) {
    const std::string origin(*request.origin);
    const bool own = request.host && Lower(origin) == "http://" + Lower(Trim(*request.host));
    if (!own && !IsCorsOrigin(options, origin)) {
      return Refusal{ErrorKind::kOriginNotAllowed,
                     "requests from the web page at '" + Echo(origin) +
                         "' may not change anything here or read the event stream; to allow a browser app, add its "
                         "origin to allowed_origins in the configuration"};
    }
  } else if (guarded && request.sec_fetch_site) {
    const std::string site = Lower(*request.sec_fetch_site);
    if (site != "same-origin" && site != "none") {
      return Refusal{ErrorKind::kOriginNotAllowed,
                     "a " + site + " browser request may not change anything here or read the event stream"};
    }
  }
  if (request.has_body) {
    std::string_view type = request.content_type.value_or("");
    type = Trim(type.substr(0, type.find(';')));
    if (Lower(type) != "application/json") {
      return Refusal{ErrorKind::kUnsupportedMediaType,
                     "request bodies must be JSON sent with 'Content-Type: application/json' (got " +
                         (request.content_type ? "'" + Echo(*request.content_type) + "'"
                                               : std::string("no Content-Type")) +
                         ")"};
    }
  }
  return std::nullopt;
}

}  // namespace mw::api
