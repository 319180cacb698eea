// The Supervisor driving the real modelwarden-worker on a model made by
// `modelwarden-worker make-test-model` (no download, CPU only).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "supervisor/supervisor.h"
#include "supervisor/test_support.h"

namespace mw {
namespace {

using std::chrono::milliseconds;

class RealWorkerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    worker_ = testing_support::BinDir() + "/modelwarden-worker";
    if (::access(worker_.c_str(), X_OK) != 0) return;
    dir_ = testing_support::TempDir();
    model_ = dir_ + "/tiny.gguf";
    SpawnOptions make;
    make.argv = {worker_, "make-test-model", model_};
    auto child = ChildProcess::Spawn(std::move(make));
    ASSERT_TRUE(child.ok()) << child.status().ToString();
    ProcessExit e = child->Wait();
    ASSERT_TRUE(e.success()) << e.Describe() << "\n" << child->LogTail();
  }

  void SetUp() override {
    if (::access(worker_.c_str(), X_OK) != 0) GTEST_SKIP() << "modelwarden-worker is not built";
  }

  LoadRequest Request(const std::string& path, const std::string& config) {
    LoadRequest r;
    r.model_name = "tiny";
    r.model_path = path;
    r.engine = EngineKind::kLlamaCpp;
    r.load_config_json = config;
    return r;
  }

  SupervisorOptions Options() {
    SupervisorOptions o;
    o.worker_path = worker_;
    return o;
  }

  static inline std::string worker_, dir_, model_;
};

TEST_F(RealWorkerTest, LoadsThenUnloadsCleanly) {
  Supervisor sup(Options());
  double last_progress = -1;
  LoadObserver obs;
  obs.on_progress = [&](double p) { last_progress = p; };
  auto report = sup.Load(Request(model_, R"({"n_ctx":256})"), obs);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->outcome, LoadOutcome::kSuccess) << report->error_message << "\n" << report->log_tail;
  EXPECT_EQ(report->n_ctx, 256);
  EXPECT_FALSE(report->devices.empty());
  EXPECT_GE(last_progress, 0.0);
  ASSERT_TRUE(sup.IsLoaded("tiny"));
  auto exit = sup.Unload("tiny");
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->success()) << exit->Describe();
  EXPECT_TRUE(testing_support::ProcessGone(report->pid));
}

TEST_F(RealWorkerTest, OriginalDesignExampleConfigLoads) {
  Supervisor sup(Options());
  auto report = sup.Load(
      Request(model_, R"({"attn_implementation": "eager", "torch_dtype": "bfloat16", "device_map": "auto"})"));
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->outcome, LoadOutcome::kSuccess) << report->error_message << "\n" << report->log_tail;
}

TEST_F(RealWorkerTest, CorruptAndTruncatedFilesFailWithTheirLog) {
  std::string garbage = dir_ + "/garbage.gguf";
  std::ofstream(garbage) << "this is not a gguf file at all";
  std::string truncated = dir_ + "/truncated.gguf";
  std::filesystem::copy_file(model_, truncated, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(truncated, std::filesystem::file_size(model_) / 2);

  Supervisor sup(Options());
  for (const std::string& path : {garbage, truncated}) {
    auto report = sup.Load(Request(path, "{}"));
    ASSERT_TRUE(report.ok());
    EXPECT_NE(report->outcome, LoadOutcome::kSuccess) << path;
    EXPECT_NE(report->outcome, LoadOutcome::kTimeout) << path;
    EXPECT_FALSE(report->error_message.empty()) << path;
    EXPECT_FALSE(report->log_tail.empty()) << path;
    EXPECT_FALSE(sup.IsLoaded("tiny"));
  }
}

TEST_F(RealWorkerTest, ProbeAnswersWithDevices) {
  Supervisor sup(Options());
  auto answer = sup.RunWorkerCommand({"probe"}, milliseconds(60000));
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  ASSERT_TRUE(std::holds_alternative<protocol::ProbeMessage>(*answer));
  EXPECT_FALSE(std::get<protocol::ProbeMessage>(*answer).devices.empty());
}

}  // namespace
}  // namespace mw
