// LoadQueue: one job at a time, joining, cancellation, shutdown, and with
// the real state machine, at most one model in testing. No sleeps: threads
// are coordinated with promises and condition variables.
#include "compat/load_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "compat/state_machine.h"
#include "support/registry_test_util.h"

namespace mw {
namespace {

using Queue = LoadQueue<std::string>;

std::string Cancelled(const std::string& name) { return "cancelled:" + name; }

// A job that blocks until Release(), counting how often it ran.
class Gate {
 public:
  Queue::Job Job(std::string result) {
    return [this, result] {
      runs_.fetch_add(1);
      started_.set_value();
      release_.get_future().wait();
      return result;
    };
  }
  void WaitStarted() { started_.get_future().wait(); }
  void Release() { release_.set_value(); }
  int runs() const { return runs_.load(); }

 private:
  std::promise<void> started_;
  std::promise<void> release_;
  std::atomic<int> runs_{0};
};

TEST(LoadQueue, RunsAJobAndDeliversItsResult) {
  Queue q(Cancelled);
  auto t = q.Submit("m", [] { return std::string("loaded"); });
  EXPECT_FALSE(t.joined);
  EXPECT_EQ(t.result.get(), "loaded");
  EXPECT_FALSE(q.StateOf("m").has_value());
  EXPECT_TRUE(q.Snapshot().empty());
}

TEST(LoadQueue, ConcurrentRequestsForOneModelJoinOneJob) {
  Queue q(Cancelled);
  Gate gate;
  auto first = q.Submit("m", gate.Job("result-1"));
  gate.WaitStarted();
  EXPECT_EQ(q.StateOf("m"), LoadQueueState::kRunning);

  constexpr int kCallers = 8;
  std::atomic<int> submitted{0};
  std::atomic<int> joined{0};
  std::vector<std::string> results(kCallers);
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] {
      auto t = q.Submit("m", [] { return std::string("must not run"); });
      joined.fetch_add(t.joined ? 1 : 0);
      submitted.fetch_add(1);
      results[i] = t.result.get();
    });
  }
  while (submitted.load() < kCallers) std::this_thread::yield();
  gate.Release();
  for (auto& c : callers) c.join();
  EXPECT_EQ(first.result.get(), "result-1");
  EXPECT_EQ(joined.load(), kCallers);
  EXPECT_EQ(gate.runs(), 1);
  for (const auto& r : results) EXPECT_EQ(r, "result-1");

  // The job is done: the next request starts a new one.
  auto again = q.Submit("m", [] { return std::string("result-2"); });
  EXPECT_FALSE(again.joined);
  EXPECT_EQ(again.result.get(), "result-2");
}

