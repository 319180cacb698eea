// app/event_subscribers.h: who hears the server's events (the SSE stream's
// `model`, `status` and `environment`); a collaborator of ModelService.
//
// Contract: Publish hands one event to every subscriber, on the caller's
// thread, one Publish at a time (its lock is held while the listeners run,
// so events reach each listener in the order they were published; a
// listener must not call back into this object). Thread-safe; its own lock.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include "api/model_api.h"

namespace mw::app {

class EventSubscribers {
 public:
  int64_t Subscribe(api::EventListener listener) {
    std::lock_guard lock(mu_);
    const int64_t id = next_id_++;
    listeners_[id] = std::move(listener);
    return id;
  }
  void Unsubscribe(int64_t id) {
    std::lock_guard lock(mu_);
    listeners_.erase(id);
  }
  void Publish(const api::Event& event) {
    std::lock_guard lock(mu_);
    for (auto& [id, listener] : listeners_) listener(event);
  }

 private:
  std::mutex mu_;
  int64_t next_id_ = 1;
  std::map<int64_t, api::EventListener> listeners_;
};

}  // namespace mw::app
