#include "common/random_hex.h"

#include <gtest/gtest.h>

namespace mw {
namespace {

TEST(RandomHexTest, TwoDigitsPerByteLowercaseAndFreshEachCall) {
  Result<std::string> a = RandomHex(32);
  Result<std::string> b = RandomHex(32);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 64u);
  EXPECT_EQ(a->find_first_not_of("0123456789abcdef"), std::string::npos) << *a;
  EXPECT_NE(*a, *b);
  Result<std::string> short_one = RandomHex(4);
  ASSERT_TRUE(short_one.ok());
  EXPECT_EQ(short_one->size(), 8u);
}

}  // namespace
}  // namespace mw
