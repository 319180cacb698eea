#include "api/event_hub.h"

#include <algorithm>

namespace mw::api {

std::vector<std::string> EventHub::Subscriber::Wait(std::chrono::milliseconds timeout, bool* closed) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [this] { return closed_ || !frames_.empty(); });
  std::vector<std::string> out(std::make_move_iterator(frames_.begin()), std::make_move_iterator(frames_.end()));
  frames_.clear();
  *closed = closed_;
  return out;
}

std::shared_ptr<EventHub::Subscriber> EventHub::Add() {
  std::lock_guard lock(mu_);
  if (closed_ || subscribers_.size() >= max_subscribers_) return nullptr;
  auto sub = std::make_shared<Subscriber>();
  subscribers_.push_back(sub);
  return sub;
}

void EventHub::Remove(const std::shared_ptr<Subscriber>& subscriber) {
  std::lock_guard lock(mu_);
  subscribers_.erase(std::remove(subscribers_.begin(), subscribers_.end(), subscriber), subscribers_.end());
}

void EventHub::Publish(const std::string& frame) {
  std::lock_guard lock(mu_);
  for (auto& sub : subscribers_) {
    {
      std::lock_guard sub_lock(sub->mu_);
      if (sub->frames_.size() >= max_queued_) sub->frames_.pop_front();
      sub->frames_.push_back(frame);
    }
    sub->cv_.notify_one();
  }
}

void EventHub::Close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  for (auto& sub : subscribers_) {
    {
      std::lock_guard sub_lock(sub->mu_);
      sub->closed_ = true;
    }
    sub->cv_.notify_all();
  }
}

size_t EventHub::size() const {
  std::lock_guard lock(mu_);
  return subscribers_.size();
}

}  // namespace mw::api
