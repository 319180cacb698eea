#include "common/time_util.h"

#include <chrono>
#include <cctype>
#include <cstdio>
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

std::optional<std::chrono::system_clock::time_point> ParseIso8601(std::string_view text) {
  std::tm tm{};
  int ms = 0;
  char rest[8] = {};
  const std::string s(text.substr(0, 40));
  const int n = std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%7s", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                            &tm.tm_min, &tm.tm_sec, rest);
  if (n != 7) return std::nullopt;
  const std::string_view r(rest);
  if (r == "Z") {
    ms = 0;
  } else if (r.size() == 5 && r[0] == '.' && r[4] == 'Z' && std::isdigit(static_cast<unsigned char>(r[1])) &&
             std::isdigit(static_cast<unsigned char>(r[2])) && std::isdigit(static_cast<unsigned char>(r[3]))) {
    ms = (r[1] - '0') * 100 + (r[2] - '0') * 10 + (r[3] - '0');
  } else {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::time_t t = timegm(&tm);
  if (t == static_cast<std::time_t>(-1)) return std::nullopt;
  return std::chrono::system_clock::from_time_t(t) + std::chrono::milliseconds(ms);
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
