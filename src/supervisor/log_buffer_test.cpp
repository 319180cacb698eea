#include "supervisor/log_buffer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mw {
namespace {

TEST(LogBufferTest, KeepsEverythingBelowCapacity) {
  LogBuffer log(16);
  log.Append("abc");
  log.Append("def");
  EXPECT_EQ(log.Tail(), "abcdef");
  EXPECT_EQ(log.Tail(2), "ef");
  EXPECT_EQ(log.total_bytes(), 6u);
}

TEST(LogBufferTest, KeepsTheLastBytesAcrossWrapAround) {
  LogBuffer log(8);
  log.Append("12345");
  log.Append("6789");   // wraps
  EXPECT_EQ(log.Tail(), "23456789");
  log.Append("abcdefghijk");  // larger than capacity
  EXPECT_EQ(log.Tail(), "defghijk");
  log.Append("XY");
  EXPECT_EQ(log.Tail(), "fghijkXY");
  EXPECT_EQ(log.Tail(3), "kXY");
  EXPECT_EQ(log.total_bytes(), 22u);
}

TEST(LineSplitterTest, SplitsOnNewlineAndCarriageReturn) {
  LineSplitter s;
  std::vector<std::string> lines;
  auto collect = [&](std::string_view l) { lines.emplace_back(l); };
  s.Feed("one\ntw", collect);
  s.Feed("o\r\nprogress 1%\rprogress 2%\n\nlast", collect);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "progress 1%", "progress 2%"}));
  s.Flush(collect);
  EXPECT_EQ(lines.back(), "last");
}

TEST(LineSplitterTest, CutsOverlongLinesIntoBoundedPieces) {
  LineSplitter s(4);
  std::vector<std::string> lines;
  auto collect = [&](std::string_view l) { lines.emplace_back(l); };
  s.Feed("abcdefghij\nxy\n", collect);
  EXPECT_EQ(lines, (std::vector<std::string>{"abcd", "efgh", "ij", "xy"}));
}

}  // namespace
}  // namespace mw
