#include "app/finish_ledger.h"

#include <gtest/gtest.h>

#include <vector>

namespace mw::app {
namespace {

Finish Failed(AttemptId attempt, const std::string& model) {
  Finish finish;
  finish.kind = Finish::Kind::kFailure;
  finish.attempt = attempt;
  finish.model_name = model;
  return finish;
}

// A storage error keeps the finish: Record answers the error, Flush(model)
// answers it while the registry still refuses, and writes it once it can.
TEST(FinishLedgerTest, AFinishTheRegistryRefusesIsKeptUntilAFlushWritesIt) {
  bool disk_full = true;
  std::vector<AttemptId> written;
  std::vector<FinishLedger::Settled> settled;
  FinishLedger ledger(
      [&](const Finish& finish) -> Result<ModelRecord> {
        if (disk_full) return ResourceExhaustedError("disk full");
        written.push_back(finish.attempt);
        ModelRecord after;
        after.model_name = finish.model_name;
        return after;
      },
      [&](const std::vector<FinishLedger::Settled>& batch) { settled.insert(settled.end(), batch.begin(), batch.end()); });
  ledger.Stop();  // no retry thread: every flush here is the test's own
  auto first = ledger.Record(Failed(7, "m"));
  EXPECT_EQ(first.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(ledger.Flush("m").code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(ledger.Flush("other").ok());  // another model's kept finish does not block it
  disk_full = false;
  EXPECT_TRUE(ledger.Flush("m").ok());
  ASSERT_EQ(written, std::vector<AttemptId>{7});
  ASSERT_EQ(settled.size(), 1u);
  EXPECT_EQ(settled[0].finish.attempt, 7);
  EXPECT_TRUE(settled[0].after.has_value());
  EXPECT_TRUE(ledger.Flush().ok());  // written once: nothing kept
  EXPECT_EQ(written.size(), 1u);
}

// An error that no later write can cure (the attempt is gone) is not kept;
// a kept finish whose attempt went away meanwhile is dropped by the flush.
TEST(FinishLedgerTest, AnErrorThatWillNotPassIsNotKeptAndAGoneAttemptIsDropped) {
  int calls = 0;
  StatusCode answer = StatusCode::kNotFound;
  std::vector<FinishLedger::Settled> settled;
  FinishLedger ledger(
      [&](const Finish&) -> Result<ModelRecord> {
        ++calls;
        return Status(answer, "no");
      },
      [&](const std::vector<FinishLedger::Settled>& batch) { settled.insert(settled.end(), batch.begin(), batch.end()); });
  ledger.Stop();  // no retry thread: every flush here is the test's own
  EXPECT_EQ(ledger.Record(Failed(1, "m")).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(ledger.Flush().ok());
  EXPECT_EQ(calls, 1);  // not kept, not written again
  answer = StatusCode::kUnavailable;
  EXPECT_FALSE(ledger.Record(Failed(2, "m")).ok());
  answer = StatusCode::kNotFound;
  EXPECT_TRUE(ledger.Flush().ok());
  ASSERT_EQ(settled.size(), 1u);
  EXPECT_FALSE(settled[0].after.has_value());
}

}  // namespace
}  // namespace mw::app
