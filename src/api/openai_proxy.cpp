#include "api/openai_proxy.h"

#include <sys/socket.h>
#include <unistd.h>


namespace mw::api {

UpstreamCall::UpstreamCall(Options options) : options_(std::move(options)), client_("127.0.0.1", options_.port) {
  client_.set_connection_timeout(options_.connect_timeout_s, 0);
  client_.set_read_timeout(options_.read_timeout_s, 0);
  client_.set_write_timeout(60, 0);
  client_.set_keep_alive(false);
  client_.set_tcp_nodelay(true);
  thread_ = std::thread([this] { Run(); });
}

UpstreamCall::~UpstreamCall() {
  Cancel();
  if (thread_.joinable()) thread_.join();
}

void UpstreamCall::Run() {
  httplib::Request req;
  req.method = "POST";
  req.path = options_.path;
  req.headers = {{"Content-Type", "application/json"}, {"Accept-Encoding", "identity"}};
  req.body = options_.body;
  req.response_handler = [this](const httplib::Response& res) {
    std::lock_guard lock(mu_);
    head_ = true;
    status_ = res.status;
    content_type_ = res.get_header_value("Content-Type");
    cv_.notify_all();
    return !cancelled_;
  };
  req.content_receiver = [this](const char* data, size_t length, uint64_t, uint64_t) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return cancelled_ || buffered_ < options_.max_buffered; });
    if (cancelled_) return false;
    pieces_.emplace_back(data, length);
    buffered_ += length;
    cv_.notify_all();
    return true;
  };
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  {
    std::lock_guard lock(mu_);
    if (cancelled_) {
      done_ = true;
      error_ = httplib::Error::Canceled;
      cv_.notify_all();
      return;
    }
  }
  try {
    client_.send(req, res, error);
  } catch (...) {
    error = httplib::Error::Unknown;
  }
  std::lock_guard lock(mu_);
  done_ = true;
  error_ = error;
  cv_.notify_all();
}

bool UpstreamCall::WaitHead(std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, wait, [&] { return head_ || done_; });
}

bool UpstreamCall::has_head() const {
  std::lock_guard lock(mu_);
  return head_;
}

int UpstreamCall::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

std::string UpstreamCall::content_type() const {
  std::lock_guard lock(mu_);
  return content_type_;
}

UpstreamCall::Read UpstreamCall::Next(std::string* out, std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, wait, [&] { return !pieces_.empty() || done_; });
  if (!pieces_.empty()) {
    while (!pieces_.empty()) {
      out->append(pieces_.front());
      buffered_ -= pieces_.front().size();
      pieces_.pop_front();
    }
    cv_.notify_all();
    return Read::kData;
  }
  return done_ ? Read::kEnd : Read::kTimeout;
}

bool UpstreamCall::failed() const {
  std::lock_guard lock(mu_);
  return done_ && !cancelled_ && error_ != httplib::Error::Success;
}

std::string UpstreamCall::error_text() const {
  std::lock_guard lock(mu_);
  return httplib::to_string(error_);
}

void UpstreamCall::Cancel() {
  {
    std::lock_guard lock(mu_);
    if (cancelled_ || done_) {
      cancelled_ = true;
      cv_.notify_all();
      return;
    }
    cancelled_ = true;
    cv_.notify_all();
  }
  client_.stop();  // shuts the socket down: a blocked read returns at once
}

ClientConnection::ClientConnection(const httplib::Request& req)
    // httplib's own check of the request's socket (open and ours while it is served).
    : is_closed_(req.is_connection_closed) {}

bool ClientConnection::Gone() const { return is_closed_ && is_closed_(); }

}  // namespace mw::api
