#include "cli/make_test_model_command.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace mw::cli {
namespace {

namespace fs = std::filesystem;

int RunCommand(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return RunMakeTestModelCommand(static_cast<int>(argv.size()), argv.data());
}

class MakeTestModelCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("MW_BIN_DIR");
    ASSERT_NE(bin, nullptr);
    ::setenv("MODELWARDEN_WORKER", (std::string(bin) + "/modelwarden-worker").c_str(), 1);
    dir_ = fs::temp_directory_path() / ("mw-mtm-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

TEST_F(MakeTestModelCommandTest, WritesAGgufThroughTheWorker) {
  std::string out = (dir_ / "m.gguf").string();
  EXPECT_EQ(RunCommand({"make-test-model", out, "--layers", "1"}), 0);
  std::ifstream in(out, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  EXPECT_EQ(std::string(magic, 4), "GGUF");
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename(), "m.gguf") << "no temporary file left behind";
  }
}

TEST_F(MakeTestModelCommandTest, UsageErrorIsTwoAndMissingWorkerIsOne) {
  EXPECT_EQ(RunCommand({"make-test-model"}), 2);
  EXPECT_EQ(RunCommand({"make-test-model", (dir_ / "x.gguf").string(), "--bogus", "1"}), 2);
  ::setenv("MODELWARDEN_WORKER", (dir_ / "no-such-worker").c_str(), 1);
  EXPECT_EQ(RunCommand({"make-test-model", (dir_ / "x.gguf").string()}), 1);
  // --help is ours (SPEC §18): the usage without starting the worker, exit 0.
  EXPECT_EQ(RunCommand({"make-test-model", "--help"}), 0);
  EXPECT_EQ(RunCommand({"make-test-model", (dir_ / "x.gguf").string(), "-h"}), 0);
}

}  // namespace
}  // namespace mw::cli
