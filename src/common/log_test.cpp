#include "common/log.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace mw {
namespace {

using nlohmann::json;

TEST(LogFormatTest, TextLineIsUnchanged) {
  EXPECT_EQ(FormatLogLine(LogFormat::kText, "T", LogLevel::kWarn, "load", "model=phi attempt=3 failed"),
            "T warn [load] model=phi attempt=3 failed\n");
}

TEST(LogFormatTest, JsonLineIsOneObjectWithTheFieldsOfTheMessage) {
  std::string line = FormatLogLine(LogFormat::kJson, "2026-01-02T03:04:05.678Z", LogLevel::kInfo, "load",
                                   "model=phi-3.gguf attempt=12 started (forced=false) pid=42, took 5 ms");
  ASSERT_EQ(line.back(), '\n');
  ASSERT_EQ(line.find('\n'), line.size() - 1);
  json j = json::parse(line);
  EXPECT_EQ(j["time"], "2026-01-02T03:04:05.678Z");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["component"], "load");
  EXPECT_EQ(j["message"], "model=phi-3.gguf attempt=12 started (forced=false) pid=42, took 5 ms");
  EXPECT_EQ(j["model"], "phi-3.gguf");
  EXPECT_EQ(j["attempt"], 12);
  EXPECT_EQ(j["forced"], "false");
  EXPECT_EQ(j["pid"], 42);
}

TEST(LogFormatTest, JsonEscapesAndNeverLetsTheMessageOverrideTheEnvelope) {
  std::string line = FormatLogLine(LogFormat::kJson, "T", LogLevel::kError, "api",
                                   "bad \"quote\" back\\slash\nnewline\x01 level=fake message=x model=a model=b "
                                   "Key=upper n=007");
  ASSERT_EQ(line.find('\n'), line.size() - 1) << line;
  json j = json::parse(line);
  EXPECT_EQ(j["level"], "error");
  EXPECT_EQ(j["message"], "bad \"quote\" back\\slash\nnewline\x01 level=fake message=x model=a model=b Key=upper n=007");
  EXPECT_EQ(j["model"], "a");
  EXPECT_FALSE(j.contains("Key"));
  EXPECT_EQ(j["n"], "007");  // not a JSON number
}

}  // namespace
}  // namespace mw
