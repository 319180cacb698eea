// api/event_hub.h: fan-out of Server-Sent Events frames to connected streams.
//
// The core publishes events (ModelApi::Subscribe); the HTTP layer formats each
// as one SSE frame and Publish()es it here; every open /api/events stream has
// a Subscriber with its own bounded queue (a slow client loses its oldest
// frames rather than slowing the server down or growing without bound).
// Close() wakes every waiting stream so that shutdown never waits on a client.
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mw::api {

class EventHub {
 public:
  class Subscriber {
   public:
    // Waits up to `timeout` for frames. Returns the frames (possibly none on
    // timeout); sets *closed when the hub was closed.
    std::vector<std::string> Wait(std::chrono::milliseconds timeout, bool* closed);

   private:
    friend class EventHub;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::string> frames_;
    bool closed_ = false;
  };

  EventHub(size_t max_subscribers, size_t max_queued_frames)
      : max_subscribers_(max_subscribers), max_queued_(max_queued_frames) {}

  // nullptr when max_subscribers streams are already open or the hub is closed.
  std::shared_ptr<Subscriber> Add();
  void Remove(const std::shared_ptr<Subscriber>& subscriber);
  void Publish(const std::string& frame);
  void Close();
  size_t size() const;

 private:
  const size_t max_subscribers_;
  const size_t max_queued_;
  mutable std::mutex mu_;
  bool closed_ = false;
  std::vector<std::shared_ptr<Subscriber>> subscribers_;
};

}  // namespace mw::api