// What an unload that stops a running load waits for (ModelService::Unload):
// the running job's own result; nothing for a queued job, another model's, or
// from inside the job (it must not wait for itself).
TEST(LoadQueue, RunningResultIsTheRunningJobsOwn) {
  Queue q(Cancelled);
  Gate gate;
  std::optional<std::shared_future<std::string>> from_inside = std::shared_future<std::string>{};
  auto first = q.Submit("m", [&] {
    from_inside = q.RunningResult("m");
    return gate.Job("result-1")();
  });
  gate.WaitStarted();
  auto queued = q.Submit("n", [] { return std::string("result-n"); });
  auto running = q.RunningResult("m");
  ASSERT_TRUE(running.has_value());
  EXPECT_FALSE(q.RunningResult("n").has_value());  // queued, not running
  EXPECT_FALSE(q.RunningResult("x").has_value());
  EXPECT_EQ(running->wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  gate.Release();
  EXPECT_EQ(running->get(), "result-1");
  EXPECT_FALSE(from_inside.has_value());
  EXPECT_EQ(queued.result.get(), "result-n");
  EXPECT_FALSE(q.RunningResult("m").has_value());
}

TEST(LoadQueue, JobsRunOneAtATimeInOrder) {
  std::vector<std::pair<std::string, LoadQueueState>> changes;
  std::mutex changes_mu;
  Queue q(Cancelled, [&](const std::string& name, LoadQueueState s) {
    std::lock_guard<std::mutex> lock(changes_mu);
    changes.emplace_back(name, s);
  });
  Gate gate;
  std::atomic<int> active{0};
  std::atomic<int> max_active{0};
  std::vector<std::string> order;
  auto counted = [&](std::string name) {
    return [&, name] {
      const int now = active.fetch_add(1) + 1;
      int seen = max_active.load();
      while (now > seen && !max_active.compare_exchange_weak(seen, now)) {
      }
      order.push_back(name);  // only one job runs at a time
      active.fetch_sub(1);
      return name;
    };
  };
  auto a = q.Submit("a", gate.Job("a"));
  gate.WaitStarted();
  auto b = q.Submit("b", counted("b"));
  auto c = q.Submit("c", counted("c"));
  const auto snap = q.Snapshot();
  ASSERT_EQ(snap.size(), 3u);
  EXPECT_EQ(snap[0].model_name, "a");
  EXPECT_EQ(snap[0].state, LoadQueueState::kRunning);
  EXPECT_EQ(snap[1].model_name, "b");
  EXPECT_EQ(snap[1].state, LoadQueueState::kQueued);
  EXPECT_EQ(snap[2].model_name, "c");
  EXPECT_EQ(q.StateOf("c"), LoadQueueState::kQueued);
  gate.Release();
  EXPECT_EQ(c.result.get(), "c");
  EXPECT_EQ(b.result.get(), "b");
  EXPECT_EQ(max_active.load(), 1);
  EXPECT_EQ(order, (std::vector<std::string>{"b", "c"}));
  q.Shutdown();
  std::lock_guard<std::mutex> lock(changes_mu);
  const std::vector<std::pair<std::string, LoadQueueState>> a_changes = {
      {"a", LoadQueueState::kQueued}, {"a", LoadQueueState::kRunning}, {"a", LoadQueueState::kDone}};
  std::vector<std::pair<std::string, LoadQueueState>> seen_a;
  for (const auto& ch : changes) {
    if (ch.first == "a") seen_a.push_back(ch);
  }
  EXPECT_EQ(seen_a, a_changes);
}

TEST(LoadQueue, CancelQueuedAndShutdownResolveWaiters) {
  Queue q(Cancelled);
  Gate gate;
  auto running = q.Submit("a", gate.Job("a"));
  gate.WaitStarted();
  auto queued = q.Submit("b", [] { return std::string("b"); });
  auto dropped = q.Submit("c", [] { return std::string("c"); });
  EXPECT_FALSE(q.CancelQueued("a"));  // running: cannot be cancelled here
  EXPECT_TRUE(q.CancelQueued("b"));
  EXPECT_FALSE(q.CancelQueued("b"));
  EXPECT_EQ(queued.result.get(), "cancelled:b");

  std::thread stopper([&] { q.Shutdown(); });
  EXPECT_EQ(dropped.result.get(), "cancelled:c");
  gate.Release();  // Shutdown waits for the running job
  stopper.join();
  EXPECT_EQ(running.result.get(), "a");
  auto late = q.Submit("d", [] { return std::string("d"); });
  EXPECT_EQ(late.result.get(), "cancelled:d");
}

TEST(LoadQueue, AThrowingJobReachesEveryWaiter) {
  Queue q(Cancelled);
  auto t = q.Submit("m", []() -> std::string { throw std::runtime_error("boom"); });
  EXPECT_THROW(t.result.get(), std::runtime_error);
  EXPECT_EQ(q.Submit("m", [] { return std::string("ok"); }).result.get(), "ok");
}

// With the real state machine: many concurrent load requests for several
// models; each model is attempted once per wave and never two at a time.
TEST(LoadQueue, WithStateMachineAtMostOneModelIsTesting) {
  testing_util::TempDir dir;
  auto reg = Registry::Open(dir.File("registry.db"));
  ASSERT_TRUE(reg.ok());
  StateMachine sm(**reg);
  const std::vector<std::string> names = {"m1", "m2", "m3"};
  for (const auto& n : names) {
    ModelRecord m;
    m.model_name = n;
    ASSERT_TRUE((*reg)->AddModel(m).ok());
  }
  LoadQueue<Status> q([](const std::string& n) { return AbortedError("load of " + n + " cancelled"); });
  std::atomic<int> max_testing{0};
  auto load_job = [&](const std::string& name) {
    return [&, name]() -> Status {
      auto id = sm.BeginAttempt(name, false, "test");
      if (!id.ok()) return id.status();
      const int testing = static_cast<int>((*reg)->CountByStatus()->at(CompatStatus::kTesting));
      if (testing > max_testing.load()) max_testing.store(testing);
      return sm.FinishSuccess(*id).status();
    };
  };
  std::vector<std::thread> callers;
  std::atomic<int> failures{0};
  for (int i = 0; i < 12; ++i) {
    callers.emplace_back([&, i] {
      const std::string& name = names[static_cast<size_t>(i) % names.size()];
      if (!q.Submit(name, load_job(name)).result.get().ok()) failures.fetch_add(1);
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(max_testing.load(), 1);
  int64_t loads = 0;
  for (const auto& n : names) {
    auto m = (*reg)->GetModel(n);
    EXPECT_EQ(m->compatibility_status, CompatStatus::kCompatible);
    EXPECT_GE(m->total_loads, 1);
    loads += m->total_loads;
  }
  EXPECT_LE(loads, 12);  // joined requests did not start attempts of their own
  EXPECT_TRUE((*reg)->CheckIntegrity().ok());
}

}  // namespace
}  // namespace mw
