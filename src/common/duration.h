// Durations written by people: "5m", "30s", "1h", "250ms", "0", "-1".
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace mw {

// A keep-alive style duration in milliseconds; kForever (-1) = never expires.
inline constexpr int64_t kForever = -1;

// Parses "<integer>[ms|s|m|h]" (no unit: seconds, as Ollama reads a number);
// any negative value is kForever. kInvalidArgument for anything else (empty,
// a fraction, an unknown unit, over 10 years). Pure; thread-safe.
[[nodiscard]] Result<int64_t> ParseDurationMs(std::string_view text);
// A bare number of seconds (e.g. a JSON number): negative -> kForever.
[[nodiscard]] Result<int64_t> DurationFromSeconds(double seconds);

}  // namespace mw
