#include "app/engine_health.h"

#include <gtest/gtest.h>

namespace mw::app {
namespace {

constexpr int64_t kHang = 60000;

EngineProbe Idle() {
  EngineProbe probe;
  probe.answered = true;
  return probe;
}

EngineProbe Busy(std::optional<int> status, std::string body) {
  EngineProbe probe;
  probe.answered = true;
  probe.in_flight = 1;
  probe.slots_asked = true;
  probe.slots_status = status;
  probe.slots_body = std::move(body);
  return probe;
}

std::string Slots(int n_decoded, int n_prompt_processed = 10) {
  return R"([{"id":0,"is_processing":true,"n_prompt_tokens_processed":)" + std::to_string(n_prompt_processed) +
         R"(,"next_token":[{"n_decoded":)" + std::to_string(n_decoded) + "}]}]";
}

TEST(HangJudgeTest, AnEngineThatAnswersNothingForTheTimeoutIsHungOnce) {
  HangJudge judge(kHang);
  EXPECT_FALSE(judge.Observe(7, 0, Idle()));
  EXPECT_FALSE(judge.Observe(7, 10000, EngineProbe{}));
  EXPECT_FALSE(judge.Observe(7, 59999, EngineProbe{}));
  std::optional<std::string> reason = judge.Observe(7, 60000, EngineProbe{});
  ASSERT_TRUE(reason);
  EXPECT_NE(reason->find("did not answer /health for 60 s"), std::string::npos) << *reason;
  // Judged once: the next round starts a fresh clock.
  EXPECT_FALSE(judge.Observe(7, 70000, EngineProbe{}));
}

TEST(HangJudgeTest, AnAnswerRestartsTheClock) {
  HangJudge judge(kHang);
  EXPECT_FALSE(judge.Observe(7, 0, Idle()));
  EXPECT_FALSE(judge.Observe(7, 50000, Idle()));
  EXPECT_FALSE(judge.Observe(7, 100000, EngineProbe{}));
  EXPECT_TRUE(judge.Observe(7, 110000, EngineProbe{}));
}

TEST(HangJudgeTest, ARequestWithoutProgressIsHungEvenWhileHealthAnswers) {
  HangJudge judge(kHang);
  EXPECT_FALSE(judge.Observe(7, 0, Busy(200, Slots(5))));
  EXPECT_FALSE(judge.Observe(7, 30000, Busy(200, Slots(5))));
  std::optional<std::string> reason = judge.Observe(7, 60000, Busy(200, Slots(5)));
  ASSERT_TRUE(reason);
  EXPECT_NE(reason->find("no progress on 1 request(s) for 60 s"), std::string::npos) << *reason;
}

TEST(HangJudgeTest, SlotsThatDoNotAnswerWhileARequestRunsAreNoProgress) {
  HangJudge judge(kHang);
  EXPECT_FALSE(judge.Observe(7, 0, Busy(std::nullopt, "")));
  EXPECT_TRUE(judge.Observe(7, 60000, Busy(std::nullopt, "")));
}

TEST(HangJudgeTest, PromptProcessingAndGenerationAreProgress) {
  // A long prompt on a slow device: only n_prompt_tokens_processed moves.
  HangJudge judge(kHang);
  for (int i = 0; i <= 10; ++i) EXPECT_FALSE(judge.Observe(7, i * 30000, Busy(200, Slots(0, 512 * i))));
  for (int i = 11; i <= 20; ++i) EXPECT_FALSE(judge.Observe(7, i * 30000, Busy(200, Slots(i))));
}

TEST(HangJudgeTest, WhatCannotBeJudgedIsNeverAHang) {
  HangJudge judge(kHang);
  // No request in the engine; an engine without /slots; no slot processing.
  for (int i = 0; i <= 10; ++i) EXPECT_FALSE(judge.Observe(1, i * 30000, Idle()));
  for (int i = 0; i <= 10; ++i) EXPECT_FALSE(judge.Observe(2, i * 30000, Busy(404, "not found")));
  for (int i = 0; i <= 10; ++i) {
    EXPECT_FALSE(judge.Observe(3, i * 30000, Busy(200, R"([{"id":0,"is_processing":false}])")));
  }
}

TEST(HangJudgeTest, EnginesThatEndedAreForgotten) {
  HangJudge judge(kHang);
  EXPECT_FALSE(judge.Observe(7, 0, EngineProbe{}));
  judge.Keep({});
  // A new engine with a reused pid starts afresh.
  EXPECT_FALSE(judge.Observe(7, 60000, EngineProbe{}));
}

TEST(LastHangsTest, ReadsOnceAndAgainAfterANewHangOrAFailedRead) {
  int reads = 0;
  bool fail = true;
  LastHangs hangs([&]() -> Result<std::map<std::string, std::string>> {
    ++reads;
    if (fail) return UnavailableError("database locked");
    return std::map<std::string, std::string>{{"m", "2026-12-07T13:00:00Z"}};
  });
  EXPECT_FALSE(hangs.Get("m"));  // the read failed: no time, read again next time
  fail = false;
  EXPECT_EQ(hangs.Get("m").value_or(""), "2026-12-07T13:00:00Z");
  EXPECT_FALSE(hangs.Get("other"));
  EXPECT_EQ(reads, 2);
  hangs.Invalidate();
  EXPECT_TRUE(hangs.Get("m"));
  EXPECT_EQ(reads, 3);
}

}  // namespace
}  // namespace mw::app
