#include "http_client/http_client.h"

#include <httplib.h>

#include <atomic>
#include <optional>

namespace mw::http {
namespace {

// The two ways a request to the server fails without an answer, worded once
// for Send() and PostStreaming().
Status NoAnswer(const std::string& base_url) {
  return DeadlineExceededError("no answer from " + base_url + " (read timed out or connection closed)");
}

Status Unreachable(const std::string& base_url, httplib::Error err) {
  return UnavailableError("cannot reach the modelwarden server at " + base_url + " (" + httplib::to_string(err) +
                          "). Is `modelwarden serve` running? Set --url or MODELWARDEN_URL.");
}

}  // namespace

struct HttpClient::Impl {
  Impl(const std::string& host, int port) : client(host, port) {}
  httplib::Client client;
  std::atomic<bool> stopping{false};  // Stop() was called during PostStreaming
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl, std::string base_url)
    : impl_(std::move(impl)), base_url_(std::move(base_url)) {}
HttpClient::~HttpClient() = default;

Result<std::unique_ptr<HttpClient>> HttpClient::Create(std::string_view base_url, std::string api_key,
                                                       std::chrono::seconds read_timeout) {
  std::string url(base_url);
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0) {
    return InvalidArgumentError("server URL must start with http:// (got '" + url + "')");
  }
  std::string rest = url.substr(kScheme.size());
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos) return InvalidArgumentError("server URL must not have a path: " + url);
  std::string host = rest;
  int port = 80;
  std::optional<std::string> port_text;
  if (!rest.empty() && rest.front() == '[') {
    // An IPv6 literal, "[::1]" or "[::1]:8080": the address is what the brackets hold.
    size_t close = rest.find(']');
    if (close == std::string::npos) return InvalidArgumentError("unclosed '[' in server URL: " + url);
    host = rest.substr(1, close - 1);
    std::string after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return InvalidArgumentError("bad port in server URL: " + url);
      port_text = after.substr(1);
    }
  } else if (size_t colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port_text = rest.substr(colon + 1);
  }
  if (port_text) {
    if (port_text->empty() || port_text->size() > 5 ||
        port_text->find_first_not_of("0123456789") != std::string::npos) {
      return InvalidArgumentError("bad port in server URL: " + url);
    }
    port = std::stoi(*port_text);
  }
  if (host.empty()) return InvalidArgumentError("no host in server URL: " + url);
  auto impl = std::make_unique<Impl>(host, port);
  impl->client.set_connection_timeout(std::chrono::seconds(5));
  impl->client.set_read_timeout(read_timeout);
  impl->client.set_write_timeout(std::chrono::seconds(30));
  if (!api_key.empty()) impl->client.set_bearer_token_auth(api_key);
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(impl), "http://" + rest));
}

Result<HttpResponse> HttpClient::Send(std::string_view method, const std::string& path, const std::string& body) {
  httplib::Result result{nullptr, httplib::Error::Unknown};
  auto& c = impl_->client;
  const char* type = "application/json";
  if (method == "GET") {
    result = c.Get(path);
  } else if (method == "POST") {
    result = c.Post(path, body, type);
  } else if (method == "PATCH") {
    result = c.Patch(path, body, type);
  } else if (method == "DELETE") {
    result = c.Delete(path);
  } else {
    return InvalidArgumentError("unsupported HTTP method " + std::string(method));
  }
  if (!result) {
    httplib::Error err = result.error();
    if (err == httplib::Error::Read) return NoAnswer(base_url_);
    return Unreachable(base_url_, err);
  }
  HttpResponse response;
  response.status = result->status;
  response.body = result->body;
  response.content_type = result->get_header_value("Content-Type");
  return response;
}

Result<HttpResponse> HttpClient::PostStreaming(const std::string& path, const std::string& body,
                                               const std::function<bool(std::string_view)>& on_data) {
  HttpResponse response;
  bool stopped = false;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.headers = {{"Content-Type", "application/json"}, {"Accept", "text/event-stream"}};
  req.body = body;
  req.response_handler = [&](const httplib::Response& res) {
    response.status = res.status;
    response.content_type = res.get_header_value("Content-Type");
    return true;
  };
  req.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
    if (response.status != 200) {
      response.body.append(data, length);
      return true;
    }
    if (!on_data(std::string_view(data, length))) {
      stopped = true;
      return false;
    }
    return true;
  };
  impl_->stopping = false;
  auto result = impl_->client.send(req);
  stopped = stopped || impl_->stopping;
  if (!result && !stopped && result.error() != httplib::Error::Canceled) {
    if (response.status != 0 && result.error() == httplib::Error::Read) {
      return DeadlineExceededError("the answer from " + base_url_ + " broke off (connection closed)");
    }
    if (response.status == 0 && result.error() == httplib::Error::Read) return NoAnswer(base_url_);
    return Unreachable(base_url_, result.error());
  }
  return response;
}

void HttpClient::Stop() {
  impl_->stopping = true;
  impl_->client.stop();
}

}  // namespace mw::http
