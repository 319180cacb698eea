// The compatibility state machine: NextStatus edge by edge, then every
// transition of SPEC §1 on a real registry file (schema from the real
// migrations), with PRAGMA integrity_check after each test.
#include "compat/state_machine.h"

#include <gtest/gtest.h>

#include <sstream>
#include <thread>

#include "support/pg_test_util.h"
#include "support/registry_test_util.h"

namespace mw {
namespace {

using S = CompatStatus;
using E = CompatEvent;

// ---------------------------------------------------------------- NextStatus

void ExpectNext(S from, const TransitionInput& in, S want) {
  auto got = NextStatus(from, in);
  ASSERT_TRUE(got.ok()) << ToString(from) << ": " << got.status().ToString();
  EXPECT_EQ(*got, want) << "from " << ToString(from);
}
void ExpectRefused(S from, const TransitionInput& in, StatusCode code) {
  auto got = NextStatus(from, in);
  ASSERT_FALSE(got.ok()) << "from " << ToString(from) << " unexpectedly went to " << ToString(*got);
  EXPECT_EQ(got.status().code(), code) << "from " << ToString(from);
}

TEST(NextStatus, BeginAttemptFromEveryStatus) {
  for (bool forced : {false, true}) {
    const TransitionInput in{.event = E::kBeginAttempt, .forced = forced};
    ExpectNext(S::kUnknown, in, S::kTesting);
    ExpectNext(S::kCompatible, in, S::kTesting);
    ExpectNext(S::kDegraded, in, S::kTesting);
    ExpectRefused(S::kTesting, in, StatusCode::kFailedPrecondition);
  }
  ExpectRefused(S::kIncompatible, {.event = E::kBeginAttempt, .forced = false},
                StatusCode::kFailedPrecondition);
  ExpectNext(S::kIncompatible, {.event = E::kBeginAttempt, .forced = true}, S::kTesting);
}

TEST(NextStatus, FinishEventsOnlyFromTesting) {
  for (S from : kAllCompatStatuses) {
    const bool testing = from == S::kTesting;
    for (E ev : {E::kLoadSucceeded, E::kLoadFailed, E::kStartupCleanup, E::kLoadCancelled}) {
      const TransitionInput in{.event = ev, .status_before = S::kCompatible};
      if (!testing) ExpectRefused(from, in, StatusCode::kFailedPrecondition);
    }
  }
  ExpectNext(S::kTesting, {.event = E::kLoadSucceeded}, S::kCompatible);
}

TEST(NextStatus, RetryOnlyWhileTestingAndStaysTesting) {
  for (S from : kAllCompatStatuses) {
    if (from == S::kTesting) {
      ExpectNext(from, {.event = E::kRetry}, S::kTesting);
    } else {
      ExpectRefused(from, {.event = E::kRetry}, StatusCode::kFailedPrecondition);
    }
  }
}

TEST(NextStatus, FailureIsDegradedFromThreeSuccessfulLoads) {
  for (E ev : {E::kLoadFailed, E::kStartupCleanup}) {
    for (int64_t loads : {0, 1, 2})
      ExpectNext(S::kTesting, {.event = ev, .total_loads = loads}, S::kIncompatible);
    for (int64_t loads : {3, 4, 100})
      ExpectNext(S::kTesting, {.event = ev, .total_loads = loads}, S::kDegraded);
  }
}

TEST(NextStatus, ServingCrashIsAFailureFromAnyStatusButTesting) {
  for (S from : {S::kUnknown, S::kCompatible, S::kIncompatible, S::kDegraded}) {
    for (int64_t loads : {0, 1, 2}) ExpectNext(from, {.event = E::kServingCrashed, .total_loads = loads}, S::kIncompatible);
    for (int64_t loads : {3, 7}) ExpectNext(from, {.event = E::kServingCrashed, .total_loads = loads}, S::kDegraded);
  }
  ExpectRefused(S::kTesting, {.event = E::kServingCrashed, .total_loads = 5}, StatusCode::kFailedPrecondition);
}

TEST(NextStatus, CancelRestoresTheStatusBefore) {
  for (S before : {S::kUnknown, S::kCompatible, S::kIncompatible, S::kDegraded}) {
    ExpectNext(S::kTesting, {.event = E::kLoadCancelled, .status_before = before}, before);
  }
  ExpectRefused(S::kTesting, {.event = E::kLoadCancelled, .status_before = S::kTesting},
                StatusCode::kInvalidArgument);
}

TEST(NextStatus, ManualSetAnyButTestingNeverWhileTesting) {
  for (S from : kAllCompatStatuses) {
    for (S to : kAllCompatStatuses) {
      const TransitionInput in{.event = E::kManualSet, .manual_target = to};
      if (to == S::kTesting) {
        ExpectRefused(from, in, StatusCode::kInvalidArgument);
      } else if (from == S::kTesting) {
        ExpectRefused(from, in, StatusCode::kFailedPrecondition);
      } else {
        ExpectNext(from, in, to);
      }
    }
  }
}

TEST(FailureNotes, ExactWording) {
  EXPECT_EQ(FailureNotes(0, "CreateContext failed (hipErrorNoDevice)", ""),
            "Hardware incompatibility detected: CreateContext failed (hipErrorNoDevice)");
  EXPECT_EQ(FailureNotes(2, "x", ""), "Hardware incompatibility detected: x");
  EXPECT_EQ(FailureNotes(5, "Aborted (core dumped)", ""),
            "Intermittent issue detected (loaded successfully 5 times before): Aborted (core dumped)");
  EXPECT_EQ(FailureNotes(0, "CreateContext failed", "  ggml_cuda_init: CreateContext failed\r\n"),
            "Hardware incompatibility detected: CreateContext failed\nggml_cuda_init: CreateContext failed");
  // The matched line is not repeated when it is the summary; inner newlines fold.
  EXPECT_EQ(FailureNotes(0, "a\nb", "a b"), "Hardware incompatibility detected: a b");
  // SPEC §18: the file's fault is the file's, whatever came before.
  const std::string bad_file = FailureNotes(5, "corrupt or unsupported model file: not a valid GGUF file", "", "unsupported_model");
  EXPECT_EQ(bad_file, "The model file is bad: corrupt or unsupported model file: not a valid GGUF file");
  EXPECT_TRUE(NotesBlameFile(bad_file));
  EXPECT_FALSE(NotesBlameFile(FailureNotes(0, "x", "", "gpu_context")));
}

TEST(FallbackSummary, FromTimeoutSignalOrExitCode) {
  FailureInfo f;
  EXPECT_EQ(FallbackSummary(f), "Load failed");
  f.exit_code = 1;
  EXPECT_EQ(FallbackSummary(f), "Worker exited with code 1");
  f.signal = "SIGSEGV";
  EXPECT_EQ(FallbackSummary(f), "Worker killed by SIGSEGV");
  f.outcome = AttemptOutcome::kTimeout;
  EXPECT_EQ(FallbackSummary(f), "Load timed out");
  f.summary = "given";
  EXPECT_EQ(FallbackSummary(f), "given");
}

// ---------------------------------------------------------------- on a registry

// On both registry backends (SQLite file, PostgreSQL schema).
class StateMachineTest : public ::testing::TestWithParam<testing_util::BackendKind> {
 protected:
  void SetUp() override {
    std::string skip, error;
    if (!target_.Prepare(&skip, &error)) {
      if (!skip.empty()) GTEST_SKIP() << skip;
      FAIL() << error;
    }
    Open();
  }
  void TearDown() override {
    if (reg_) {
      EXPECT_TRUE(reg_->CheckIntegrity().ok());
    }
  }
  void Open() {
    sm_.reset();
    reg_.reset();
    auto reg = Registry::Open(target_.location());
    ASSERT_TRUE(reg.ok()) << reg.status().ToString();
    reg_ = std::move(reg).value();
    sm_ = std::make_unique<StateMachine>(*reg_);
  }
  void Add(const std::string& name, const std::string& config = "{}") {
    ModelRecord m;
    m.model_name = name;
    m.file_path = name + ".gguf";
    m.load_config = config;
    ASSERT_TRUE(reg_->AddModel(m).ok());
  }
  ModelRecord Get(const std::string& name) { return reg_->GetModel(name).value(); }
  AttemptRecord Attempt(AttemptId id) { return reg_->GetAttempt(id).value(); }
  AttemptId Begin(const std::string& name, bool forced = false) {
    auto id = sm_->BeginAttempt(name, forced, "cpu:test");
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.value_or(0);
  }
  void SucceedTimes(const std::string& name, int n) {
    for (int i = 0; i < n; ++i) ASSERT_TRUE(sm_->FinishSuccess(Begin(name)).ok());
  }
  // Puts `name` in testing with an open attempt behind the state machine's
  // back, as a second crashed server of an older design could have left it.
  void ForceTesting(const std::string& name) {
    auto tx = reg_->BeginWrite();
    ASSERT_TRUE(tx.ok());
    auto m = tx->GetModel(name);
    AttemptRecord a;
    a.model_name = name;
    a.status_before = m->compatibility_status;
    ASSERT_TRUE(tx->InsertAttempt(a).ok());
    m->compatibility_status = S::kTesting;
    ASSERT_TRUE(tx->WriteModelState(*m).ok());
    ASSERT_TRUE(tx->Commit().ok());
  }

