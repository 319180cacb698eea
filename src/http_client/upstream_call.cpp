#include "http_client/upstream_call.h"

namespace mw::http {

UpstreamCall::UpstreamCall(Options options) : options_(std::move(options)) {
  thread_ = std::thread([this] { Run(); });
}

UpstreamCall::~UpstreamCall() {
  Cancel();
  if (thread_.joinable()) thread_.join();
}

void UpstreamCall::Run() {
  using std::chrono::seconds;
  auto finish = [this](const Status& st) {
    std::lock_guard lock(mu_);
    done_ = true;
    if (!st.ok() && !cancelled_) error_ = st.message().empty() ? "engine call failed" : st.message();
    cv_.notify_all();
  };
  Result<std::unique_ptr<HttpStream>> connected =
      HttpStream::Connect(options_.engine, seconds(options_.connect_timeout_s));
  if (!connected.ok()) return finish(connected.status());
  std::shared_ptr<HttpStream> stream = std::move(connected).value();
  {
    std::lock_guard lock(mu_);
    if (cancelled_) return finish(Status::Ok());
    stream_ = stream;  // Cancel() shuts it down from now on
  }
  if (Status st = stream->Send("POST", options_.path, options_.body, seconds(60), options_.headers); !st.ok()) return finish(st);
  if (Status st = stream->ReadHead(seconds(options_.read_timeout_s)); !st.ok()) return finish(st);
  {
    std::lock_guard lock(mu_);
    head_ = true;
    status_ = stream->status();
    content_type_ = stream->content_type();
    headers_ = stream->headers();
    cv_.notify_all();
  }
  for (bool end = false; !end;) {
    std::string piece;
    if (Status st = stream->Read(&piece, &end, seconds(options_.read_timeout_s)); !st.ok()) return finish(st);
    if (piece.empty()) continue;
    std::unique_lock lock(mu_);
    // Beyond max_buffered the engine is not read: it waits (TCP/socket back-pressure).
    cv_.wait(lock, [&] { return cancelled_ || buffered_ < options_.max_buffered; });
    if (cancelled_) break;
    buffered_ += piece.size();
    pieces_.push_back(std::move(piece));
    cv_.notify_all();
  }
  finish(Status::Ok());
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

std::vector<std::pair<std::string, std::string>> UpstreamCall::headers() const {
  std::lock_guard lock(mu_);
  return headers_;
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
  return done_ && !cancelled_ && !error_.empty();
}

std::string UpstreamCall::error_text() const {
  std::lock_guard lock(mu_);
  return error_;
}

void UpstreamCall::Cancel() {
  std::shared_ptr<HttpStream> stream;
  {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
    if (done_) return;
    stream = stream_;
  }
  if (stream) stream->Shutdown();  // a blocked read or send returns at once
}

}  // namespace mw::http
