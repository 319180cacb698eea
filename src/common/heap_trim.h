// common/heap_trim.h: gives the heap memory the C library holds free back to
// the system, every 30 s, for the life of `modelwarden serve`.
//
// Why: glibc's malloc keeps memory freed inside its arenas (one per thread
// that allocated, up to 8 per core) and returns only an arena's free top to
// the system. A long-running server's threads come and go (connections,
// upstream calls, worker monitors), each arena's high-water mark rises with
// the bursts it served, and RSS grew ~1.4 MB in the soak's first minutes with
// the live heap flat (heaptrack; smaps: the growth was in the arenas);
// malloc_trim(0) returned it at once (docs/reliability.md). malloc_trim
// releases whole free pages anywhere in every arena (madvise), so RSS follows
// what is live. Elsewhere than glibc, TrimHeapNow does nothing.
//
// Contract: Start() starts one thread that calls `trim` every `interval`
// (first after one interval); Stop() ends and joins it (the destructor
// too); Start() after Stop() does nothing. Thread-safe.
#pragma once

#include <chrono>
#include <functional>

#include "common/wakeable_thread.h"

namespace mw {

// malloc_trim(0) on glibc; true if it gave memory back.
bool TrimHeapNow();

class HeapTrimmer {
 public:
  static constexpr std::chrono::milliseconds kInterval{30000};
  explicit HeapTrimmer(std::chrono::milliseconds interval = kInterval, std::function<void()> trim = [] {
    (void)TrimHeapNow();
  });

  void Start() { (void)thread_.Start(); }
  void Stop() { thread_.Stop(); }

 private:
  WakeableThread thread_;
};

}  // namespace mw