  testing_util::RegistryTarget target_{GetParam()};
  std::unique_ptr<Registry> reg_;
  std::unique_ptr<StateMachine> sm_;
};
INSTANTIATE_TEST_SUITE_P(Backends, StateMachineTest, ::testing::ValuesIn(testing_util::kAllBackends),
                         testing_util::BackendNamer());

TEST_P(StateMachineTest, BeginMarksTestingAndSnapshotsConfigDurably) {
  Add("m", R"({"n_ctx": 256})");
  const AttemptId id = Begin("m");
  ASSERT_GT(id, 0);
  Open();  // close and reopen: the commit point was passed
  EXPECT_EQ(Get("m").compatibility_status, S::kTesting);
  const AttemptRecord a = Attempt(id);
  EXPECT_TRUE(a.open());
  EXPECT_EQ(a.status_before, S::kUnknown);
  EXPECT_EQ(a.load_config, R"({"n_ctx": 256})");
  EXPECT_EQ(a.hardware_fingerprint, "cpu:test");
  EXPECT_FALSE(a.forced);
}

TEST_P(StateMachineTest, BeginIsRefusedWhenNotAllowed) {
  Add("a");
  Add("b");
  EXPECT_EQ(sm_->BeginAttempt("ghost", false, "").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(sm_->BeginAttempt("../x", false, "").status().code(), StatusCode::kInvalidArgument);
  const AttemptId id = Begin("a");
  EXPECT_EQ(sm_->BeginAttempt("a", true, "").status().code(), StatusCode::kFailedPrecondition);
  auto other = sm_->BeginAttempt("b", false, "");
  EXPECT_EQ(other.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(other.status().message().find("one at a time"), std::string::npos);
  ASSERT_TRUE(sm_->FinishSuccess(id).ok());
  EXPECT_TRUE(sm_->FinishSuccess(Begin("b")).ok());
  EXPECT_EQ(Get("b").compatibility_status, S::kCompatible);
}

TEST_P(StateMachineTest, SuccessMakesCompatibleAndCountsTheLoad) {
  Add("m");
  const AttemptId id = Begin("m");
  auto m = sm_->FinishSuccess(id);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->compatibility_status, S::kCompatible);
  EXPECT_EQ(m->total_loads, 1);
  EXPECT_EQ(m->total_failures, 0);
  EXPECT_TRUE(m->last_loaded_at.has_value());
  const AttemptRecord a = Attempt(id);
  EXPECT_EQ(a.outcome, AttemptOutcome::kSuccess);
  EXPECT_EQ(a.status_after, S::kCompatible);
  EXPECT_TRUE(a.duration_ms.has_value());
  // A late second result for the same attempt is refused and changes nothing.
  EXPECT_EQ(sm_->FinishFailure(id, FailureInfo{}).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Get("m").compatibility_status, S::kCompatible);
  EXPECT_EQ(sm_->FinishSuccess(12345).status().code(), StatusCode::kNotFound);
}

TEST_P(StateMachineTest, FirstFailureIsIncompatibleWithClassifiedNotes) {
  Add("m");
  const AttemptId id = Begin("m");
  FailureInfo f;
  f.outcome = AttemptOutcome::kCrashed;
  f.exit_code = 134;
  f.signal = "SIGABRT";
  f.category = "gpu_context";
  f.pattern_id = "rocm-create-context";
  f.summary = "CreateContext failed (hipErrorNoDevice)";
  f.matched_line = "rocBLAS error: CreateContext failed (hipErrorNoDevice)";
  f.log_excerpt = "loading...\nrocBLAS error: CreateContext failed (hipErrorNoDevice)\n";
  auto m = sm_->FinishFailure(id, f);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->compatibility_status, S::kIncompatible);
  EXPECT_EQ(m->compatibility_notes,
            "Hardware incompatibility detected: CreateContext failed (hipErrorNoDevice)\n"
            "rocBLAS error: CreateContext failed (hipErrorNoDevice)");
  EXPECT_EQ(m->total_failures, 1);
  EXPECT_EQ(m->total_loads, 0);
  EXPECT_TRUE(m->last_failed_at.has_value());
  const AttemptRecord a = Attempt(id);
  EXPECT_EQ(a.outcome, AttemptOutcome::kCrashed);
  EXPECT_EQ(a.status_after, S::kIncompatible);
  EXPECT_EQ(a.exit_code, 134);
  EXPECT_EQ(a.signal, "SIGABRT");
  EXPECT_EQ(a.category, "gpu_context");
  EXPECT_EQ(a.pattern_id, "rocm-create-context");
  EXPECT_EQ(a.summary, "CreateContext failed (hipErrorNoDevice)");
  EXPECT_EQ(a.matched_line, f.matched_line);
  EXPECT_EQ(a.log_excerpt, f.log_excerpt);
}

TEST_P(StateMachineTest, ThreeSuccessesThenFailureIsDegraded) {
  Add("m");
  SucceedTimes("m", 3);
  FailureInfo f;
  f.outcome = AttemptOutcome::kCrashed;
  f.signal = "SIGABRT";
  f.summary = "Aborted (core dumped)";
  auto m = sm_->FinishFailure(Begin("m"), f);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->compatibility_status, S::kDegraded);
  EXPECT_EQ(m->compatibility_notes,
            "Intermittent issue detected (loaded successfully 3 times before): Aborted (core dumped)");
  EXPECT_EQ(m->total_loads, 3);
  EXPECT_EQ(m->total_failures, 1);
  // Degraded still loads (no force needed) and a success clears it.
  auto again = sm_->FinishSuccess(Begin("m"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->compatibility_status, S::kCompatible);
  EXPECT_EQ(again->total_loads, 4);
}

TEST_P(StateMachineTest, ASuccessAfterAForcedLoadOrRetestStartsTheNotesAfresh) {
  Add("m");
  FailureInfo f;
  f.outcome = AttemptOutcome::kFailed;
  f.category = "unsupported_model";
  f.summary = "corrupt model file: truncated";
  ASSERT_TRUE(sm_->FinishFailure(Begin("m"), f).ok());
  const AttemptId forced = Begin("m", /*forced=*/true);
  auto m = sm_->FinishSuccess(forced);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->compatibility_status, S::kCompatible);
  EXPECT_FALSE(m->compatibility_notes.has_value());
  EXPECT_EQ(Attempt(forced).summary, "notes before this success: The model file is bad: corrupt model file: truncated");
  // A plain success of a compatible model keeps what the notes say.
  ModelUpdate notes;
  notes.compatibility_notes = "works with flash attention off";
  ASSERT_TRUE(sm_->ApplyManualChange("m", std::nullopt, notes).ok());
  auto again = sm_->FinishSuccess(Begin("m"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->compatibility_notes, "works with flash attention off");
}

TEST_P(StateMachineTest, ServingCrashRecordsAClosedAttemptAndMovesTheStatus) {
  Add("m", R"({"n_ctx": 512})");
  SucceedTimes("m", 1);
  FailureInfo f;
  f.signal = "SIGKILL";
  f.category = "aborted_signal";
  f.summary = "Engine crashed while serving (killed by SIGKILL)";
  f.log_excerpt = "last lines";
  auto m = sm_->RecordServingCrash("m", f);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->compatibility_status, S::kIncompatible);
  EXPECT_EQ(m->compatibility_notes, "Hardware incompatibility detected: Engine crashed while serving (killed by SIGKILL)");
  EXPECT_EQ(m->total_failures, 1);
  EXPECT_TRUE(m->last_failed_at.has_value());
  auto attempts = reg_->ListAttempts("m", 10);
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 2u);
  const AttemptRecord& a = attempts->front();
  EXPECT_FALSE(a.open());
  EXPECT_EQ(a.outcome, AttemptOutcome::kCrashedWhileServing);
  EXPECT_EQ(a.status_before, S::kCompatible);
  EXPECT_EQ(a.status_after, S::kIncompatible);
  EXPECT_EQ(a.signal, "SIGKILL");
  EXPECT_EQ(a.category, "aborted_signal");
  EXPECT_EQ(a.log_excerpt, "last lines");
  EXPECT_EQ(a.load_config, R"({"n_ctx": 512})");
  // Durable: a reopened registry has it.
  Open();
  EXPECT_EQ(Get("m").compatibility_status, S::kIncompatible);

