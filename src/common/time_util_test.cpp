#include "common/time_util.h"

#include <gtest/gtest.h>

namespace mw {
namespace {

TEST(TimeUtilTest, Iso8601RoundTrips) {
  using namespace std::chrono;
  const std::string now = NowIso8601();
  auto parsed = ParseIso8601(now);
  ASSERT_TRUE(parsed.has_value()) << now;
  EXPECT_LT(std::abs(duration_cast<milliseconds>(system_clock::now() - *parsed).count()), 60000);
  auto t = ParseIso8601("1970-01-01T00:01:02.345Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(duration_cast<milliseconds>(t->time_since_epoch()).count(), 62345);
  EXPECT_EQ(duration_cast<milliseconds>(ParseIso8601("1970-01-02T00:00:00Z")->time_since_epoch()).count(), 86400000);
  for (const char* bad : {"", "yesterday", "2026-12-03", "2026-12-03T11:00:00", "2026-12-03T11:00:00.1Z",
                          "2026-12-03T11:00:00+01:00"}) {
    EXPECT_FALSE(ParseIso8601(bad).has_value()) << bad;
  }
}

TEST(TimeUtilTest, Iso8601FromUnixMillis) {
  EXPECT_EQ(Iso8601FromUnixMillis(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(Iso8601FromUnixMillis(1764763200123), "2025-12-03T12:00:00.123Z");
  EXPECT_EQ(Iso8601FromUnixMillis(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(NowIso8601().size(), 24u);
}

TEST(TimeUtilTest, MonotonicToUnixMillis) {
  const int64_t mono = MonotonicMillis();
  const int64_t a = MonotonicToUnixMillis(mono);
  const int64_t b = MonotonicToUnixMillis(mono + 60000);
  EXPECT_GE(b - a, 50000);  // the wall clock is read twice: not exact
  EXPECT_LE(b - a, 70000);
  EXPECT_GT(a, 1700000000000);
}

}  // namespace
}  // namespace mw
