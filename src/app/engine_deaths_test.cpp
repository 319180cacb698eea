#include "app/engine_deaths.h"

#include <gtest/gtest.h>

#include <thread>

namespace mw::app {
namespace {

TEST(EngineDeathsTest, ADeathAnswersWithItsSummary) {
  EngineDeaths deaths;
  std::thread died([&] { deaths.NoteDeath(7, "killed by SIGKILL"); });
  std::optional<api::EngineEnd> end = deaths.Await(7, 60000, nullptr);
  ASSERT_TRUE(end);
  EXPECT_EQ(end->summary, "killed by SIGKILL");
  EXPECT_FALSE(end->hung);
  died.join();
}

TEST(EngineDeathsTest, AHangSaysSo) {  // SPEC §19: its requests answer engine_hung
  EngineDeaths deaths;
  deaths.NoteDeath(7, "Engine hung while serving", /*hung=*/true);
  std::optional<api::EngineEnd> end = deaths.Await(7, 60000, nullptr);
  ASSERT_TRUE(end);
  EXPECT_TRUE(end->hung);
  EXPECT_EQ(end->summary, "Engine hung while serving");
}

TEST(EngineDeathsTest, AStopOrTheShutdownIsNoDeathToReport) {
  EngineDeaths deaths;
  deaths.NoteStopped(7);
  EXPECT_FALSE(deaths.Await(7, 60000, nullptr));
  deaths.Close();
  EXPECT_FALSE(deaths.Await(8, 60000, nullptr));
}

TEST(EngineDeathsTest, NoEndWithinTheTimeoutSaysSo) {
  EngineDeaths deaths;
  bool timed_out = false;
  EXPECT_FALSE(deaths.Await(7, 10, [&] { timed_out = true; }));
  EXPECT_TRUE(timed_out);
}

}  // namespace
}  // namespace mw::app