  // Three successful loads before: degraded, and it still loads without force.
  Add("d");
  SucceedTimes("d", 3);
  auto d = sm_->RecordServingCrash("d", f);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->compatibility_status, S::kDegraded);
  EXPECT_NE(d->compatibility_notes->find("loaded successfully 3 times before"), std::string::npos);
  Begin("d");

  // Unknown model: kNotFound, nothing written.
  EXPECT_EQ(sm_->RecordServingCrash("gone", f).status().code(), StatusCode::kNotFound);
}

// SPEC §19: an engine stopped by the health watch is recorded the same way,
// with its own outcome, and the registry says when each model last hung.
TEST_P(StateMachineTest, HangWhileServingRecordsItsOutcomeAndWhen) {
  Add("m");
  SucceedTimes("m", 1);
  Add("other");
  FailureInfo f;
  f.outcome = AttemptOutcome::kHungWhileServing;
  f.category = "timeout";
  f.summary = "Engine hung while serving (alive but did not answer /health for 60 s)";
  auto m = sm_->RecordServingCrash("m", f);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->compatibility_status, S::kIncompatible);
  auto attempts = reg_->ListAttempts("m", 1);
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ(attempts->front().outcome, AttemptOutcome::kHungWhileServing);
  EXPECT_EQ(attempts->front().status_after, S::kIncompatible);
  auto hangs = reg_->LastAttemptEnds(AttemptOutcome::kHungWhileServing);
  ASSERT_TRUE(hangs.ok()) << hangs.status().ToString();
  ASSERT_EQ(hangs->size(), 1u);
  EXPECT_EQ(hangs->at("m"), attempts->front().finished_at.value_or(""));
}

