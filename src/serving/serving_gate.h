// serving/serving_gate.h: who may use a loaded model's engine, and when an
// idle model is unloaded (SPEC §10 "Concurrency", "Idle unload").
//
// Per model:
//   - at most `parallel` requests hold a slot (are in the engine) at once;
//   - at most `max_queue` more wait for one (FIFO by arrival); a request
//     beyond that is refused at once (kResourceExhausted -> 429 queue_full);
//   - when the last slot is released and nobody waits, the model's idle
//     deadline is set from that request's keep-alive (kForever: none; 0: due
//     at once). A new request clears it.
//   - the owner's reaper asks DueForUnload(now): each model returned is
//     marked `unloading` (new requests wait for EndUnload, then load it
//     again), so a request is never handed an engine that is being stopped.
//   - residency (SPEC §12): a model's last use is the end of its last
//     request (every release) or MarkUsed (its load); TryBeginUnload marks
//     one model `unloading` only if no request holds or waits for a slot,
//     so an eviction never takes an engine from a request in flight.
//
// Where the state lives: NOT here. Each model's slots (ModelSlots) are part
// of that model's live state, held by its one owner (app/ModelRuntimeTable,
// which implements SlotStore): the gate is the rules, run under the owner's
// one lock and waiting on the owner's one condition, so a model's slots,
// idle deadline, load state and engine change together and are read together.
//
// Logic over a clock the caller passes in (milliseconds); no threads of its
// own. Thread-safe: Acquire blocks its caller; everything else is quick.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace mw::serving {

struct SlotLimits {
  int parallel = 1;   // >= 1
  int max_queue = 64; // >= 0
};

class ServingGate;

// One model's slots (its part of the model's live state).
struct ModelSlots {
  int in_engine = 0;
  int waiting = 0;
  uint64_t next_ticket = 0;   // FIFO: tickets handed out in arrival order
  uint64_t serving = 0;       // the next ticket allowed in
  bool unloading = false;
  std::optional<int64_t> idle_deadline;
  std::optional<int64_t> last_used;
};

// The owner of every model's ModelSlots. The gate calls these with Mutex()
// held (the owner's one lock) and waits on Changed() (notified by the owner
// on every change of a model, and by the gate).
class SlotStore {
 public:
  virtual ~SlotStore() = default;
  virtual std::mutex& Mutex() const = 0;
  virtual std::condition_variable& Changed() const = 0;
  // The model's slots, created when missing. Lock held; the reference stays
  // valid while the model is kept (the owner never erases a model whose
  // slots are in use).
  virtual ModelSlots& SlotsOf(const std::string& model) = 0;
  virtual ModelSlots* FindSlots(const std::string& model) = 0;  // nullptr when none kept
  virtual void ForEachSlots(const std::function<void(const std::string& model, ModelSlots& slots)>& fn) = 0;
};

// A held slot: released (with its keep-alive) when destroyed. Move-only.
class Slot {
 public:
  Slot() = default;
  Slot(Slot&& other) noexcept;
  Slot& operator=(Slot&& other) noexcept;
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;
  ~Slot();
  // The keep-alive applied when this slot is released (ms; kForever; 0).
  void set_keep_alive_ms(int64_t ms) { keep_alive_ms_ = ms; }
  // Releases now (idempotent); `now_ms` starts the idle clock.
  void Release(int64_t now_ms);
  bool held() const { return gate_ != nullptr; }

 private:
  friend class ServingGate;
  Slot(ServingGate* gate, std::string model, int64_t keep_alive_ms)
      : gate_(gate), model_(std::move(model)), keep_alive_ms_(keep_alive_ms) {}
  ServingGate* gate_ = nullptr;
  std::string model_;
  int64_t keep_alive_ms_ = 0;
};

class ServingGate {
 public:
  // `store` holds the slots (it must outlive the gate). `clock` returns the
  // current time in ms (monotonic); used when a Slot is destroyed without an
  // explicit Release(now).
  // `on_waiting` (optional) is called with +1 when a request starts waiting
  // for a slot and -1 when it stops (the /metrics queue depth); called with
  // the store's lock held, so it must be quick and take no lock of the store.
  ServingGate(SlotStore& store, int64_t (*clock)(), std::function<void(int delta)> on_waiting = {});
  ~ServingGate();
  ServingGate(const ServingGate&) = delete;
  ServingGate& operator=(const ServingGate&) = delete;

  // Takes a slot of `model`, waiting for one if needed. Errors:
  // kResourceExhausted (limits.max_queue requests already wait),
  // kUnavailable (Close() was called). `keep_alive_ms` is the slot's
  // keep-alive (may be changed on the Slot before release).
  [[nodiscard]] Result<Slot> Acquire(const std::string& model, const SlotLimits& limits, int64_t keep_alive_ms);

  // Models whose idle deadline is <= now_ms, with no slot held and nobody
  // waiting: each is marked unloading and must be passed to EndUnload.
  std::vector<std::string> DueForUnload(int64_t now_ms);
  void EndUnload(const std::string& model);
  // The earliest idle deadline, if any.
  std::optional<int64_t> NextDeadline() const;
  // Forgets the idle deadline (the model was unloaded or died by other means).
  void ClearIdle(const std::string& model);

  // Residency (SPEC §12). MarkUsed: the model was used at now_ms (its load).
  void MarkUsed(const std::string& model, int64_t now_ms);
  // If no request holds or waits for a slot of `model` and it is not being
  // unloaded: marks it unloading (pass it to EndUnload afterwards) and
  // clears its idle deadline; true. Else false and nothing changes.
  bool TryBeginUnload(const std::string& model);
  struct Usage {
    int in_engine = 0;
    int waiting = 0;
    bool unloading = false;
    std::optional<int64_t> idle_deadline;  // ms on the gate's clock
    std::optional<int64_t> last_used;      // ms on the gate's clock
  };
  Usage UsageOf(const std::string& model) const;

  // For status and tests.
  int InEngine(const std::string& model) const;
  int Waiting(const std::string& model) const;

  // Wakes every waiter with kUnavailable and refuses new requests.
  void Close();

 private:
  friend class Slot;
  void Release(const std::string& model, int64_t keep_alive_ms, int64_t now_ms);

  SlotStore& store_;
  int64_t (*clock_)();
  const std::function<void(int delta)> on_waiting_;
  bool closed_ = false;  // guarded by store_.Mutex()
};

}  // namespace mw::serving
