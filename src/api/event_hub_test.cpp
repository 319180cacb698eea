#include "api/event_hub.h"

#include <gtest/gtest.h>

namespace mw::api {
namespace {

TEST(EventHubTest, FanOutLimitAndClose) {
  EventHub hub(2, 3);
  auto a = hub.Add();
  auto b = hub.Add();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(hub.Add(), nullptr);  // over the limit
  for (int i = 0; i < 5; ++i) hub.Publish("f" + std::to_string(i));
  bool closed = false;
  auto frames = a->Wait(std::chrono::milliseconds(0), &closed);
  ASSERT_EQ(frames.size(), 3u);  // oldest dropped
  EXPECT_EQ(frames[0], "f2");
  EXPECT_FALSE(closed);
  hub.Remove(b);
  EXPECT_EQ(hub.size(), 1u);
  hub.Close();
  frames = a->Wait(std::chrono::milliseconds(10000), &closed);  // returns at once: closed
  EXPECT_TRUE(closed);
  EXPECT_EQ(hub.Add(), nullptr);
}

}  // namespace
}  // namespace mw::api
