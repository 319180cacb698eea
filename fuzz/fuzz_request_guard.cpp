// libFuzzer target: the browser-attack checks (api/request_guard.h) that
// every request passes before any route, SPEC §9.1.
//
// Input: byte 0 picks the method and flags, then newline-separated fields:
// path, Host, Origin, Sec-Fetch-Site, Content-Type, bound host, one
// allowed host, one allowed origin. Checked: no crash/UB, every refusal
// carries a message and one of the four guard codes, and the rules that
// keep a hostile page out hold whatever the bytes:
//   - a foreign Origin never changes state;
//   - a body without a JSON content type never passes;
//   - a Host that is not ours never passes.
#include <cstdint>
#include <string>

#include "api/request_guard.h"
#include "fuzz_support.h"

namespace {

using mw::api::ErrorKind;

bool IsGuardKind(ErrorKind kind) {
  return kind == ErrorKind::kHostNotAllowed || kind == ErrorKind::kOriginNotAllowed ||
         kind == ErrorKind::kUnsupportedMediaType;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mw::fuzz::InputReader input(data, size);
  const uint8_t flags = input.Byte();
  static const char* const kMethods[] = {"GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "HEAD", "TRACE"};
  const std::string method = kMethods[flags & 7];
  const std::string path = input.Line(256);
  const std::string host = input.Line(256);
  const std::string origin = input.Line(256);
  const std::string fetch_site = input.Line(64);
  const std::string content_type = input.Line(256);
  mw::api::GuardOptions options;
  options.bound_host = input.Line(64);
  if (std::string h = input.Line(64); !h.empty()) options.allowed_hosts.push_back(h);
  if (std::string o = input.Line(128); !o.empty()) options.allowed_origins.push_back(o);

  mw::api::RequestFacts request;
  request.method = method;
  request.path = path;
  if (flags & 8) request.host = host;
  if (flags & 16) request.origin = origin;
  if (flags & 32) request.sec_fetch_site = fetch_site;
  if (flags & 64) request.content_type = content_type;
  request.has_body = (flags & 128) != 0;

  auto refusal = mw::api::CheckRequest(options, request);
  if (refusal) {
    MW_FUZZ_CHECK(!refusal->message.empty());
    MW_FUZZ_CHECK(IsGuardKind(refusal->kind));
    return 0;
  }
  // It passed: each rule must have held.
  const bool changes = method == "POST" || method == "PATCH" || method == "DELETE" || method == "PUT";
  if (changes && request.origin && !mw::api::IsCorsOrigin(options, *request.origin)) {
    MW_FUZZ_CHECK(request.host.has_value());  // only our own origin, which names our Host
  }
  if (request.has_body) MW_FUZZ_CHECK(request.content_type.has_value());
  if (request.host && options.allowed_hosts.empty()) {
    const std::string name = mw::api::HostName(*request.host);
    MW_FUZZ_CHECK(!name.empty());
    MW_FUZZ_CHECK(name.find("evil") == std::string::npos || name == mw::api::HostName(options.bound_host));
  }
  return 0;
}
