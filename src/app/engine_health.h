// app/engine_health.h: the health watch of loaded engines (SPEC §19), a
// collaborator of ModelService.
//
// Contract. Every health_interval_s, each loaded engine that answers HTTP is
// asked GET /health, and, while /v1 requests of its model are in its
// engine, GET /slots. An engine is judged hung, once, when for hang_timeout_s
//   - it answered nothing (no HTTP answer at all to /health: a SIGSTOPped
//     process, a deadlock in its HTTP threads, a driver stuck in a kernel), or
//   - a request made no progress: requests were in the engine and /slots did
//     not answer, or answered with a slot processing and the same body as the
//     round before. Any change of the body is progress: llama.cpp's slots
//     report the prompt tokens processed (n_prompt_tokens_processed) and
//     the tokens generated (n_decoded), so a long prompt on a slow device
//     advances; an answer other than 200 (an engine without /slots) or no
//     slot processing (the request is between engine and client) resets the
//     clock: what cannot be judged is never called a hang.
// The rounds come every health_interval_s, and sooner for an engine silent
// or stuck at its last round (HangJudge::NextRoundAt): it is judged at its
// deadline, hang_timeout_s after its last answer or progress, whatever the
// interval. /slots is asked only of an engine that answered /health (a
// silent one is judged by its silence; asking would only delay the round).
// A hung engine is handed to `on_hung` (on the watch's thread) with a
// reason; ModelService stops it (SIGTERM, then SIGKILL) and records the
// attempt hung_while_serving. The watch never stops anything itself.
//
// HangJudge is the pure decision (no clock, no I/O: unit-tested);
// EngineHealth runs it on its thread with the probes. LastHangs keeps when
// each model was last stopped for hanging, for the model view. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "http_client/loopback_http.h"
#include "common/status.h"

namespace mw::app {

// What one round saw of one engine.
struct EngineProbe {
  bool answered = false;              // /health gave an HTTP answer (any status)
  int in_flight = 0;                  // /v1 requests of the model in its engine
  bool slots_asked = false;           // /slots was asked (only while in_flight > 0 and /health answered)
  std::optional<int> slots_status;    // its HTTP status; nullopt: no answer
  std::string slots_body;             // with status 200
};

class HangJudge {
 public:
  explicit HangJudge(int64_t hang_timeout_ms) : hang_timeout_ms_(hang_timeout_ms) {}
  void set_hang_timeout_ms(int64_t ms) { hang_timeout_ms_ = ms; }
  // Records a round; the reason when the engine `pid` is hung now (then it
  // is forgotten: a second judgement needs a fresh hang_timeout).
  std::optional<std::string> Observe(int pid, int64_t now_ms, const EngineProbe& probe);
  // Forgets the engines not in `alive` (ended, unloaded).
  void Keep(const std::vector<int>& alive);
  // When the next round should start, given when the last one started: an
  // interval later, or when an engine silent or stuck at its last round is
  // due, so that it is judged at its deadline (hang_timeout after its last
  // answer or progress), not up to an interval later. A silent engine's
  // probe takes `probe_timeout_ms` to give up, so its round starts that much
  // before the deadline; that may be a little after the regular round
  // (within a probe's time), which would end just short of the deadline.
  // Never sooner than kMinGapMs after the last round started: a probe that
  // fails at once (connection refused) must not spin.
  static constexpr int64_t kMinGapMs = 100;
  int64_t NextRoundAt(int64_t last_start_ms, int64_t interval_ms, int64_t probe_timeout_ms) const;

 private:
  struct Track {
    int64_t last_answer_ms = 0;
    int64_t last_progress_ms = 0;
    std::string last_slots;
    bool silent = false;        // the last round got no answer to /health
    bool stuck = false;         // the last round saw requests in the engine and no progress
    bool slots_silent = false;  // ... and /slots gave no answer
  };
  int64_t hang_timeout_ms_;
  std::map<int, Track> tracks_;
};

// One loaded engine to watch.
struct WatchedEngine {
  std::string model;
  int pid = 0;
  EngineEndpoint endpoint;
};

struct EngineHealthHooks {
  std::function<std::vector<WatchedEngine>()> engines;          // the loaded engines now
  std::function<int(const std::string& model)> in_flight;       // /v1 requests in its engine
  std::function<std::pair<int64_t, int64_t>()> timing;          // {interval_ms, hang_timeout_ms}, read each round
  std::function<void(const WatchedEngine&, const std::string& reason)> on_hung;
};

// When each model's engine was last stopped for hanging
// (ModelView::last_hung_at): read with `reader` (Registry::LastAttemptEnds of
// hung_while_serving) at the first Get and after each Invalidate (a new hang
// was recorded); a failed read is tried again at the next Get. Own lock.
class LastHangs {
 public:
  using Reader = std::function<Result<std::map<std::string, std::string>>()>;
  explicit LastHangs(Reader reader) : reader_(std::move(reader)) {}
  std::optional<std::string> Get(const std::string& model);
  void Invalidate();

 private:
  Reader reader_;
  std::mutex mu_;
  bool read_ = false;
  std::map<std::string, std::string> at_;  // model -> finished_at of its last hung_while_serving
};

class EngineHealth {
 public:
  explicit EngineHealth(EngineHealthHooks hooks);
  ~EngineHealth();  // Stop()
  EngineHealth(const EngineHealth&) = delete;
  EngineHealth& operator=(const EngineHealth&) = delete;

  void Start();  // idempotent
  void Stop();   // wakes and joins the thread; idempotent

 private:
  void Loop();
  EngineProbe ProbeOne(const WatchedEngine& engine, std::chrono::milliseconds timeout);

  EngineHealthHooks hooks_;
  HangJudge judge_{60000};  // only the watch's thread uses it
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool started_ = false;
  std::thread thread_;
};

}  // namespace mw::app
