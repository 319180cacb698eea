#include "serving/serving_gate.h"

#include <utility>

#include "common/duration.h"

namespace mw::serving {

Slot::Slot(Slot&& other) noexcept
    : gate_(std::exchange(other.gate_, nullptr)), model_(std::move(other.model_)), keep_alive_ms_(other.keep_alive_ms_) {}

Slot& Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    if (gate_ != nullptr) Release(gate_->clock_());
    gate_ = std::exchange(other.gate_, nullptr);
    model_ = std::move(other.model_);
    keep_alive_ms_ = other.keep_alive_ms_;
  }
  return *this;
}

Slot::~Slot() {
  if (gate_ != nullptr) Release(gate_->clock_());
}

void Slot::Release(int64_t now_ms) {
  if (gate_ == nullptr) return;
  ServingGate* gate = std::exchange(gate_, nullptr);
  gate->Release(model_, keep_alive_ms_, now_ms);
}

ServingGate::ServingGate(SlotStore& store, int64_t (*clock)(), std::function<void(int delta)> on_waiting)
    : store_(store), clock_(clock), on_waiting_(std::move(on_waiting)) {}
ServingGate::~ServingGate() { Close(); }

Result<Slot> ServingGate::Acquire(const std::string& model, const SlotLimits& limits, int64_t keep_alive_ms) {
  const int parallel = limits.parallel < 1 ? 1 : limits.parallel;
  std::unique_lock lock(store_.Mutex());
  if (closed_) return UnavailableError("the server is shutting down");
  ModelSlots& e = store_.SlotsOf(model);
  const bool must_wait = e.unloading || e.in_engine >= parallel || e.waiting > 0;
  if (must_wait && e.waiting >= limits.max_queue) {
    return ResourceExhaustedError("model '" + model + "' is busy: " + std::to_string(e.in_engine) +
                                  " request(s) running and " + std::to_string(e.waiting) +
                                  " waiting (max_queue " + std::to_string(limits.max_queue) + "); retry later");
  }
  const uint64_t ticket = e.next_ticket++;
  ++e.waiting;
  e.idle_deadline.reset();
  if (must_wait && on_waiting_) on_waiting_(+1);
  store_.Changed().wait(lock, [&] { return closed_ || (!e.unloading && e.in_engine < parallel && e.serving == ticket); });
  if (must_wait && on_waiting_) on_waiting_(-1);
  --e.waiting;
  ++e.serving;
  if (closed_) {
    store_.Changed().notify_all();
    return UnavailableError("the server is shutting down");
  }
  ++e.in_engine;
  e.idle_deadline.reset();
  store_.Changed().notify_all();  // the next ticket may fit too
  return Slot(this, model, keep_alive_ms);
}

void ServingGate::Release(const std::string& model, int64_t keep_alive_ms, int64_t now_ms) {
  std::lock_guard lock(store_.Mutex());
  ModelSlots* found = store_.FindSlots(model);
  if (found == nullptr) return;
  ModelSlots& e = *found;
  if (e.in_engine > 0) --e.in_engine;
  e.last_used = now_ms;
  if (e.in_engine == 0 && e.waiting == 0) {
    if (keep_alive_ms == kForever) {
      e.idle_deadline.reset();
    } else {
      e.idle_deadline = now_ms + keep_alive_ms;
    }
  }
  store_.Changed().notify_all();
}

std::vector<std::string> ServingGate::DueForUnload(int64_t now_ms) {
  std::lock_guard lock(store_.Mutex());
  std::vector<std::string> due;
  store_.ForEachSlots([&](const std::string& name, ModelSlots& e) {
    if (e.idle_deadline && *e.idle_deadline <= now_ms && e.in_engine == 0 && e.waiting == 0 && !e.unloading) {
      e.unloading = true;
      e.idle_deadline.reset();
      due.push_back(name);
    }
  });
  return due;
}

void ServingGate::EndUnload(const std::string& model) {
  std::lock_guard lock(store_.Mutex());
  if (auto* e = store_.FindSlots(model)) e->unloading = false;
  store_.Changed().notify_all();
}

std::optional<int64_t> ServingGate::NextDeadline() const {
  std::lock_guard lock(store_.Mutex());
  std::optional<int64_t> next;
  store_.ForEachSlots([&](const std::string&, ModelSlots& e) {
    if (e.idle_deadline && (!next || *e.idle_deadline < *next)) next = e.idle_deadline;
  });
  return next;
}

void ServingGate::ClearIdle(const std::string& model) {
  std::lock_guard lock(store_.Mutex());
  if (auto* e = store_.FindSlots(model)) e->idle_deadline.reset();
}

void ServingGate::MarkUsed(const std::string& model, int64_t now_ms) {
  std::lock_guard lock(store_.Mutex());
  store_.SlotsOf(model).last_used = now_ms;
}

bool ServingGate::TryBeginUnload(const std::string& model) {
  std::lock_guard lock(store_.Mutex());
  ModelSlots& e = store_.SlotsOf(model);
  if (e.in_engine > 0 || e.waiting > 0 || e.unloading) return false;
  e.unloading = true;
  e.idle_deadline.reset();
  return true;
}

ServingGate::Usage ServingGate::UsageOf(const std::string& model) const {
  std::lock_guard lock(store_.Mutex());
  const ModelSlots* e = store_.FindSlots(model);
  if (e == nullptr) return {};
  return {e->in_engine, e->waiting, e->unloading, e->idle_deadline, e->last_used};
}

int ServingGate::InEngine(const std::string& model) const {
  std::lock_guard lock(store_.Mutex());
  const ModelSlots* e = store_.FindSlots(model);
  return e == nullptr ? 0 : e->in_engine;
}

int ServingGate::Waiting(const std::string& model) const {
  std::lock_guard lock(store_.Mutex());
  const ModelSlots* e = store_.FindSlots(model);
  return e == nullptr ? 0 : e->waiting;
}

void ServingGate::Close() {
  std::lock_guard lock(store_.Mutex());
  closed_ = true;
  store_.Changed().notify_all();
}

}  // namespace mw::serving
