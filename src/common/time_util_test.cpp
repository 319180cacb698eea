#include "common/time_util.h"

#include <gtest/gtest.h>

namespace mw {
namespace {

TEST(TimeUtil, Iso8601FromUnixMillis) {
  EXPECT_EQ(Iso8601FromUnixMillis(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(Iso8601FromUnixMillis(1764763200123), "2025-12-03T12:00:00.123Z");
  EXPECT_EQ(Iso8601FromUnixMillis(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(NowIso8601().size(), 24u);
}

TEST(TimeUtil, MonotonicToUnixMillis) {
  const int64_t mono = MonotonicMillis();
  const int64_t a = MonotonicToUnixMillis(mono);
  const int64_t b = MonotonicToUnixMillis(mono + 60000);
  EXPECT_GE(b - a, 50000);  // the wall clock is read twice: not exact
  EXPECT_LE(b - a, 70000);
  EXPECT_GT(a, 1700000000000);
}

}  // namespace
}  // namespace mw
