#include "worker/text_guard.h"

#include <gtest/gtest.h>

#include <string>

namespace mw::worker {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

// True when `s` is well-formed UTF-8 (checked independently of RepairUtf8:
// by decoding and re-checking the code point ranges).
bool WellFormed(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
    for (size_t k = 1; k < n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

TEST(RepairUtf8, KeepsValidTextAsItIs) {
  const std::string text = "plain ascii, caf\xC3\xA9, \xE2\x82\xAC, \xF0\x9F\x98\x80 end";
  EXPECT_EQ(RepairUtf8(text, false), text);
  EXPECT_EQ(RepairUtf8(text, true), text);
  EXPECT_EQ(RepairUtf8("", true), "");
}

TEST(RepairUtf8, ReplacesEachIllFormedSubpartWithOneReplacementCharacter) {
  EXPECT_EQ(RepairUtf8("a\x80" "b", false), "a" + kFffd + "b");            // stray continuation
  EXPECT_EQ(RepairUtf8("a\xFF" "b", false), "a" + kFffd + "b");            // impossible byte
  EXPECT_EQ(RepairUtf8("\xC0\xAF", false), kFffd + kFffd);                 // overlong lead
  EXPECT_EQ(RepairUtf8("\xE0\x80\x80", false), kFffd + kFffd + kFffd);     // overlong 3-byte
  EXPECT_EQ(RepairUtf8("\xED\xA0\x80", false), kFffd + kFffd + kFffd);     // surrogate
  EXPECT_EQ(RepairUtf8("\xF4\x90\x80\x80", false), kFffd + kFffd + kFffd + kFffd);  // > U+10FFFF
  EXPECT_EQ(RepairUtf8("\xE2\x82" "A", false), kFffd + "A");               // cut short mid-text
  EXPECT_EQ(RepairUtf8("\xE2\x82" "A", true), kFffd + "A");
}

TEST(RepairUtf8, AnIncompleteTailIsHeldBackWhilePartialAndReplacedAtTheEnd) {
  EXPECT_EQ(RepairUtf8("ab\xE2\x82", true), "ab");
  EXPECT_EQ(RepairUtf8("ab\xE2\x82", false), "ab" + kFffd);
  EXPECT_EQ(RepairUtf8("ab\xE2\x82\xAC", true), "ab\xE2\x82\xAC");
  EXPECT_EQ(RepairUtf8("ab\xF0", true), "ab");
  // Not a well-formed prefix (E0 must be followed by A0..BF): not held back.
  EXPECT_EQ(RepairUtf8("ab\xE0\x80", true), "ab" + kFffd + kFffd);
}

// Every byte string made of a few interesting bytes: the repaired text is
// well-formed, and repairing a growing text while partial only ever appends
// (the property streamed deltas rely on).
TEST(RepairUtf8, IsWellFormedAndMonotonicOverAllShortByteStrings) {
  const unsigned char bytes[] = {'a', 0x80, 0x9F, 0xA0, 0xBF, 0xC2, 0xC0, 0xE0, 0xE2, 0xED, 0xF0, 0xF4, 0xF5, 0xFF};
  const size_t n = sizeof(bytes);
  size_t checked = 0;
  for (size_t len = 1; len <= 4; ++len) {
    size_t total = 1;
    for (size_t k = 0; k < len; ++k) total *= n;
    for (size_t code = 0; code < total; ++code) {
      std::string s;
      for (size_t k = 0, c = code; k < len; ++k, c /= n) s.push_back(static_cast<char>(bytes[c % n]));
      const std::string full = RepairUtf8(s, false);
      ASSERT_TRUE(WellFormed(full)) << "input of " << len << " bytes, code " << code;
      for (size_t cut = 0; cut <= s.size(); ++cut) {
        const std::string head = RepairUtf8(s.substr(0, cut), true);
        ASSERT_TRUE(WellFormed(head));
        ASSERT_EQ(full.compare(0, head.size(), head), 0) << "not a prefix at cut " << cut << ", code " << code;
        const std::string longer = RepairUtf8(s, true);
        ASSERT_EQ(longer.compare(0, head.size(), head), 0);
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 30000u);
}

}  // namespace
}  // namespace mw::worker
