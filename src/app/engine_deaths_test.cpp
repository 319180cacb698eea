#include "app/engine_deaths.h"

#include <gtest/gtest.h>

#include <thread>

namespace mw::app {
namespace {

TEST(EngineDeathsTest, ADeathAnswersWithItsSummary) {
  EngineDeaths deaths;
  std::thread died([&] { deaths.NoteDeath(7, "killed by SIGKILL"); });
  EXPECT_EQ(deaths.Await(7, 60000, nullptr).value_or(""), "killed by SIGKILL");
  died.join();
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
