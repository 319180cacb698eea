#include "serving/serving_gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <thread>
#include <vector>

#include "common/duration.h"

namespace mw::serving {
namespace {

std::atomic<int64_t> g_now{1000};

// The slots' owner for these tests (the server's is app/ModelRuntimeTable).
class MapSlotStore : public SlotStore {
 public:
  std::mutex& Mutex() const override { return mu_; }
  std::condition_variable& Changed() const override { return changed_; }
  ModelSlots& SlotsOf(const std::string& model) override { return slots_[model]; }
  ModelSlots* FindSlots(const std::string& model) override {
    auto it = slots_.find(model);
    return it == slots_.end() ? nullptr : &it->second;
  }
  void ForEachSlots(const std::function<void(const std::string&, ModelSlots&)>& fn) override {
    for (auto& [name, slots] : slots_) fn(name, slots);
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  std::map<std::string, ModelSlots> slots_;
};
int64_t FakeClock() { return g_now.load(); }

TEST(ServingGate, ParallelSlotsThenQueueThenFull) {
  MapSlotStore store;
  ServingGate gate(store, &FakeClock);
  SlotLimits limits{2, 1};
  auto a = gate.Acquire("m", limits, 0);
  auto b = gate.Acquire("m", limits, 0);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(gate.InEngine("m"), 2);
  auto waiter = std::async(std::launch::async, [&] { return gate.Acquire("m", limits, 0); });
  while (gate.Waiting("m") != 1) std::this_thread::yield();
  auto refused = gate.Acquire("m", limits, 0);
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  // Another model is not affected.
  EXPECT_TRUE(gate.Acquire("other", limits, 0).ok());
  a->Release(FakeClock());
  auto c = waiter.get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(gate.InEngine("m"), 2);
}

// The /metrics queue depth: only a request that waits counts, while it waits.
TEST(ServingGate, OnWaitingCountsOnlyTheRequestsThatWait) {
  MapSlotStore store;
  std::atomic<int> depth{0};
  std::atomic<int> calls{0};
  ServingGate gate(store, &FakeClock, [&](int delta) {
    depth += delta;
    ++calls;
  });
  SlotLimits limits{1, 2};
  auto a = gate.Acquire("m", limits, 0);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(calls.load(), 0);  // a free slot: no wait
  auto waiter = std::async(std::launch::async, [&] { return gate.Acquire("m", limits, 0); });
  while (gate.Waiting("m") != 1) std::this_thread::yield();
  EXPECT_EQ(depth.load(), 1);
  EXPECT_EQ(gate.Acquire("m", SlotLimits{1, 1}, 0).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(depth.load(), 1);  // a refusal never waited
  a->Release(FakeClock());
  auto b = waiter.get();  // held: the next request waits
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(depth.load(), 0);
  // A waiter woken by Close() stops waiting too.
  auto closed = std::async(std::launch::async, [&] { return gate.Acquire("m", limits, 0); });
  while (gate.Waiting("m") != 1) std::this_thread::yield();
  EXPECT_EQ(depth.load(), 1);
  gate.Close();
  EXPECT_EQ(closed.get().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(depth.load(), 0);
}

TEST(ServingGate, IdleDeadlineFromTheLastRelease) {
  MapSlotStore store;
  ServingGate gate(store, &FakeClock);
  {
    auto s = gate.Acquire("m", {}, 5000);
    ASSERT_TRUE(s.ok());
    EXPECT_FALSE(gate.NextDeadline());  // in use: no deadline
    s->Release(10000);
  }
  EXPECT_EQ(gate.NextDeadline(), 15000);
  EXPECT_TRUE(gate.DueForUnload(14999).empty());
  auto due = gate.DueForUnload(15000);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0], "m");
  EXPECT_TRUE(gate.DueForUnload(99999).empty());  // handed out once
  // A request that arrives while it is unloading waits for EndUnload.
  auto later = std::async(std::launch::async, [&] { return gate.Acquire("m", {}, 0); });
  while (gate.Waiting("m") != 1) std::this_thread::yield();
  gate.EndUnload("m");
  EXPECT_TRUE(later.get().ok());
}

TEST(ServingGate, KeepAliveZeroForeverAndClear) {
  MapSlotStore store;
  ServingGate gate(store, &FakeClock);
  auto s = gate.Acquire("m", {}, 0);
  ASSERT_TRUE(s.ok());
  s->Release(500);
  EXPECT_EQ(gate.DueForUnload(500).size(), 1u);  // "0": due at once
  gate.EndUnload("m");
  auto f = gate.Acquire("m", {}, kForever);
  ASSERT_TRUE(f.ok());
  f->Release(600);
  EXPECT_FALSE(gate.NextDeadline());  // "-1": never
  auto g = gate.Acquire("m", {}, 1000);
  ASSERT_TRUE(g.ok());
  g->set_keep_alive_ms(2000);
  g->Release(700);
  EXPECT_EQ(gate.NextDeadline(), 2700);
  gate.ClearIdle("m");
  EXPECT_FALSE(gate.NextDeadline());
}

TEST(ServingGate, ArrivalOrderAndClose) {
  MapSlotStore store;
  ServingGate gate(store, &FakeClock);
  SlotLimits limits{1, 8};
  auto first = gate.Acquire("m", limits, 0);
  ASSERT_TRUE(first.ok());
  std::vector<int> order;
  std::mutex order_mu;
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      auto s = gate.Acquire("m", limits, 0);
      std::lock_guard lock(order_mu);
      if (s.ok()) order.push_back(i);
    });
    while (gate.Waiting("m") != i + 1) std::this_thread::yield();
  }
  first->Release(0);
  for (auto& t : threads) t.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
  auto held = gate.Acquire("m", limits, 0);
  auto blocked = std::async(std::launch::async, [&] { return gate.Acquire("m", limits, 0); });
  while (gate.Waiting("m") != 1) std::this_thread::yield();
  gate.Close();
  EXPECT_EQ(blocked.get().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(gate.Acquire("m", limits, 0).status().code(), StatusCode::kUnavailable);
}

// Residency (SPEC §12): an eviction never takes a model with a request in
// flight or waiting; last use is the end of the last request or MarkUsed.
TEST(ServingGate, TryBeginUnloadOnlyWhenIdleAndLastUse) {
  MapSlotStore store;
  ServingGate gate(store, &FakeClock);
  EXPECT_FALSE(gate.UsageOf("m").last_used);
  gate.MarkUsed("m", 100);  // loaded at 100
  EXPECT_EQ(gate.UsageOf("m").last_used, 100);
  auto s = gate.Acquire("m", {1, 4}, 5000);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(gate.UsageOf("m").in_engine, 1);
  EXPECT_FALSE(gate.TryBeginUnload("m"));  // in flight
  EXPECT_EQ(gate.UsageOf("m").last_used, 100);  // a running request is not a use yet
  s->Release(900);
  ServingGate::Usage u = gate.UsageOf("m");
  EXPECT_EQ(u.last_used, 900);
  EXPECT_EQ(u.idle_deadline, 5900);
  EXPECT_TRUE(gate.TryBeginUnload("m"));
  u = gate.UsageOf("m");
  EXPECT_TRUE(u.unloading);
  EXPECT_FALSE(u.idle_deadline);
  EXPECT_FALSE(gate.TryBeginUnload("m"));  // once
  EXPECT_TRUE(gate.DueForUnload(99999).empty());
  // A request arriving meanwhile waits, and then the model is busy again.
  auto later = std::async(std::launch::async, [&] { return gate.Acquire("m", {1, 4}, 0); });
  while (gate.Waiting("m") != 1) std::this_thread::yield();
  gate.EndUnload("m");
  auto again = later.get();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(gate.TryBeginUnload("m"));
  // Queued behind a running request: idle only when both are done.
  auto waiter = std::async(std::launch::async, [&] { return gate.Acquire("m", {1, 4}, 0); });
  while (gate.Waiting("m") != 1) std::this_thread::yield();
  again->Release(1000);
  auto third = waiter.get();
  ASSERT_TRUE(third.ok());
  EXPECT_FALSE(gate.TryBeginUnload("m"));
  third->Release(1100);
  EXPECT_TRUE(gate.TryBeginUnload("m"));
}

TEST(Duration, Parse) {
  EXPECT_EQ(*ParseDurationMs("5m"), 300000);
  EXPECT_EQ(*ParseDurationMs("30s"), 30000);
  EXPECT_EQ(*ParseDurationMs("30"), 30000);
  EXPECT_EQ(*ParseDurationMs("250ms"), 250);
  EXPECT_EQ(*ParseDurationMs("1h"), 3600000);
  EXPECT_EQ(*ParseDurationMs("0"), 0);
  EXPECT_EQ(*ParseDurationMs("-1"), kForever);
  EXPECT_EQ(*ParseDurationMs("-5m"), kForever);
  for (const char* bad : {"", "m", "5x", "1.5m", "5 m", "99999999999999999999h", "-"}) {
    EXPECT_FALSE(ParseDurationMs(bad).ok()) << bad;
  }
  EXPECT_EQ(*DurationFromSeconds(2.5), 2500);
  EXPECT_EQ(*DurationFromSeconds(-1), kForever);
}

}  // namespace
}  // namespace mw::serving
