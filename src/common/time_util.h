// Wall-clock and monotonic time helpers.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mw {

// Current UTC time as ISO-8601 with milliseconds: "2026-11-26T17:23:34.123Z".
std::string NowIso8601();
// The inverse of NowIso8601 ("YYYY-MM-DDTHH:MM:SS[.mmm]Z"); nullopt for any other text.
std::optional<std::chrono::system_clock::time_point> ParseIso8601(std::string_view text);
// The same form for a time in milliseconds since the Unix epoch.
std::string Iso8601FromUnixMillis(int64_t unix_ms);
// The wall-clock time (ms since the Unix epoch) of a MonotonicMillis() reading.
int64_t MonotonicToUnixMillis(int64_t monotonic_ms);
// Milliseconds on the monotonic clock (for durations and timeouts).
int64_t MonotonicMillis();

}  // namespace mw
