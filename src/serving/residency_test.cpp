#include "serving/residency.h"

#include <gtest/gtest.h>

namespace mw::serving {
namespace {

using Names = std::vector<std::string>;
const auto kAlwaysFits = [](size_t) { return true; };

TEST(Residency, NoCapAndFittingEvictsNothing) {
  EvictionPlan plan = PlanEviction({{"a", 1, false}, {"b", 2, false}}, 0, kAlwaysFits);
  EXPECT_EQ(plan.outcome, EvictionPlan::Outcome::kFits);
  EXPECT_TRUE(plan.evict.empty());
  EXPECT_EQ(plan.idle, 2u);
}

TEST(Residency, CapEvictsTheLeastRecentlyUsedIdleModels) {
  // Three loaded, cap 2: two must go for a fourth; "b" is the oldest, then "c".
  EvictionPlan plan = PlanEviction({{"a", 30, false}, {"b", 10, false}, {"c", 20, false}}, 2, kAlwaysFits);
  EXPECT_EQ(plan.outcome, EvictionPlan::Outcome::kFits);
  EXPECT_EQ(plan.evict, (Names{"b", "c"}));
  // Under the cap: nothing.
  EXPECT_TRUE(PlanEviction({{"a", 1, false}}, 2, kAlwaysFits).evict.empty());
  // Equal last use: by name, so the plan never depends on the input order.
  EXPECT_EQ(PlanEviction({{"z", 5, false}, {"y", 5, false}}, 2, kAlwaysFits).evict, (Names{"y"}));
}

TEST(Residency, ABusyModelIsNeverEvicted) {
  // "a" is the least recently used but has a request in flight.
  EvictionPlan plan = PlanEviction({{"a", 1, true}, {"b", 2, false}}, 2, kAlwaysFits);
  EXPECT_EQ(plan.outcome, EvictionPlan::Outcome::kFits);
  EXPECT_EQ(plan.evict, (Names{"b"}));
  EXPECT_EQ(plan.busy, (Names{"a"}));
  // Cap 1 with the only loaded model busy: nothing can be done, nothing is evicted.
  EvictionPlan blocked = PlanEviction({{"a", 1, true}}, 1, kAlwaysFits);
  EXPECT_EQ(blocked.outcome, EvictionPlan::Outcome::kCapBusy);
  EXPECT_TRUE(blocked.evict.empty());
  EXPECT_EQ(blocked.busy, (Names{"a"}));
  EXPECT_EQ(blocked.idle, 0u);
  // Cap 2, three loaded, two busy: one idle is not enough for two evictions.
  EXPECT_EQ(PlanEviction({{"a", 1, true}, {"b", 2, true}, {"c", 3, false}}, 2, kAlwaysFits).outcome,
            EvictionPlan::Outcome::kCapBusy);
}

TEST(Residency, MemoryEvictsUntilItFits) {
  std::vector<size_t> asked;
  // Fits once two models are gone.
  EvictionPlan plan = PlanEviction({{"a", 3, false}, {"b", 1, false}, {"c", 2, false}, {"d", 0, true}}, 0,
                                   [&](size_t n) {
                                     asked.push_back(n);
                                     return n >= 2;
                                   });
  EXPECT_EQ(plan.outcome, EvictionPlan::Outcome::kFits);
  EXPECT_EQ(plan.evict, (Names{"b", "c"}));
  EXPECT_EQ(asked, (std::vector<size_t>{0, 1, 2}));
  // The cap's evictions count towards the memory: asked from there on.
  asked.clear();
  plan = PlanEviction({{"a", 3, false}, {"b", 1, false}, {"c", 2, false}}, 3, [&](size_t n) {
    asked.push_back(n);
    return n >= 2;
  });
  EXPECT_EQ(plan.evict, (Names{"b", "c"}));
  EXPECT_EQ(asked, (std::vector<size_t>{1, 2}));
}

TEST(Residency, MemoryThatCannotFitEvictsOnlyWhatTheCapDemands) {
  const auto never = [](size_t) { return false; };
  EvictionPlan plan = PlanEviction({{"a", 1, false}, {"b", 2, false}}, 0, never);
  EXPECT_EQ(plan.outcome, EvictionPlan::Outcome::kNoFit);
  EXPECT_TRUE(plan.evict.empty());
  plan = PlanEviction({{"a", 1, false}, {"b", 2, false}}, 2, never);
  EXPECT_EQ(plan.outcome, EvictionPlan::Outcome::kNoFit);
  EXPECT_EQ(plan.evict, (Names{"a"}));
  // Nothing loaded at all.
  EXPECT_EQ(PlanEviction({}, 0, never).outcome, EvictionPlan::Outcome::kNoFit);
  EXPECT_EQ(PlanEviction({}, 1, kAlwaysFits).outcome, EvictionPlan::Outcome::kFits);
}

}  // namespace
}  // namespace mw::serving
