#include "cli/classify_command.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace mw {
namespace {

struct Outcome {
  int code;
  std::string out;
  std::string err;
};

Outcome Classify(const std::vector<std::string>& args, const std::string& stdin_text = "") {
  std::istringstream in(stdin_text);
  std::ostringstream out, err;
  int code = RunClassifyCommand(args, in, out, err);
  return {code, out.str(), err.str()};
}

std::string WriteTemp(const std::string& name, const std::string& content) {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("mw_classify_" + std::to_string(::getpid()) + "_" + name))
                         .string();
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

TEST(ClassifyCommandTest, ReadsStdinAndPrintsOneJsonObject) {
  Outcome o = Classify({}, "loading\nrocm: CreateContext failed: hipErrorNoDevice\n");
  ASSERT_EQ(o.code, 0) << o.err;
  nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["category"], "gpu_context");
  EXPECT_EQ(j["pattern_id"], "gpu_context.create_context_code");
  EXPECT_EQ(j["summary"], "CreateContext failed (hipErrorNoDevice)");
  EXPECT_EQ(j["matched_line"], "rocm: CreateContext failed: hipErrorNoDevice");
  EXPECT_EQ(j["suggested_load_config"], nlohmann::json({{"n_gpu_layers", 0}}));
  EXPECT_EQ(j.size(), 5u);
  EXPECT_EQ(o.out.back(), '\n');
  EXPECT_EQ(o.out.find('\n'), o.out.size() - 1);  // one line
}

TEST(ClassifyCommandTest, FileExitCodeAndSignal) {
  std::string path = WriteTemp("log.txt", "all good\n");
  Outcome o = Classify({"--exit-code", "0xC0000409", path});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(nlohmann::json::parse(o.out)["pattern_id"], "aborted_signal.win_fail_fast");
  for (const char* form : {"3221226505", "-1073740791", "18446744072635810825", "0xFFFFFFFFC0000409"}) {
    o = Classify({"--exit-code", form, path});
    ASSERT_EQ(o.code, 0) << form << " " << o.err;
    EXPECT_EQ(nlohmann::json::parse(o.out)["pattern_id"], "aborted_signal.win_fail_fast") << form;
  }
  o = Classify({"--signal=SIGKILL", path});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(nlohmann::json::parse(o.out)["category"], "out_of_memory");
  o = Classify({"--timed-out", "-"}, "still loading\n");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(nlohmann::json::parse(o.out)["category"], "timeout");
  std::remove(path.c_str());
}

TEST(ClassifyCommandTest, FlashAttentionSuggestion) {
  Outcome o = Classify({}, "ggml-cuda/fattn.cu:90: GGML_ASSERT(K->ne[1] % 256 == 0) failed\n");
  ASSERT_EQ(o.code, 0);
  nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["category"], "flash_attention");
  EXPECT_EQ(j["suggested_load_config"], nlohmann::json({{"flash_attn", false}}));
}

TEST(ClassifyCommandTest, UserPatterns) {
  std::string patterns = WriteTemp("p.toml",
                                   "[[pattern]]\nid = 'site.nfs'\ncategory = 'other'\npriority = 100\n"
                                   "regex = '''Stale file handle'''\nsummary = 'model share went away'\n");
  Outcome o = Classify({"--patterns", patterns}, "GGML_ASSERT(x) failed\nread: Stale file handle\n");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(nlohmann::json::parse(o.out)["pattern_id"], "site.nfs");
  std::remove(patterns.c_str());
}

TEST(ClassifyCommandTest, AnInvalidSuggestionIsNotOffered) {
  std::string patterns = WriteTemp("s.toml",
                                   "[[pattern]]\nid = 'site.ctx'\ncategory = 'out_of_memory'\npriority = 100\n"
                                   "regex = '''ctx too big'''\nsummary = 's'\nsuggest = { n_ctx = -5 }\n");
  Outcome o = Classify({"--patterns", patterns}, "ctx too big\n");
  ASSERT_EQ(o.code, 0) << o.err;
  nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["pattern_id"], "site.ctx");
  EXPECT_EQ(j["suggested_load_config"], nlohmann::json::object());
  std::remove(patterns.c_str());
}

TEST(ClassifyCommandTest, BadPatternsFileIsAnError) {
  std::string patterns = WriteTemp("bad.toml",
                                   "[[pattern]]\nid = 'x'\ncategory = 'other'\nregex = '''a[z'''\nsummary = 's'\n");
  Outcome o = Classify({"--patterns", patterns}, "x\n");
  EXPECT_EQ(o.code, 1);
  EXPECT_TRUE(o.out.empty());
  EXPECT_NE(o.err.find(patterns), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("'x'"), std::string::npos) << o.err;
  std::remove(patterns.c_str());
}

TEST(ClassifyCommandTest, UsageAndIoErrors) {
  EXPECT_EQ(Classify({"--exit-code"}).code, 2);
  EXPECT_EQ(Classify({"--exit-code", "abc"}).code, 2);
  EXPECT_EQ(Classify({"--bogus"}).code, 2);
  EXPECT_EQ(Classify({"a", "b"}).code, 2);
  EXPECT_EQ(Classify({"--signal"}).code, 2);
  Outcome missing = Classify({"/nonexistent/mw/log.txt"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("/nonexistent/mw/log.txt"), std::string::npos);
  Outcome help = Classify({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("usage: modelwarden classify"), std::string::npos);
}

// SPEC §18: a signal the classifier does not know is a usage error naming valid ones.
TEST(ClassifyCommandTest, UnknownSignalIsAUsageError) {
  Outcome o = Classify({"--signal", "SIGFOO"}, "log\n");
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(o.out, "");
  EXPECT_NE(o.err.find("SIGFOO"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("SIGSEGV"), std::string::npos) << o.err;
  EXPECT_EQ(Classify({"--signal", "segv"}, "log\n").code, 0);
  EXPECT_EQ(Classify({"--signal=11"}, "log\n").code, 0);
}

TEST(ClassifyCommandTest, BinaryInputGivesValidJson) {
  std::string garbage;
  for (int i = 0; i < 5000; ++i) garbage += static_cast<char>((i * 131) & 0xFF);
  Outcome o = Classify({"--exit-code", "-1073741819"}, garbage);
  ASSERT_EQ(o.code, 0);
  nlohmann::json j = nlohmann::json::parse(o.out);  // throws on invalid UTF-8
  EXPECT_EQ(j["category"], "aborted_signal");
}

TEST(ClassifyCommandTest, ArgcArgvEntryPointRejectsBadUsage) {
  char name[] = "classify";
  char bad[] = "--no-such-flag";
  char* argv[] = {name, bad, nullptr};
  EXPECT_EQ(RunClassifyCommand(2, argv), 2);
}

}  // namespace
}  // namespace mw
