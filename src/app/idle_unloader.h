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
// Stop() stops and joins the thread. Thread-safe; its own lock.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "serving/serving_gate.h"

namespace mw::app {

class IdleUnloader {
 public:
  using UnloadFn = std::function<void(const std::string& model)>;
  IdleUnloader(serving::ServingGate& gate, UnloadFn unload) : gate_(gate), unload_(std::move(unload)) {}
  ~IdleUnloader() { Stop(); }
  IdleUnloader(const IdleUnloader&) = delete;
  IdleUnloader& operator=(const IdleUnloader&) = delete;

  void Start();
  void Wake();
  void Stop();

 private:
  void Loop();

  serving::ServingGate& gate_;
  const UnloadFn unload_;
  std::mutex mu_;  // guards the four below
  std::condition_variable cv_;
  bool stop_ = false;
  bool wake_ = false;
  std::thread thread_;
};

}  // namespace mw::app
