#include "api/request_head.h"

#include <string>
#include <string_view>

namespace mw::api {
namespace {

std::optional<std::string_view> HeaderView(const httplib::Request& req, const char* name) {
  auto it = req.headers.find(name);
  if (it == req.headers.end()) return std::nullopt;
  return std::string_view(it->second);
}

}  // namespace

std::optional<Refusal> CheckFraming(const httplib::Request& req) {
  size_t header_bytes = 0;
  for (const auto& [name, value] : req.headers) header_bytes += name.size() + value.size() + 4;
  if (header_bytes > kMaxHeaderBytes) {
    return Refusal{ErrorKind::kHeadersTooLarge,
                   "the request's headers exceed " + std::to_string(kMaxHeaderBytes / 1024) + " KiB together"};
  }
  // One value each: with two, the checks and the handlers could read different ones.
  for (const char* name : {"Host", "Origin", "Content-Type", "Content-Length", "Authorization"}) {
    if (req.get_header_value_count(name) > 1) {
      return Refusal{ErrorKind::kInvalidRequest, std::string("more than one ") + name + " header"};
    }
  }
  // Chunked bodies are refused unread: our clients (CLI, page, curl -d, the
  // OpenAI libraries) always send a length, and a length is checked against
  // the body limit before a byte of the body is read.
  if (req.has_header("Transfer-Encoding")) {
    return Refusal{ErrorKind::kLengthRequired,
                   "request bodies must be sent with a Content-Length header (chunked bodies are not accepted)"};
  }
  // A body without any length has no end but the connection's.
  if ((req.method == "POST" || req.method == "PUT" || req.method == "PATCH") && !req.has_header("Content-Length")) {
    return Refusal{ErrorKind::kLengthRequired, "a " + req.method + " request must carry a Content-Length header (0 for no body)"};
  }
  return std::nullopt;
}

RequestFacts FactsOf(const httplib::Request& req) {
  const std::string_view length = HeaderView(req, "Content-Length").value_or("");
  return RequestFacts{req.method,
                      req.path,
                      HeaderView(req, "Host"),
                      HeaderView(req, "Origin"),
                      HeaderView(req, "Sec-Fetch-Site"),
                      HeaderView(req, "Content-Type"),
                      !length.empty() && length.find_first_not_of('0') != std::string_view::npos};
}

}  // namespace mw::api