TEST_P(StateMachineTest, ServingCrashWhileANewAttemptRunsKeepsTheStatus) {
  Add("m");
  SucceedTimes("m", 1);
  const AttemptId running = Begin("m");
  FailureInfo f;
  f.summary = "Engine crashed while serving";
  auto m = sm_->RecordServingCrash("m", f);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Get("m").compatibility_status, S::kTesting);
  EXPECT_EQ(Get("m").total_failures, 0);
  EXPECT_TRUE(Attempt(running).open());
  ASSERT_TRUE(sm_->FinishSuccess(running).ok());
}

// SPEC §11 with §10: an engine that dies while serving because the device
// went away is the environment's failure: recorded, status and counters kept.
TEST_P(StateMachineTest, ServingCrashOfTheEnvironmentKeepsTheStatus) {
  Add("m");
  SucceedTimes("m", 1);
  FailureInfo f;
  f.outcome = AttemptOutcome::kEnvironmentFailure;
  f.category = "device_unavailable";
  f.summary = "Engine crashed while serving: no CUDA-capable device is detected";
  auto m = sm_->RecordServingCrash("m", f);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->compatibility_status, S::kCompatible);
  EXPECT_EQ(m->total_failures, 0);
  EXPECT_FALSE(m->last_failed_at.has_value());
  auto attempts = reg_->ListAttempts("m", 10);
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 2u);
  const AttemptRecord& a = attempts->front();
  EXPECT_FALSE(a.open());
  EXPECT_EQ(a.outcome, AttemptOutcome::kEnvironmentFailure);
  EXPECT_EQ(a.status_before, S::kCompatible);
  EXPECT_EQ(a.status_after, S::kCompatible);
  EXPECT_EQ(a.category, "device_unavailable");
}

TEST_P(StateMachineTest, TwoSuccessesThenFailureIsIncompatible) {
  Add("m");
  SucceedTimes("m", 2);
  FailureInfo f;
  f.outcome = AttemptOutcome::kTimeout;
  auto m = sm_->FinishFailure(Begin("m"), f);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->compatibility_status, S::kIncompatible);
  EXPECT_EQ(m->compatibility_notes, "Hardware incompatibility detected: Load timed out");
}

