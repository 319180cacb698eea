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

ServingGate::ServingGate(int64_t (*clock)()) : clock_(clock) {}
ServingGate::~ServingGate() { Close(); }

Result<Slot> ServingGate::Acquire(const std::string& model, const SlotLimits& limits, int64_t keep_alive_ms) {
  const int parallel = limits.parallel < 1 ? 1 : limits.parallel;
  std::unique_lock lock(mu_);
  if (closed_) return UnavailableError("the server is shutting down");
  Entry& e = entries_[model];
  const bool must_wait = e.unloading || e.in_engine >= parallel || e.waiting > 0;
  if (must_wait && e.waiting >= limits.max_queue) {
    return ResourceExhaustedError("model '" + model + "' is busy: " + std::to_string(e.in_engine) +
                                  " request(s) running and " + std::to_string(e.waiting) +
                                  " waiting (max_queue " + std::to_string(limits.max_queue) + "); retry later");
  }
  const uint64_t ticket = e.next_ticket++;
  ++e.waiting;
  e.idle_deadline.reset();
  cv_.wait(lock, [&] { return closed_ || (!e.unloading && e.in_engine < parallel && e.serving == ticket); });
  --e.waiting;
  ++e.serving;
  if (closed_) {
    cv_.notify_all();
    return UnavailableError("the server is shutting down");
  }
  ++e.in_engine;
  e.idle_deadline.reset();
  cv_.notify_all();  // the next ticket may fit too
  return Slot(this, model, keep_alive_ms);
}

void ServingGate::Release(const std::string& model, int64_t keep_alive_ms, int64_t now_ms) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(model);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  if (e.in_engine > 0) --e.in_engine;
  e.last_used = now_ms;
  if (e.in_engine == 0 && e.waiting == 0) {
    if (keep_alive_ms == kForever) {
      e.idle_deadline.reset();
    } else {
      e.idle_deadline = now_ms + keep_alive_ms;
    }
  }
  cv_.notify_all();
}

std::vector<std::string> ServingGate::DueForUnload(int64_t now_ms) {
  std::lock_guard lock(mu_);
  std::vector<std::string> due;
  for (auto& [name, e] : entries_) {
    if (e.idle_deadline && *e.idle_deadline <= now_ms && e.in_engine == 0 && e.waiting == 0 && !e.unloading) {
      e.unloading = true;
      e.idle_deadline.reset();
      due.push_back(name);
    }
  }
  return due;
}

void ServingGate::EndUnload(const std::string& model) {
  std::lock_guard lock(mu_);
  if (auto it = entries_.find(model); it != entries_.end()) it->second.unloading = false;
  cv_.notify_all();
}

std::optional<int64_t> ServingGate::NextDeadline() const {
  std::lock_guard lock(mu_);
  std::optional<int64_t> next;
  for (const auto& [name, e] : entries_) {
    if (e.idle_deadline && (!next || *e.idle_deadline < *next)) next = e.idle_deadline;
  }
  return next;
}

void ServingGate::ClearIdle(const std::string& model) {
  std::lock_guard lock(mu_);
  if (auto it = entries_.find(model); it != entries_.end()) it->second.idle_deadline.reset();
}

void ServingGate::MarkUsed(const std::string& model, int64_t now_ms) {
  std::lock_guard lock(mu_);
  entries_[model].last_used = now_ms;
}

bool ServingGate::TryBeginUnload(const std::string& model) {
  std::lock_guard lock(mu_);
  Entry& e = entries_[model];
  if (e.in_engine > 0 || e.waiting > 0 || e.unloading) return false;
  e.unloading = true;
  e.idle_deadline.reset();
  return true;
}

ServingGate::Usage ServingGate::UsageOf(const std::string& model) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(model);
  if (it == entries_.end()) return {};
  const Entry& e = it->second;
  return {e.in_engine, e.waiting, e.unloading, e.idle_deadline, e.last_used};
}

int ServingGate::InEngine(const std::string& model) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(model);
  return it == entries_.end() ? 0 : it->second.in_engine;
}

int ServingGate::Waiting(const std::string& model) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(model);
  return it == entries_.end() ? 0 : it->second.waiting;
}

void ServingGate::Close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  cv_.notify_all();
}

}  // namespace mw::serving
