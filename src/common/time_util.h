// Wall-clock and monotonic time helpers.
#pragma once

#include <cstdint>
#include <string>

namespace mw {

// Current UTC time as ISO-8601 with milliseconds: "2026-11-26T17:23:34.123Z".
std::string NowIso8601();
// Milliseconds on the monotonic clock (for durations and timeouts).
int64_t MonotonicMillis();

}  // namespace mw