TEST_P(StateMachineTest, IncompatibleNeedsForceAndForcedSuccessMakesCompatible) {
  Add("m");
  FailureInfo f;
  f.summary = "flash attention not supported";
  ASSERT_TRUE(sm_->FinishFailure(Begin("m"), f).ok());
  auto refused = sm_->BeginAttempt("m", false, "");
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("flash attention not supported"), std::string::npos);
  const AttemptId id = Begin("m", /*forced=*/true);
  EXPECT_TRUE(Attempt(id).forced);
  EXPECT_EQ(Attempt(id).status_before, S::kIncompatible);
  auto m = sm_->FinishSuccess(id);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->compatibility_status, S::kCompatible);
}

TEST_P(StateMachineTest, ForcedFailureStaysIncompatibleAndCounts) {
  Add("m");
  ASSERT_TRUE(sm_->FinishFailure(Begin("m"), FailureInfo{}).ok());
  auto m = sm_->FinishFailure(Begin("m", true),
                              FailureInfo{.outcome = AttemptOutcome::kCrashed, .signal = "SIGSEGV"});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->compatibility_status, S::kIncompatible);
  EXPECT_EQ(m->total_failures, 2);
  EXPECT_EQ(m->compatibility_notes, "Hardware incompatibility detected: Worker killed by SIGSEGV");
}

TEST_P(StateMachineTest, CancelRestoresStatusAndCountsNothing) {
  Add("m");
  SucceedTimes("m", 1);
  const AttemptId id = Begin("m");
  auto m = sm_->FinishCancelled(id);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->compatibility_status, S::kCompatible);
  EXPECT_EQ(m->total_loads, 1);
  EXPECT_EQ(m->total_failures, 0);
  EXPECT_EQ(Attempt(id).outcome, AttemptOutcome::kCancelled);
  EXPECT_EQ(Attempt(id).status_after, S::kCompatible);
}

// SPEC §11: the environment's failure keeps the status and counts nothing,
// but the attempt keeps its evidence.
TEST_P(StateMachineTest, EnvironmentFailureKeepsStatusAndRecordsEvidence) {
  Add("m");
  SucceedTimes("m", 1);
  EXPECT_EQ(Get("m").verdict_fingerprint, "cpu:test");  // a success is a verdict
  const AttemptId id = sm_->BeginAttempt("m", false, "gpu:other").value();
  auto m = sm_->FinishEnvironmentFailure(
      id, FailureInfo{.outcome = AttemptOutcome::kCrashed, .category = "device_unavailable",
                      .summary = "no usable GPU device (no CUDA-capable device is detected)"});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->compatibility_status, S::kCompatible);
  EXPECT_EQ(m->total_failures, 0);
  EXPECT_EQ(m->verdict_fingerprint, "cpu:test");  // the verdict still stands
  AttemptRecord a = Attempt(id);
  EXPECT_EQ(a.outcome, AttemptOutcome::kEnvironmentFailure);
  EXPECT_EQ(a.status_after, S::kCompatible);
  EXPECT_EQ(a.category, "device_unavailable");
  EXPECT_EQ(a.summary, "no usable GPU device (no CUDA-capable device is detected)");
}

TEST_P(StateMachineTest, RevertVerdictsRestoresStatusBeforeWhenStillInForce) {
  Add("a");
  Add("b");
  Add("c");
  SucceedTimes("b", 1);
  const AttemptId fa = Begin("a");
  ASSERT_TRUE(sm_->FinishFailure(fa, FailureInfo{.category = "gpu_context", .summary = "CUDA error"}).ok());
  const AttemptId fb = Begin("b");
  ASSERT_TRUE(sm_->FinishFailure(fb, FailureInfo{.category = "gpu_context", .summary = "CUDA error"}).ok());
  const AttemptId fc = Begin("c");
  ASSERT_TRUE(sm_->FinishFailure(fc, FailureInfo{.category = "gpu_context", .summary = "CUDA error"}).ok());
  ASSERT_TRUE(sm_->SetStatusManually("c", S::kDegraded).ok());  // decided by hand since: stands
  auto reverted = sm_->RevertVerdicts({fa, fb, fc}, "Reverted: the environment failed");
  ASSERT_TRUE(reverted.ok()) << reverted.status().ToString();
  ASSERT_EQ(reverted->size(), 2u);
  EXPECT_EQ(Get("a").compatibility_status, S::kUnknown);
  EXPECT_EQ(Get("b").compatibility_status, S::kCompatible);
  EXPECT_EQ(Get("b").total_failures, 0);
  EXPECT_FALSE(Get("b").verdict_fingerprint.has_value());
  EXPECT_EQ(Get("b").compatibility_notes.value_or(""),
            "Hardware incompatibility detected: CUDA error\nReverted: the environment failed");
  EXPECT_EQ(Get("c").compatibility_status, S::kDegraded);
  EXPECT_EQ(Attempt(fa).outcome, AttemptOutcome::kEnvironmentFailure);
  EXPECT_EQ(Attempt(fb).status_after, S::kCompatible);
  EXPECT_EQ(Attempt(fc).outcome, AttemptOutcome::kFailed);
  // Twice is a no-op.
  EXPECT_TRUE(sm_->RevertVerdicts({fa, fb, fc}, "again")->empty());
}

