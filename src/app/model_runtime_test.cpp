#include "app/model_runtime.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/time_util.h"
#include "serving/serving_gate.h"

namespace mw::app {
namespace {

TEST(ModelRuntimeTableTest, AnUnknownModelIsIdleWithNothing) {
  ModelRuntimeTable table;
  ModelRuntime rt = table.Get("m");
  EXPECT_EQ(rt.state, api::LoadState::kIdle);
  EXPECT_FALSE(rt.engine);
  EXPECT_EQ(rt.phase, LoadPhase::kNone);
}

TEST(ModelRuntimeTableTest, AJobThatLoadedKeepsItsEndpointUntilNotLoaded) {
  ModelRuntimeTable table;
  table.BeginJob("m");
  ASSERT_TRUE(table.ProcessStarting("m"));
  table.ProcessStarted("m");
  table.EndJob("m", [] { return std::optional(RunningEngine{42, EngineEndpoint{"/run/m.sock"}}); }, std::nullopt);
  ModelRuntime rt = table.Get("m");
  EXPECT_EQ(rt.state, api::LoadState::kLoaded);
  ASSERT_TRUE(rt.engine);
  EXPECT_EQ(rt.engine->pid, 42);
  EXPECT_EQ(rt.engine->endpoint.socket_path, "/run/m.sock");
  table.MarkNotLoaded("m", "engine died");
  rt = table.Get("m");
  EXPECT_EQ(rt.state, api::LoadState::kIdle);
  EXPECT_FALSE(rt.engine);
  EXPECT_EQ(rt.last_error.value_or(""), "engine died");
}

TEST(ModelRuntimeTableTest, KeepErrorLetsAnEarlierDeathSpeak) {
  ModelRuntimeTable table;
  table.MarkNotLoaded("m", "killed by SIGKILL");
  table.BeginJob("m");
  table.EndJob("m", nullptr, "exited right after loading", /*keep_error=*/true);
  EXPECT_EQ(table.Get("m").last_error.value_or(""), "killed by SIGKILL");
}

// Triton's version check: the engine whose death was handled first is not
// taken as loaded by the job that started it.
TEST(ModelRuntimeTableTest, ALateLoadedOfADeadEngineCountsAsNotLoaded) {
  ModelRuntimeTable table;
  table.BeginJob("m");
  table.MarkNotLoaded("m", "crashed while serving", 42);
  auto engine = table.EndJob("m", [] { return std::optional(RunningEngine{42, EngineEndpoint{"/run/m.sock"}}); }, "exited", true);
  EXPECT_FALSE(engine);
  EXPECT_EQ(table.Get("m").state, api::LoadState::kIdle);
  EXPECT_EQ(table.Get("m").last_error.value_or(""), "crashed while serving");
}

// The /v1 slots are part of the model's runtime: the gate runs over the
// table, one snapshot shows them with the load state, and "not loaded" also
// ends the idle deadline (one change, not two maps).
TEST(ModelRuntimeTableTest, TheGateRunsOverTheTableAndNotLoadedEndsTheIdleDeadline) {
  ModelRuntimeTable table;
  serving::ServingGate gate(table, [] { return int64_t{1000}; });
  table.BeginJob("m");
  table.EndJob("m", [] { return std::optional(RunningEngine{7, EngineEndpoint{"/run/m.sock"}}); }, std::nullopt);
  {
    auto slot = gate.Acquire("m", {}, 5000);
    ASSERT_TRUE(slot.ok());
    EXPECT_EQ(table.Get("m").slots.in_engine, 1);
    EXPECT_EQ(table.Get("m").state, api::LoadState::kLoaded);
    slot->Release(2000);
  }
  ModelRuntime rt = table.Get("m");
  EXPECT_EQ(rt.slots.in_engine, 0);
  EXPECT_EQ(rt.slots.idle_deadline, 7000);
  EXPECT_EQ(gate.NextDeadline(), 7000);
  table.MarkNotLoaded("m", "engine died", 7);
  rt = table.Get("m");
  EXPECT_EQ(rt.state, api::LoadState::kIdle);
  EXPECT_FALSE(rt.slots.idle_deadline);
  EXPECT_FALSE(gate.NextDeadline());
  EXPECT_EQ(rt.slots.last_used, 2000);
}

// A deleted model's slots stay while a request holds one (the gate keeps a
// reference to them); the rest of its runtime is forgotten.
TEST(ModelRuntimeTableTest, EraseKeepsSlotsInUse) {
  ModelRuntimeTable table;
  serving::ServingGate gate(table, [] { return int64_t{1000}; });
  table.SetLastError("m", "old");
  auto slot = gate.Acquire("m", {}, 0);
  ASSERT_TRUE(slot.ok());
  table.Erase("m");
  EXPECT_FALSE(table.Get("m").last_error);
  EXPECT_EQ(gate.InEngine("m"), 1);
  slot->Release(1000);
  EXPECT_EQ(gate.InEngine("m"), 0);
  table.Erase("m");
  EXPECT_FALSE(table.Get("m").slots.last_used);
}

TEST(ModelRuntimeTableTest, NoJobStartingMeansNoWait) {
  ModelRuntimeTable table;
  bool waited = false;
  EXPECT_TRUE(table.CancelStartingJob("m", MonotonicMillis() + 1000, [&] { waited = true; }));
  EXPECT_FALSE(waited);
}

// The unload of a starting load: it waits on the condition until the job
// ends, and the job, asked not to, starts no process.
TEST(ModelRuntimeTableTest, AnUnloadCancelsAStartingJobAndWaitsForItsEnd) {
  ModelRuntimeTable table;
  table.BeginJob("m");
  std::atomic<bool> waiting{false};
  std::atomic<bool> settled{false};
  std::thread unload([&] {
    settled = table.CancelStartingJob("m", MonotonicMillis() + 60000, [&] { waiting = true; });
  });
  while (!waiting) std::this_thread::yield();
  // The cancel is set before on_wait runs.
  EXPECT_FALSE(table.ProcessStarting("m"));
  table.EndJob("m", nullptr, std::nullopt);
  unload.join();
  EXPECT_TRUE(settled);
  EXPECT_EQ(table.Get("m").phase, LoadPhase::kNone);
}

// A job whose process already exists when the unload comes: the unload
// stops waiting once the process exists (it then cancels it in the supervisor).
TEST(ModelRuntimeTableTest, AnUnloadStopsWaitingOnceTheProcessExists) {
  ModelRuntimeTable table;
  table.BeginJob("m");
  ASSERT_TRUE(table.ProcessStarting("m"));
  std::atomic<bool> waiting{false};
  std::atomic<bool> settled{false};
  std::thread unload([&] {
    settled = table.CancelStartingJob("m", MonotonicMillis() + 60000, [&] { waiting = true; });
  });
  while (!waiting) std::this_thread::yield();
  table.ProcessStarted("m");
  unload.join();
  EXPECT_TRUE(settled);
  EXPECT_EQ(table.Get("m").phase, LoadPhase::kRunning);
}

TEST(ModelRuntimeTableTest, TheWaitEndsAtItsDeadline) {
  ModelRuntimeTable table;
  table.BeginJob("m");
  EXPECT_FALSE(table.CancelStartingJob("m", MonotonicMillis() + 20, nullptr));
}

}  // namespace
}  // namespace mw::app
