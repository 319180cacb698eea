#include "common/heap_trim.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <utility>

namespace mw {

bool TrimHeapNow() {
#if defined(__GLIBC__)
  return ::malloc_trim(0) == 1;
#else
  return false;
#endif
}

HeapTrimmer::HeapTrimmer(std::chrono::milliseconds interval, std::function<void()> trim)
    : thread_(std::move(trim), [interval] { return interval; }, /*work_first=*/false) {}

}  // namespace mw