TEST_P(StateMachineTest, FailureOutcomeMustBeAFailure) {
  Add("m");
  const AttemptId id = Begin("m");
  for (auto o : {AttemptOutcome::kSuccess, AttemptOutcome::kCancelled, AttemptOutcome::kServerCrash}) {
    EXPECT_EQ(sm_->FinishFailure(id, FailureInfo{.outcome = o}).status().code(),
              StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(Get("m").compatibility_status, S::kTesting);
  EXPECT_TRUE(sm_->FinishCancelled(id).ok());
}

TEST_P(StateMachineTest, ManualStatusNeverTestingNeverWhileTesting) {
  Add("m");
  EXPECT_EQ(sm_->SetStatusManually("m", S::kTesting).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(sm_->SetStatusManually("ghost", S::kUnknown).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(sm_->FinishFailure(Begin("m"), FailureInfo{}).ok());
  auto m = sm_->SetStatusManually("m", S::kUnknown);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->compatibility_status, S::kUnknown);
  EXPECT_EQ(m->total_failures, 1);  // history is kept
  const AttemptId id = Begin("m");
  EXPECT_EQ(sm_->SetStatusManually("m", S::kCompatible).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(sm_->FinishSuccess(id).ok());
  for (S to : {S::kIncompatible, S::kDegraded, S::kCompatible, S::kUnknown}) {
    auto r = sm_->SetStatusManually("m", to);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->compatibility_status, to);
  }
}

TEST_P(StateMachineTest, ManualChangeWritesStatusAndFieldsTogetherOrNothing) {
  Add("m");
  ModelUpdate fields;
  fields.compatibility_notes = "works with flash attention off";
  fields.load_config = R"({"flash_attn":false})";
  fields.compatibility_status = S::kTesting;  // ignored: only `status` counts
  auto m = sm_->ApplyManualChange("m", S::kCompatible, fields);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->compatibility_status, S::kCompatible);
  EXPECT_EQ(Get("m").compatibility_notes, "works with flash attention off");
  EXPECT_EQ(Get("m").load_config, R"({"flash_attn":false})");
  // A field the registry refuses leaves the status unchanged too.
  ModelUpdate bad;
  bad.compatibility_notes = "never written";
  bad.load_config = "[1]";  // not a JSON object
  EXPECT_EQ(sm_->ApplyManualChange("m", S::kIncompatible, bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Get("m").compatibility_status, S::kCompatible);
  EXPECT_EQ(Get("m").compatibility_notes, "works with flash attention off");
  // A refused status leaves the fields unchanged.
  const AttemptId id = Begin("m");
  EXPECT_EQ(sm_->ApplyManualChange("m", S::kUnknown, fields).status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(sm_->FinishSuccess(id).ok());
  // Fields alone, no status: the status stays.
  ModelUpdate notes_only;
  notes_only.compatibility_notes = "edited";
  auto n = sm_->ApplyManualChange("m", std::nullopt, notes_only);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->compatibility_status, S::kCompatible);
  EXPECT_EQ(n->compatibility_notes, "edited");
}

TEST_P(StateMachineTest, StartupCleanupWithNothingStuckPrintsOnlyCompletion) {
  Add("m");
  std::ostringstream out;
  auto report = sm_->StartupCleanup(out);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(out.str(), "\u2705 Compatibility status cleanup completed\n");
  EXPECT_TRUE(report->marked.empty());
  EXPECT_EQ(report->attempts_closed, 0);
}

TEST_P(StateMachineTest, StartupCleanupMarksStuckModelsAndPrintsSpecLines) {
  Add("phi-mini");
  Add("llama-veteran");
  Add("bystander");
  SucceedTimes("llama-veteran", 3);
  const AttemptId stuck = Begin("phi-mini");
  ForceTesting("llama-veteran");
  Open();  // as after a restart

  std::ostringstream out;
  auto report = sm_->StartupCleanup(out);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(out.str(),
            "\u26a0\ufe0f  Found 2 model(s) stuck in 'testing' status from previous crash\n"
            "   - Marked 'llama-veteran' as degraded (crashed during test)\n"
            "   - Marked 'phi-mini' as incompatible (crashed during test)\n"
            "\u2705 Compatibility status cleanup completed\n");
  EXPECT_EQ(report->attempts_closed, 2);
  const ModelRecord m = Get("phi-mini");
  EXPECT_EQ(m.compatibility_status, S::kIncompatible);
  EXPECT_EQ(m.total_failures, 1);
  EXPECT_EQ(m.compatibility_notes,
            "Hardware incompatibility detected: the server stopped while this model was loading "
            "(crashed during test)");
  EXPECT_EQ(Get("llama-veteran").compatibility_status, S::kDegraded);
  EXPECT_EQ(Get("bystander").compatibility_status, S::kUnknown);
  const AttemptRecord a = Attempt(stuck);
  EXPECT_EQ(a.outcome, AttemptOutcome::kServerCrash);
  EXPECT_EQ(a.status_after, S::kIncompatible);
  EXPECT_FALSE(a.open());
  // The late finish of an attempt that cleanup closed is ignored.
  EXPECT_EQ(sm_->FinishSuccess(stuck).status().code(), StatusCode::kFailedPrecondition);

  std::ostringstream again;
  ASSERT_TRUE(sm_->StartupCleanup(again).ok());
  EXPECT_EQ(again.str(), "\u2705 Compatibility status cleanup completed\n");
}

// ---------------------------------------------------------------- auto_fix (SPEC §11)

FailureInfo OutOfMemory() {
  FailureInfo f;
  f.outcome = AttemptOutcome::kFailed;
  f.exit_code = 1;
  f.category = "out_of_memory";
  f.pattern_id = "out_of_memory.context_buffers";
  f.summary = "failed to allocate buffer for kv cache";
  return f;
}

TEST_P(StateMachineTest, RetryClosesTheFailureWithoutAVerdictAndOpensTheNextAttempt) {
  Add("m", R"({"n_ctx":16777216})");
  const AttemptId first = Begin("m", true);
  auto retry = sm_->RetryAttempt(first, OutOfMemory(), R"({"n_ctx":2048})");
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  Open();  // the commit point was passed
  ModelRecord m = Get("m");
  EXPECT_EQ(m.compatibility_status, S::kTesting);
  EXPECT_EQ(m.total_failures, 0);
  EXPECT_FALSE(m.compatibility_notes.has_value());
  const AttemptRecord a = Attempt(first);
  EXPECT_EQ(a.outcome, AttemptOutcome::kFailed);
  EXPECT_EQ(a.status_after, S::kTesting);
  EXPECT_EQ(a.category, "out_of_memory");
  const AttemptRecord b = Attempt(*retry);
  EXPECT_TRUE(b.open());
  EXPECT_TRUE(b.forced);
  EXPECT_EQ(b.status_before, S::kUnknown);
  EXPECT_EQ(b.load_config, R"({"n_ctx":2048})");
  EXPECT_EQ(b.hardware_fingerprint, "cpu:test");
  // Retrying a closed attempt, or one with a non-failure outcome, is refused.
  EXPECT_EQ(sm_->RetryAttempt(first, OutOfMemory(), "{}").status().code(), StatusCode::kFailedPrecondition);
  FailureInfo cancelled = OutOfMemory();
  cancelled.outcome = AttemptOutcome::kCancelled;
  EXPECT_EQ(sm_->RetryAttempt(*retry, cancelled, "{}").status().code(), StatusCode::kInvalidArgument);

  auto healed = sm_->FinishHealed(*retry, {R"({"n_ctx":2048})", R"({"n_ctx":16777216})",
                                           "loaded after changing n_ctx 16777216 → 2048: failed to allocate"});
  ASSERT_TRUE(healed.ok()) << healed.status().ToString();
  Open();
  m = Get("m");
  EXPECT_EQ(m.compatibility_status, S::kCompatible);
  EXPECT_EQ(m.load_config, R"({"n_ctx":2048})");
  EXPECT_EQ(m.total_loads, 1);
  EXPECT_EQ(m.total_failures, 0);
  EXPECT_EQ(m.compatibility_notes, "loaded after changing n_ctx 16777216 → 2048: failed to allocate");
  EXPECT_EQ(Attempt(*retry).outcome, AttemptOutcome::kSuccess);
}

TEST_P(StateMachineTest, HealedConfigIsNotSavedOverAUsersChange) {
  Add("m", R"({"n_ctx":16777216})");
  auto retry = sm_->RetryAttempt(Begin("m"), OutOfMemory(), R"({"n_ctx":2048})");
  ASSERT_TRUE(retry.ok());
  ModelUpdate edit;
  edit.load_config = R"({"n_ctx":1024})";
  ASSERT_TRUE(sm_->ApplyManualChange("m", std::nullopt, edit).ok());
  auto healed = sm_->FinishHealed(*retry, {R"({"n_ctx":2048})", R"({"n_ctx":16777216})", "loaded after changing"});
  ASSERT_TRUE(healed.ok());
  EXPECT_EQ(healed->load_config, R"({"n_ctx":1024})");
  EXPECT_NE(healed->compatibility_notes->find("not saved"), std::string::npos);
}

TEST_P(StateMachineTest, ARetryThatFailsTooIsOneVerdict) {
  Add("m", R"({"n_ctx":16777216})");
  auto retry = sm_->RetryAttempt(Begin("m"), OutOfMemory(), R"({"n_ctx":2048})");
  ASSERT_TRUE(retry.ok());
  FailureInfo again = OutOfMemory();
  again.summary = "still out of memory";
  auto m = sm_->FinishFailure(*retry, again, "auto_fix: changing n_ctx 16777216 → 2048 did not help");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->compatibility_status, S::kIncompatible);
  EXPECT_EQ(m->total_failures, 1);
  EXPECT_EQ(m->load_config, R"({"n_ctx":16777216})");
  EXPECT_EQ(m->compatibility_notes, "Hardware incompatibility detected: still out of memory\n"
                                    "auto_fix: changing n_ctx 16777216 → 2048 did not help");
  EXPECT_EQ(reg_->ListAttempts("m").value().size(), 2u);
}

// The server is killed between the two attempts: the next start's cleanup
// finds the model testing with the retry open, and counts one failure.
TEST_P(StateMachineTest, StartupCleanupAfterACrashDuringTheRetryCountsOneFailure) {
  Add("m", R"({"n_ctx":16777216})");
  const AttemptId first = Begin("m");
  auto retry = sm_->RetryAttempt(first, OutOfMemory(), R"({"n_ctx":2048})");
  ASSERT_TRUE(retry.ok());
  Open();
  std::ostringstream out;
  auto report = sm_->StartupCleanup(out);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->marked.size(), 1u);
  EXPECT_EQ(report->attempts_closed, 1);
  const ModelRecord m = Get("m");
  EXPECT_EQ(m.compatibility_status, S::kIncompatible);
  EXPECT_EQ(m.total_failures, 1);
  EXPECT_EQ(m.load_config, R"({"n_ctx":16777216})");
  EXPECT_EQ(Attempt(first).outcome, AttemptOutcome::kFailed);
  EXPECT_EQ(Attempt(*retry).outcome, AttemptOutcome::kServerCrash);
  EXPECT_EQ(Attempt(*retry).status_after, S::kIncompatible);
}

TEST_P(StateMachineTest, ExactSpecExampleLine) {
  Add("Microsoft-phi-mini-4k");
  Begin("Microsoft-phi-mini-4k");
  std::ostringstream out;
  ASSERT_TRUE(sm_->StartupCleanup(out).ok());
  EXPECT_EQ(out.str(),
            "⚠️  Found 1 model(s) stuck in 'testing' status from previous crash\n"
            "   - Marked 'Microsoft-phi-mini-4k' as incompatible (crashed during test)\n"
            "✅ Compatibility status cleanup completed\n");
}

}  // namespace
}  // namespace mw

