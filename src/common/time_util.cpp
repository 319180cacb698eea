#include "common/time_util.h"

#include <chrono>
#include <ctime>

namespace mw {

std::string NowIso8601() {
  using namespace std::chrono;
  return Iso8601FromUnixMillis(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

std::string Iso8601FromUnixMillis(int64_t unix_ms) {
  int64_t ms = unix_ms % 1000;
  int64_t seconds = unix_ms / 1000;
  if (ms < 0) {
    ms += 1000;
    seconds -= 1;
  }
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof(out), "%s.%03dZ", buf, static_cast<int>(ms));
  return out;
}

int64_t MonotonicToUnixMillis(int64_t monotonic_ms) {
  using namespace std::chrono;
  const int64_t unix_now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  return unix_now + (monotonic_ms - MonotonicMillis());
}

int64_t MonotonicMillis() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace mw
