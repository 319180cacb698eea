// app/idle_unloader.h: the thread that unloads models idle past their
// keep_alive (SPEC §10; a collaborator of ModelService: inference admission's
// idle unload).
//
// Contract: Start() starts the thread once (the first /v1 request does it;
// after Stop() it never starts again). Wake() makes it look again at once (a
// slot was freed, so a deadline may have been set). It sleeps until the
// gate's next idle deadline (at least once a minute: a deadline is only ever
// moved later by a new request), takes the models the gate marks due
// (ServingGate::DueForUnload: marked `unloading`, so a request arriving then
// waits and loads again instead of being handed a dying engine), calls
// `unload` for each without its lock held, and then ServingGate::EndUnload.
// Stop() stops and joins the thread. Thread-safe; its own thread
// (common/wakeable_thread.h) and the gate's lock.
#pragma once

#include <functional>
#include <string>

#include "common/wakeable_thread.h"
#include "serving/serving_gate.h"

namespace mw::app {

class IdleUnloader {
 public:
  using UnloadFn = std::function<void(const std::string& model)>;
  IdleUnloader(serving::ServingGate& gate, UnloadFn unload) : gate_(gate), unload_(std::move(unload)) {}
  ~IdleUnloader() { Stop(); }  // before gate_ and unload_ may go
  IdleUnloader(const IdleUnloader&) = delete;
  IdleUnloader& operator=(const IdleUnloader&) = delete;

  void Start() { thread_.Start(); }
  void Wake() { thread_.Wake(); }
  void Stop() { thread_.Stop(); }

 private:
  std::chrono::milliseconds UntilNextDeadline() const;
  void UnloadDue();

  serving::ServingGate& gate_;
  const UnloadFn unload_;
  WakeableThread thread_{[this] { UnloadDue(); }, [this] { return UntilNextDeadline(); }, /*work_first=*/false};
};

}  // namespace mw::app
