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

// The watch's rounds as EngineHealth::Loop runs them (NextRoundAt), with a
// fake clock: an engine that answers in 3 ms until `silent_from`, then gives
// no answer until a probe gives up after `probe` ms. Returns when the judge
// called it hung and when it last answered.
struct Judged {
  int64_t at = -1;
  int64_t last_answer = -1;
};
Judged RunRounds(HangJudge& judge, int64_t interval, int64_t probe, int64_t silent_from) {
  Judged j;
  int64_t start = 0;
  for (int round = 0; round < 1000; ++round) {
    start = judge.NextRoundAt(start, interval, probe);
    const bool answers = start < silent_from;
    const int64_t end = start + (answers ? 3 : probe);
    if (answers) j.last_answer = end;
    if (judge.Observe(7, end, answers ? Idle() : EngineProbe{})) {
      j.at = end;
      return j;
    }
  }
  return j;
}

// The deadline is hang_timeout after the last answer, whatever the interval
// and the probe's own timeout: with the defaults (10 s, 60 s, probes of 5 s)
// the rounds alone would judge it 5-15 s late.
TEST(HangJudgeTest, ASilentEngineIsJudgedAtItsDeadlineNotAtTheNextRound) {
  struct Setting {
    int64_t interval, probe, hang;
  };
  // The defaults; the soak's (2 s, 10 s); the integration test's (1 s, 3 s).
  for (const Setting& set : {Setting{10000, 5000, kHang}, Setting{2000, 2000, 10000}, Setting{1000, 1000, 3000}}) {
    for (int64_t silent_from = 10001; silent_from < 40000; silent_from += 137) {
      HangJudge judge(set.hang);
      const Judged j = RunRounds(judge, set.interval, set.probe, silent_from);
      ASSERT_GE(j.at, 0) << silent_from;
      ASSERT_EQ(j.at, j.last_answer + set.hang) << silent_from << " interval " << set.interval;
      ASSERT_LE(j.at, silent_from + set.hang + 3) << silent_from;  // its last answer came before the stop
    }
  }
}

// A request stuck while /health and /slots answer: judged hang_timeout after
// its last progress, not at the next interval's round.
TEST(HangJudgeTest, AStuckRequestIsJudgedAtItsDeadline) {
  HangJudge judge(kHang);
  EXPECT_FALSE(judge.Observe(7, 3, Busy(200, Slots(1))));
  EXPECT_FALSE(judge.Observe(7, 10003, Busy(200, Slots(2))));  // the last progress
  int64_t start = 10000, end = 10003;
  for (;;) {
    start = judge.NextRoundAt(start, 25000, 5000);
    end = start + 3;
    if (judge.Observe(7, end, Busy(200, Slots(2)))) break;
    ASSERT_LT(end, 200000);
  }
  // Its round started at the deadline (and took its 3 ms).
  EXPECT_EQ(start, 10003 + kHang);
}

// A probe that fails at once (nothing listens) never makes the rounds spin.
TEST(HangJudgeTest, RoundsComeAtLeastAMinimumGapApart) {
  HangJudge judge(kHang);
  EXPECT_FALSE(judge.Observe(7, 0, Idle()));
  EXPECT_FALSE(judge.Observe(7, 59000, EngineProbe{}));
  EXPECT_EQ(judge.NextRoundAt(59000, 10000, 5000), 59000 + HangJudge::kMinGapMs);
  EXPECT_EQ(judge.NextRoundAt(50000, 10000, 5000), 55000);
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
