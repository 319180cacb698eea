// System-wide failure detection (SPEC §11), edge by edge: attempt outcomes
// in, environment state out.
#include "compat/system_failure.h"

#include <gtest/gtest.h>

namespace mw {
namespace {

using Clock = SystemFailureDetector::Clock;
using std::chrono::minutes;

SystemFailureDetector::FailedAttempt F(int64_t id, std::string model, std::string category, Clock::time_point at) {
  return {id, std::move(model), std::move(category), "CUDA error", at};
}

const Clock::time_point t0 = Clock::time_point(std::chrono::hours(1000));

TEST(SystemFailureTest, ThreeModelsDeviceLevelWithinTenMinutesIsFailing) {
  SystemFailureDetector d;
  EXPECT_TRUE(d.BlamesModel("gpu_context"));
  EXPECT_FALSE(d.BlamesModel("device_unavailable"));  // never the model's fault
  EXPECT_TRUE(d.OnFailure(F(1, "a", "gpu_context", t0), "T1").empty());
  EXPECT_TRUE(d.OnFailure(F(2, "b", "device_unavailable", t0 + minutes(4)), "T2").empty());
  EXPECT_FALSE(d.state().failing);
  std::vector<int64_t> revert = d.OnFailure(F(3, "c", "gpu_context", t0 + minutes(9)), "T3");
  EXPECT_EQ(revert, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(d.state().failing);
  EXPECT_EQ(d.state().since, "T3");
  EXPECT_NE(d.state().reason.find("'a' (gpu_context: CUDA error)"), std::string::npos) << d.state().reason;
  EXPECT_NE(d.state().reason.find("'c'"), std::string::npos);
  // While failing: device-level failures blame no model; others still do.
  EXPECT_FALSE(d.BlamesModel("gpu_context"));
  EXPECT_TRUE(d.BlamesModel("out_of_memory"));
  EXPECT_TRUE(d.OnFailure(F(4, "d", "gpu_context", t0 + minutes(10)), "T4").empty());  // no second revert
  EXPECT_TRUE(d.OnSuccess());
  EXPECT_FALSE(d.state().failing);
  EXPECT_FALSE(d.state().since.has_value());
  // After recovery, a lone device-level failure is blamed normally.
  EXPECT_TRUE(d.BlamesModel("gpu_context"));
  EXPECT_TRUE(d.OnFailure(F(5, "e", "gpu_context", t0 + minutes(11)), "T5").empty());
  EXPECT_FALSE(d.state().failing);
}

TEST(SystemFailureTest, NotAStreak) {
  {  // the same model twice: only two different models
    SystemFailureDetector d;
    d.OnFailure(F(1, "a", "gpu_context", t0), "");
    d.OnFailure(F(2, "a", "gpu_context", t0), "");
    EXPECT_TRUE(d.OnFailure(F(3, "b", "gpu_context", t0), "").empty());
    EXPECT_FALSE(d.state().failing);
    // ... but the next different model makes the last 3 a, b, c.
    EXPECT_EQ(d.OnFailure(F(4, "c", "gpu_context", t0), ""), (std::vector<int64_t>{2, 3, 4}));
  }
  {  // more than 10 minutes from first to last
    SystemFailureDetector d;
    d.OnFailure(F(1, "a", "gpu_context", t0), "");
    d.OnFailure(F(2, "b", "gpu_context", t0 + minutes(5)), "");
    EXPECT_TRUE(d.OnFailure(F(3, "c", "gpu_context", t0 + minutes(11)), "").empty());
    EXPECT_FALSE(d.state().failing);
  }
  {  // a success in between
    SystemFailureDetector d;
    d.OnFailure(F(1, "a", "gpu_context", t0), "");
    d.OnFailure(F(2, "b", "gpu_context", t0), "");
    EXPECT_FALSE(d.OnSuccess());
    EXPECT_TRUE(d.OnFailure(F(3, "c", "gpu_context", t0), "").empty());
  }
  {  // a failure that is not device-level breaks it
    SystemFailureDetector d;
    d.OnFailure(F(1, "a", "gpu_context", t0), "");
    d.OnFailure(F(2, "b", "out_of_memory", t0), "");
    EXPECT_TRUE(d.OnFailure(F(3, "c", "gpu_context", t0), "").empty());
    EXPECT_FALSE(d.state().failing);
  }
}

TEST(SystemFailureTest, ResetAndProbe) {
  SystemFailureDetector d;
  EXPECT_FALSE(d.OnProbe({}, "T0"));  // nothing missing, nothing to change
  EXPECT_TRUE(d.OnProbe({"gpu CUDA0 NVIDIA H200"}, "T1"));
  EXPECT_TRUE(d.state().failing);
  EXPECT_TRUE(d.state().devices_missing);
  EXPECT_EQ(d.state().since, "T1");
  EXPECT_NE(d.state().reason.find("'gpu CUDA0 NVIDIA H200'"), std::string::npos) << d.state().reason;
  EXPECT_FALSE(d.BlamesModel("gpu_context"));
  EXPECT_FALSE(d.OnProbe({"gpu CUDA0 NVIDIA H200"}, "T2"));  // still missing: no change, same since
  EXPECT_EQ(d.state().since, "T1");
  EXPECT_TRUE(d.OnProbe({}, "T3"));  // it is back
  EXPECT_FALSE(d.state().failing);
  EXPECT_TRUE(d.BlamesModel("gpu_context"));

  EXPECT_TRUE(d.OnProbe({"gpu CUDA0"}, "T4"));
  EXPECT_TRUE(d.Reset());
  EXPECT_FALSE(d.state().failing);
  EXPECT_FALSE(d.Reset());
}

// Failing by a streak: a probe that sees every device changes nothing (no
// device was missing), one that then misses a device and sees it return does.
TEST(SystemFailureTest, AProbeEndsOnlyAFailingPeriodInWhichDevicesWereMissing) {
  SystemFailureDetector d;
  d.OnFailure(F(1, "a", "gpu_context", t0), "T1");
  d.OnFailure(F(2, "b", "gpu_context", t0), "T1");
  ASSERT_FALSE(d.OnFailure(F(3, "c", "gpu_context", t0), "T1").empty());
  EXPECT_FALSE(d.OnProbe({}, "T2"));
  EXPECT_TRUE(d.state().failing);
  EXPECT_FALSE(d.OnProbe({"gpu CUDA0"}, "T3"));  // already failing
  EXPECT_EQ(d.state().since, "T1");
  EXPECT_TRUE(d.OnProbe({}, "T4"));
  EXPECT_FALSE(d.state().failing);
  // The streak was forgotten with it.
  EXPECT_TRUE(d.OnFailure(F(4, "d", "gpu_context", t0), "T5").empty());
}

// A restart: the persisted state and the attempts that still count.
TEST(SystemFailureTest, RestoreKeepsTheStateAndTheStreak) {
  SystemFailureDetector d;
  d.Restore({}, {F(1, "a", "gpu_context", t0), F(2, "b", "device_unavailable", t0 + minutes(1))});
  EXPECT_FALSE(d.state().failing);
  EXPECT_TRUE(d.Evaluate("T").empty());  // two are no streak
  EXPECT_EQ(d.OnFailure(F(3, "c", "gpu_context", t0 + minutes(2)), "T3"), (std::vector<int64_t>{1, 2, 3}));

  // A streak completed just before a crash (its state not written): Evaluate decides it.
  SystemFailureDetector cut;
  cut.Restore({}, {F(1, "a", "gpu_context", t0), F(2, "b", "gpu_context", t0), F(3, "c", "gpu_context", t0)});
  EXPECT_EQ(cut.Evaluate("T"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(cut.state().failing);

  // Restarted while failing: still failing, no second revert.
  SystemFailureDetector failing;
  EnvironmentState state;
  state.failing = true;
  state.reason = "3 different models failed";
  state.since = "T0";
  failing.Restore(state, {F(1, "a", "gpu_context", t0), F(2, "b", "gpu_context", t0), F(3, "c", "gpu_context", t0)});
  EXPECT_TRUE(failing.state().failing);
  EXPECT_EQ(failing.state().since, "T0");
  EXPECT_TRUE(failing.Evaluate("T").empty());
  EXPECT_FALSE(failing.BlamesModel("gpu_context"));
  EXPECT_TRUE(failing.OnSuccess());

  // Only the last 3 count.
  SystemFailureDetector many;
  many.Restore({}, {F(1, "a", "out_of_memory", t0), F(2, "b", "gpu_context", t0), F(3, "c", "gpu_context", t0),
                    F(4, "d", "gpu_context", t0)});
  EXPECT_EQ(many.Evaluate("T"), (std::vector<int64_t>{2, 3, 4}));
}

}  // namespace
}  // namespace mw
