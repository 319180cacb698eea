// libFuzzer target: raw request heads (and what follows them on a kept-alive
// connection) through cpp-httplib 0.54.1's own request parser at our caps
// (cmake/dependencies.cmake), then through the very checks the server runs
// before any route (api/request_head.h, api/request_guard.h), SPEC §20.
//
// Input: the bytes a client sends on one connection, as they are. They are
// served by httplib::Server::process_request from an in-memory stream, one
// request after another as on a kept-alive connection (at most 8). Checked:
// no crash/UB; the parser never reads more than the caps allow for one
// request head (+ the body limit); a request that reaches the checks has at
// most 64 header lines, each within 8 KiB, and no CR, LF or NUL in any value;
// and a request that passes the checks has a Host (when it sent one) that is
// a plain name of ours, a body only with a JSON type and a length.
#include <httplib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "api/request_guard.h"
#include "api/request_head.h"
#include "fuzz_support.h"

namespace {

constexpr size_t kBodyLimit = 4096;
// One request: the request line and 64 header lines, each read up to
// CPPHTTPLIB_MAX_LINE_LENGTH, the blank line, then a body within the limit
// (chunked framing adds at most its own lines).
constexpr size_t kMaxReadPerRequest = 66 * CPPHTTPLIB_MAX_LINE_LENGTH + 2 * kBodyLimit + 4096;

// A connection whose peer sent `data` and then closed its end.
class MemoryStream final : public httplib::Stream {
 public:
  explicit MemoryStream(std::string_view data) : data_(data) {}
  bool is_readable() const override { return pos_ < data_.size(); }
  bool wait_readable() const override { return true; }
  bool wait_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, data_.size() - pos_);
    std::memcpy(ptr, data_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char*, size_t size) override { return static_cast<ssize_t>(size); }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 40000;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 8080;
  }
  socket_t socket() const override { return INVALID_SOCKET; }
  time_t duration() const override { return 0; }
  size_t consumed() const { return pos_; }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

// process_request is protected: the server's per-connection loop, minus the socket.
class Parser : public httplib::Server {
 public:
  using httplib::Server::process_request;
};

bool CleanValue(const std::string& value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos;
}

mw::api::GuardOptions Options() {
  mw::api::GuardOptions options;
  options.bound_host = "127.0.0.1";
  return options;
}

Parser& TheParser() {
  static Parser* parser = [] {
    auto* p = new Parser();
    p->set_payload_max_length(kBodyLimit);
    p->set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
      MW_FUZZ_CHECK(req.headers.size() <= CPPHTTPLIB_HEADER_MAX_COUNT);
      for (const auto& [name, value] : req.headers) {
        MW_FUZZ_CHECK(name.size() + value.size() <= CPPHTTPLIB_HEADER_MAX_LENGTH);
        MW_FUZZ_CHECK(CleanValue(name) && CleanValue(value));
      }
      res.status = 204;
      if (mw::api::CheckFraming(req)) return httplib::Server::HandlerResponse::Handled;
      const mw::api::RequestFacts facts = mw::api::FactsOf(req);
      static const mw::api::GuardOptions options = Options();
      if (mw::api::CheckRequest(options, facts)) return httplib::Server::HandlerResponse::Handled;
      // It passed every check before routing.
      if (facts.host) {
        const std::string name = mw::api::HostName(*facts.host);
        MW_FUZZ_CHECK(name == "localhost" || name == "127.0.0.1" || name.rfind("127.", 0) == 0 || name == "::1" ||
                      name.rfind("::ffff:", 0) == 0 || name.find(':') != std::string::npos);
        MW_FUZZ_CHECK(facts.host->find('%') == std::string_view::npos);
      }
      if (facts.has_body) MW_FUZZ_CHECK(facts.content_type.has_value() && req.has_header("Content-Length"));
      if (req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
        MW_FUZZ_CHECK(req.get_header_value_count("Content-Length") == 1);
      }
      MW_FUZZ_CHECK(!req.has_header("Transfer-Encoding"));
      return httplib::Server::HandlerResponse::Handled;
    });
    return p;
  }();
  return *parser;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  MemoryStream stream(std::string_view(reinterpret_cast<const char*>(data), size));
  Parser& parser = TheParser();
  for (int i = 0; i < 8 && stream.is_readable(); ++i) {
    const size_t before = stream.consumed();
    bool closed = false;
    const bool ok = parser.process_request(stream, "127.0.0.1", 40000, "127.0.0.1", 8080, /*close_connection=*/i == 7,
                                           closed, nullptr);
    MW_FUZZ_CHECK(stream.consumed() - before <= kMaxReadPerRequest);
    if (!ok || closed) break;
  }
  return 0;
}
