#include "common/duration.h"

#include <cmath>
#include <string>

namespace mw {
namespace {
constexpr int64_t kMaxMs = int64_t{10} * 365 * 24 * 3600 * 1000;  // 10 years
}

Result<int64_t> ParseDurationMs(std::string_view text) {
  const std::string shown(text.substr(0, 40));
  auto bad = [&] {
    return InvalidArgumentError("invalid duration '" + shown +
                                "': use a whole number with an optional unit ms, s, m or h (\"5m\", \"30s\"), "
                                "\"0\" (at once) or \"-1\" (never)");
  };
  if (text.empty()) return bad();
  bool negative = text.front() == '-';
  if (negative) text.remove_prefix(1);
  size_t digits = 0;
  int64_t value = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
    if (value > kMaxMs) return bad();
    value = value * 10 + (text[digits] - '0');
    ++digits;
  }
  if (digits == 0) return bad();
  std::string_view unit = text.substr(digits);
  int64_t scale = 0;
  if (unit.empty() || unit == "s") scale = 1000;
  else if (unit == "ms") scale = 1;
  else if (unit == "m") scale = 60 * 1000;
  else if (unit == "h") scale = 3600 * 1000;
  else return bad();
  if (negative) return kForever;
  if (value > kMaxMs / scale) return bad();
  return value * scale;
}

Result<int64_t> DurationFromSeconds(double seconds) {
  if (std::isnan(seconds)) return InvalidArgumentError("a duration must be a number of seconds");
  if (seconds < 0) return kForever;
  if (seconds * 1000 > static_cast<double>(kMaxMs)) return InvalidArgumentError("duration too long (over 10 years)");
  return static_cast<int64_t>(std::llround(seconds * 1000));
}

}  // namespace mw
