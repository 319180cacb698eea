// serving/residency.h: which loaded models to unload so that another can be
// loaded (SPEC §12 "Residency"). Pure: loaded models and a request in, the
// models to evict out; no clock, no threads, no I/O. Thread-compatible.
//
// Rules:
//   - Only idle models may be evicted: a model with a request in flight or
//     waiting, or a load or unload in progress, is `busy` and never chosen.
//   - Idle models are taken least recently used first (last_used_ms
//     ascending; equal times by name, so the plan is deterministic).
//   - The cap: with max_loaded > 0 and N models loaded, the first
//     N + 1 - max_loaded idle models must go. Too few idle models: the plan
//     is kCapBusy and evicts nothing.
//   - Memory: then more idle models, one at a time in the same order, until
//     fits(n) holds, n being how many of them (from the front) would be
//     unloaded. If even all of them are not enough, the plan is kNoFit and
//     evicts only what the cap demands (the caller's fit check decides about
//     the load; evicting more would not make it fit).
//
//   PlanEviction(loaded, max_loaded, fits) -> {outcome, evict (LRU first),
//                                              busy (names, for messages)}
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mw::serving {

struct Resident {
  std::string name;
  int64_t last_used_ms = 0;  // the end of its last request, or its load
  bool busy = false;         // a request in flight or waiting, a load or an unload in progress
};

struct EvictionPlan {
  enum class Outcome {
    kFits,     // after evicting `evict` (possibly none) the cap allows it and the memory fits
    kCapBusy,  // the cap is reached and too few models are idle: nothing evicted
    kNoFit,    // the memory does not fit even with every idle model unloaded
  };
  Outcome outcome = Outcome::kFits;
  std::vector<std::string> evict;  // least recently used first
  std::vector<std::string> busy;   // the busy loaded models, by name
  size_t idle = 0;                 // how many loaded models were idle
};

// The models the load of one more model must evict. `loaded` excludes the
// model to be loaded. `fits(n)`: whether it fits in memory once the n least
// recently used idle models are unloaded (n = 0: as things are now); called
// with increasing n, at most idle + 1 times.
EvictionPlan PlanEviction(std::vector<Resident> loaded, int max_loaded, const std::function<bool(size_t)>& fits);

// The idle models of `loaded`, least recently used first (the order
// PlanEviction evicts in).
std::vector<Resident> IdleByLeastRecentUse(std::vector<Resident> loaded);

}  // namespace mw::serving
