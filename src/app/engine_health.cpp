#include "app/engine_health.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "common/log.h"
#include "common/time_util.h"

namespace mw::app {

std::optional<std::string> HangJudge::Observe(int pid, int64_t now_ms, const EngineProbe& probe) {
  auto [it, fresh] = tracks_.try_emplace(pid, Track{now_ms, now_ms, {}});
  Track& t = it->second;
  if (probe.answered) t.last_answer_ms = now_ms;
  const bool processing = probe.slots_status == 200 &&
                          probe.slots_body.find("\"is_processing\":true") != std::string::npos;
  if (probe.in_flight <= 0 || (probe.slots_status && *probe.slots_status != 200) ||
      (probe.slots_status == 200 && (!processing || probe.slots_body != t.last_slots))) {
    t.last_progress_ms = now_ms;  // idle, cannot be judged, or moved
  }
  if (probe.slots_status == 200) t.last_slots = probe.slots_body;
  const int64_t silent = now_ms - t.last_answer_ms;
  const int64_t stuck = now_ms - t.last_progress_ms;
  t.silent = !probe.answered;
  t.stuck = stuck > 0;
  t.slots_silent = probe.slots_asked && !probe.slots_status;
  std::optional<std::string> reason;
  if (silent >= hang_timeout_ms_) {
    reason = "alive but did not answer /health for " + std::to_string(silent / 1000) + " s";
  } else if (stuck >= hang_timeout_ms_) {
    reason = std::string(probe.slots_status ? "its slots showed" : "its /slots did not answer, and it made") +
             " no progress on " + std::to_string(probe.in_flight) + " request(s) for " + std::to_string(stuck / 1000) +
             " s";
  }
  if (reason) tracks_.erase(it);
  return reason;
}

int64_t HangJudge::NextRoundAt(int64_t last_start_ms, int64_t interval_ms, int64_t probe_timeout_ms) const {
  const int64_t regular = last_start_ms + interval_ms;
  // An engine whose probe started at `start_by` ends at its deadline: the
  // round starts then if that is before the regular round, or a little after
  // it (within a probe's time: the regular round would end just short of
  // the deadline, and the next one would come an interval late).
  std::optional<int64_t> soonest;
  auto due = [&](int64_t start_by, int64_t probe_ms) {
    if (start_by < regular + probe_ms) soonest = std::min(soonest.value_or(start_by), start_by);
  };
  for (const auto& [pid, t] : tracks_) {
    if (t.silent) due(t.last_answer_ms + hang_timeout_ms_ - probe_timeout_ms, probe_timeout_ms);
    if (t.stuck) {
      const int64_t probe_ms = t.slots_silent ? probe_timeout_ms : 0;
      due(t.last_progress_ms + hang_timeout_ms_ - probe_ms, probe_ms);
    }
  }
  return std::max(soonest.value_or(regular), last_start_ms + kMinGapMs);
}

void HangJudge::Keep(const std::vector<int>& alive) {
  const std::set<int> keep(alive.begin(), alive.end());
  std::erase_if(tracks_, [&](const auto& entry) { return keep.count(entry.first) == 0; });
}

std::optional<std::string> LastHangs::Get(const std::string& model) {
  std::lock_guard lock(mu_);
  if (!read_) {
    Result<std::map<std::string, std::string>> read = reader_();
    if (!read.ok()) return std::nullopt;  // the view goes without it
    at_ = std::move(*read);
    read_ = true;
  }
  auto it = at_.find(model);
  if (it == at_.end()) return std::nullopt;
  return it->second;
}

void LastHangs::Invalidate() {
  std::lock_guard lock(mu_);
  read_ = false;
}

EngineHealth::EngineHealth(EngineHealthHooks hooks) : hooks_(std::move(hooks)) {}

EngineHealth::~EngineHealth() { Stop(); }

void EngineHealth::Start() {
  std::lock_guard lock(mu_);
  if (started_ || stop_) return;
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
}

void EngineHealth::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

EngineProbe EngineHealth::ProbeOne(const WatchedEngine& engine, std::chrono::milliseconds timeout) {
  EngineProbe probe;
  probe.answered = HttpGetStatus(engine.endpoint, "/health", timeout).ok();
  probe.in_flight = hooks_.in_flight(engine.model);
  if (probe.answered && probe.in_flight > 0) {
    probe.slots_asked = true;
    Result<HttpAnswer> slots = HttpRequest(engine.endpoint, "GET", "/slots", "", timeout, 1 << 20);
    if (slots.ok()) {
      probe.slots_status = slots->status;
      probe.slots_body = std::move(slots->body);
    }
  }
  return probe;
}

void EngineHealth::Loop() {
  int64_t round_start = MonotonicMillis();
  for (;;) {
    const auto [interval_ms, hang_timeout_ms] = hooks_.timing();
    judge_.set_hang_timeout_ms(hang_timeout_ms);
    // A probe waits at most this long: one hung engine delays the round, never stalls it.
    const int64_t timeout_ms = std::clamp<int64_t>(std::min(interval_ms, hang_timeout_ms), 200, 5000);
    {
      // One round every interval (the time the last round's probes took
      // counts), or sooner for an engine due for judgement.
      const int64_t next = judge_.NextRoundAt(round_start, interval_ms, timeout_ms);
      const int64_t wait_ms = std::max<int64_t>(0, next - MonotonicMillis());
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] { return stop_; })) return;
    }
    round_start = MonotonicMillis();
    const auto timeout = std::chrono::milliseconds(timeout_ms);
    std::vector<WatchedEngine> engines = hooks_.engines();
    std::vector<int> alive;
    for (const WatchedEngine& engine : engines) {
      if (engine.endpoint.empty() || engine.pid <= 0) continue;  // answers no HTTP: nothing to ask
      alive.push_back(engine.pid);
      const EngineProbe probe = ProbeOne(engine, timeout);
      {
        std::lock_guard lock(mu_);
        if (stop_) return;
      }
      if (std::optional<std::string> reason = judge_.Observe(engine.pid, MonotonicMillis(), probe)) {
        MW_LOG(kWarn, "health") << "model=" << engine.model << " pid=" << engine.pid << " hung: " << *reason;
        hooks_.on_hung(engine, *reason);
      }
    }
    judge_.Keep(alive);
  }
}

}  // namespace mw::app