namespace mw {
namespace {

NodeRecord FleetNode(const std::string& id, int64_t lease_s) {
  NodeRecord n;
  n.node_id = id;
  n.host = id + ".lan";
  n.lease_s = lease_s;
  n.environment_class = "class-x";
  return n;
}

// SPEC §14: a node's startup cleanup settles only its own attempts on a
// shared registry (PostgreSQL): another node's open attempt, same class,
// stays open and its model testing. On SQLite (one server per file) every
// open attempt is the restarting server's, whatever node_id recorded it.
TEST_P(StateMachineTest, StartupCleanupSettlesOnlyThisNodesAttemptsOnASharedRegistry) {
  auto other = Registry::Open(target_.location());
  ASSERT_TRUE(other.ok());
  StateMachine other_sm(**other);
  ASSERT_TRUE(reg_->JoinFleet(FleetNode("a", 30)).ok());
  ASSERT_TRUE((*other)->JoinFleet(FleetNode("b", 30)).ok());
  Add("mine");
  Add("theirs");
  Begin("mine");
  const bool shared = GetParam() == testing_util::BackendKind::kPostgres;
  ASSERT_TRUE(other_sm.BeginAttempt("theirs", false, "cpu:test").ok());

  std::ostringstream out;
  auto report = sm_->StartupCleanup(out);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->attempts_closed, shared ? 1 : 2);
  EXPECT_EQ(out.str(), shared ? "\u26a0\ufe0f  Found 1 model(s) stuck in 'testing' status from previous crash\n"
                                "   - Marked 'mine' as incompatible (crashed during test)\n"
                                "\u2705 Compatibility status cleanup completed\n"
                              : "\u26a0\ufe0f  Found 2 model(s) stuck in 'testing' status from previous crash\n"
                                "   - Marked 'mine' as incompatible (crashed during test)\n"
                                "   - Marked 'theirs' as incompatible (crashed during test)\n"
                                "\u2705 Compatibility status cleanup completed\n");
  if (shared) {
    EXPECT_EQ(Get("theirs").compatibility_status, S::kTesting);
    auto open = reg_->ListAttempts("theirs");
    ASSERT_TRUE(open.ok());
    EXPECT_TRUE(open->front().open());
  }
}

// SPEC §14: the attempts of a node whose lease expired are settled by one
// live node with the startup cleanup's rule and lines, once.
TEST_P(StateMachineTest, AnExpiredNodesAttemptsAreSettledOnceWithTheCleanupLines) {
  auto other = Registry::Open(target_.location());
  ASSERT_TRUE(other.ok());
  StateMachine other_sm(**other);
  ASSERT_TRUE((*other)->JoinFleet(FleetNode("silent", 1)).ok());
  ASSERT_TRUE(reg_->JoinFleet(FleetNode("live", 30)).ok());
  Add("phi-mini");
  const AttemptId id = other_sm.BeginAttempt("phi-mini", false, "cpu:test").value_or(0);
  ASSERT_NE(id, 0);
  std::ostringstream early;
  auto none = sm_->CloseAttemptsOfExpiredNodes(early);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(early.str(), "");  // a lease still running is nobody else's business

  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  std::ostringstream out;
  auto settled = sm_->CloseAttemptsOfExpiredNodes(out);
  ASSERT_TRUE(settled.ok()) << settled.status().ToString();
  ASSERT_EQ(settled->size(), 1u);
  EXPECT_EQ(settled->front().cleanup.attempts_closed, 1);
  EXPECT_EQ(out.str().rfind("\u26a0\ufe0f  Node 'silent' (silent.lan) lost its lease: silent for ", 0), 0u) << out.str();
  EXPECT_NE(out.str().find("s (lease 1 s); closing its open load attempts\n"
                           "\u26a0\ufe0f  Found 1 model(s) stuck in 'testing' status from previous crash\n"
                           "   - Marked 'phi-mini' as incompatible (crashed during test)\n"
                           "\u2705 Compatibility status cleanup completed\n"),
            std::string::npos)
      << out.str();
  EXPECT_EQ(Get("phi-mini").compatibility_status, S::kIncompatible);
  EXPECT_EQ(Attempt(id).outcome, AttemptOutcome::kServerCrash);
  // Once: nothing left for anyone, and the silent node's late finish is refused.
  std::ostringstream again;
  ASSERT_TRUE(sm_->CloseAttemptsOfExpiredNodes(again).ok());
  EXPECT_EQ(again.str(), "");
  EXPECT_EQ(other_sm.FinishSuccess(id).status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace mw
