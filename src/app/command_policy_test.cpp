#include "app/command_policy.h"

#include <gtest/gtest.h>

namespace mw::app {
namespace {

config::Config WithPreset() {
  config::Config c;
  c.engine_presets.push_back({"fake", {"/bin/fake", "{port}"}, "ready", "", {{"A", "1"}}});
  return c;
}

loadconfig::LoadConfig Command(const char* json) {
  auto v = loadconfig::ValidateLoadConfig(loadconfig::Engine::kCommand, json);
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return *v;
}

TEST(CommandPolicyTest, ApiMayNameAPresetButNotAProgram) {
  config::Config c = WithPreset();
  EXPECT_TRUE(CheckApiLoadConfig(Command(R"({"preset": "fake", "health_path": "/h"})"), c).ok());
  Status argv = CheckApiLoadConfig(Command(R"({"argv": ["/bin/touch", "x"]})"), c);
  EXPECT_EQ(argv.code(), StatusCode::kForbidden);
  EXPECT_NE(argv.message().find("fake"), std::string::npos) << "lists the configured presets: " << argv.message();
  EXPECT_EQ(CheckApiLoadConfig(Command(R"({"preset": "fake", "env": {"LD_PRELOAD": "/x.so"}})"), c).code(),
            StatusCode::kForbidden);
  EXPECT_EQ(CheckApiLoadConfig(Command(R"({"preset": "other"})"), c).code(), StatusCode::kInvalidArgument);
  auto llama = loadconfig::ValidateLoadConfig(loadconfig::Engine::kLlamaCpp, R"({"n_ctx": 512})");
  ASSERT_TRUE(llama.ok());
  EXPECT_TRUE(CheckApiLoadConfig(*llama, c).ok());
  c.allow_api_commands = true;
  EXPECT_TRUE(CheckApiLoadConfig(Command(R"({"argv": ["/bin/touch", "x"]})"), c).ok());
}

TEST(CommandPolicyTest, ResolvesThePresetAtLoad) {
  config::Config c = WithPreset();
  LoadRequest request;
  ASSERT_TRUE(ResolveCommand("m", *Command(R"({"preset": "fake"})").command(), c, request).ok());
  EXPECT_EQ(request.argv, (std::vector<std::string>{"/bin/fake", "{port}"}));
  EXPECT_EQ(request.ready_pattern, "ready");
  ASSERT_EQ(request.env.size(), 1u);
  LoadRequest overridden;
  ASSERT_TRUE(ResolveCommand("m", *Command(R"({"preset": "fake", "ready_pattern": "up"})").command(), c, overridden).ok());
  EXPECT_EQ(overridden.ready_pattern, "up");
  LoadRequest gone;
  EXPECT_EQ(ResolveCommand("m", *Command(R"({"preset": "removed"})").command(), c, gone).code(),
            StatusCode::kFailedPrecondition);
}

TEST(CommandPolicyTest, StoredArgvIsRefusedWithThePresetToWrite) {
  config::Config c = WithPreset();
  LoadRequest request;
  Status st = ResolveCommand("old", *Command(R"({"argv": ["/bin/touch", "pwned"]})").command(), c, request);
  EXPECT_EQ(st.code(), StatusCode::kForbidden);
  EXPECT_NE(st.message().find(R"([engines.old] argv = ["/bin/touch","pwned"])"), std::string::npos) << st.message();
  EXPECT_TRUE(request.argv.empty());
  c.allow_api_commands = true;
  ASSERT_TRUE(ResolveCommand("old", *Command(R"({"argv": ["/bin/touch", "pwned"], "env": {"B": "2"}})").command(), c,
                             request).ok());
  EXPECT_EQ(request.argv.size(), 2u);
  ASSERT_EQ(request.env.size(), 1u);
  EXPECT_EQ(request.env[0].first, "B");
}

TEST(CommandPolicyTest, PresetsAreValidatedAtStart) {
  config::Config c = WithPreset();
  EXPECT_TRUE(ValidatePresets(c).ok());
  c.engine_presets.push_back({"broken", {"/bin/x"}, "(unclosed", "", {}});
  Status st = ValidatePresets(c);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("[engines.broken]"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace mw::app
