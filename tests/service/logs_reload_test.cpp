// log_format = "json" (one JSON object per line) and the SIGHUP reload of
// crash patterns, locations, the API key and limits, against the real server.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <sstream>

#include "harness.h"

namespace mw::itest {
namespace {

namespace fs = std::filesystem;

class LogsReloadTest : public ::testing::Test {
 protected:
  fs::path data() const { return dir_.path() / "data"; }
  fs::path config() const { return dir_.path() / "config.toml"; }
  // The tests' models are mw-fake-engine argv lists sent through the API,
  // which the server runs only with allow_api_commands (SPEC §9.1).
  void WriteConfig(const std::string& text) { std::ofstream(config()) << "allow_api_commands = true\n" << text; }
  TempDir dir_;
};

TEST_F(LogsReloadTest, JsonLogIsOneObjectPerLineWithTheFieldsOfTheMessage) {
  WriteConfig("[server]\nlog_format = \"json\"\n");
  Server server(data(), {"--config", config().string()});
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(server.Call("POST", "/api/models", CommandModel("echo", {"--then", "ready"})).status, 201);
  ASSERT_EQ(server.Call("POST", "/api/orchestrate/load", R"({"model_name":"echo"})").status, 200);
  ASSERT_TRUE(server.WaitForStderr("loaded in")) << server.Stderr();
  std::istringstream lines(server.Stderr());
  std::string line;
  int n = 0;
  bool saw_load = false, saw_cleanup = false;
  while (std::getline(lines, line)) {
    ++n;
    json j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "not one JSON object: " << line;
    for (const char* key : {"time", "level", "component", "message"}) {
      EXPECT_TRUE(j.contains(key) && j[key].is_string()) << key << " in " << line;
    }
    if (j.value("component", "") == "load" && j.value("message", "").find("loaded in") != std::string::npos) {
      saw_load = true;
      EXPECT_EQ(j.value("model", ""), "echo") << line;
      EXPECT_TRUE(j["attempt"].is_number_integer()) << line;
    }
    // SPEC §1.4's line keeps its exact text, as the message of one object.
    if (j.value("message", "") == "\u2705 Compatibility status cleanup completed") saw_cleanup = true;
  }
  EXPECT_GT(n, 2);
  EXPECT_TRUE(saw_load) << server.Stderr();
  EXPECT_TRUE(saw_cleanup) << server.Stderr();
}

TEST_F(LogsReloadTest, SighupReloadsKeyLocationsLimitsAndPatternsAndKeepsTheOldOnABadFile) {
  fs::create_directories(dir_.path() / "extra");
  WriteConfig("[server]\napi_key = \"first-key\"\n");
  Server server(data(), {"--config", config().string()});
  ASSERT_TRUE(server.started()) << server.startup_output();
  auto status_with = [&](const std::string& key) { return server.Call("GET", "/api/status", "", key).status; };
  ASSERT_EQ(status_with("first-key"), 200);
  // A failure the built-in catalog does not know: unmatched.
  json model = CommandModel("odd", {"--print", "ZORBLAT subsystem gave up", "--then", "exit1"});
  model["cache_location"] = "extra";
  ASSERT_EQ(server.Call("POST", "/api/models", model.dump(), "first-key").status, 400);  // no such location yet
  model.erase("cache_location");
  ASSERT_EQ(server.Call("POST", "/api/models", model.dump(), "first-key").status, 201);
  HttpReply before = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"odd"})", "first-key");
  ASSERT_EQ(before.status, 422) << before.raw;
  EXPECT_EQ(before.body["error"]["classification"]["pattern_id"], "unmatched") << before.raw;

  std::ofstream(dir_.path() / "patterns.toml")
      << "[[pattern]]\nid = \"zorblat\"\ncategory = \"other\"\nregex = \"ZORBLAT (\\\\w+) gave up\"\n"
         "summary = \"the ZORBLAT $1 gave up\"\n";
  WriteConfig("[server]\napi_key = \"second-key\"\nload_timeout_s = 77\ncrash_patterns = \"patterns.toml\"\n"
              "[locations]\nextra = \"" + (dir_.path() / "extra").string() + "\"\n");
  ASSERT_EQ(::kill(server.pid(), SIGHUP), 0);
  ASSERT_TRUE(server.WaitForStderr("configuration reloaded")) << server.Stderr();
  const std::string log = server.Stderr();
  EXPECT_NE(log.find("api_key changed"), std::string::npos) << log;
  EXPECT_NE(log.find("load_timeout_s 300 -> 77"), std::string::npos) << log;
  EXPECT_NE(log.find("location 'extra' added"), std::string::npos) << log;
  EXPECT_NE(log.find("crash patterns re-read from"), std::string::npos) << log;
  EXPECT_EQ(log.find("second-key"), std::string::npos) << "a key in the log";
  EXPECT_EQ(status_with("second-key"), 200);
  EXPECT_EQ(status_with("first-key"), 401);
  model["model_name"] = "odd2";
  model["cache_location"] = "extra";
  EXPECT_EQ(server.Call("POST", "/api/models", model.dump(), "second-key").status, 201);
  HttpReply after =
      server.Call("POST", "/api/orchestrate/load", R"({"model_name":"odd","force_load":true})", "second-key");
  ASSERT_EQ(after.status, 422) << after.raw;
  EXPECT_EQ(after.body["error"]["classification"]["pattern_id"], "zorblat") << after.raw;
  EXPECT_EQ(after.body["error"]["classification"]["summary"], "the ZORBLAT subsystem gave up") << after.raw;

  // A file that does not load changes nothing, and the log says why.
  WriteConfig("[server]\napi_key = \"third-key\"\nload_timeout_s = \n");
  ASSERT_EQ(::kill(server.pid(), SIGHUP), 0);
  ASSERT_TRUE(server.WaitForStderr("reload failed, keeping the previous configuration")) << server.Stderr();
  EXPECT_NE(server.Stderr().find("TOML syntax error"), std::string::npos) << server.Stderr();
  EXPECT_EQ(status_with("second-key"), 200);
  EXPECT_EQ(status_with("third-key"), 401);
  // So does a crash pattern that does not compile.
  std::ofstream(dir_.path() / "patterns.toml")
      << "[[pattern]]\nid = \"broken\"\ncategory = \"other\"\nregex = \"(unclosed\"\nsummary = \"s\"\n";
  WriteConfig("[server]\napi_key = \"fourth-key\"\ncrash_patterns = \"patterns.toml\"\n");
  ASSERT_EQ(::kill(server.pid(), SIGHUP), 0);
  // The second "reload failed" line.
  ASSERT_TRUE(server.WaitForStderr("reload failed, keeping the previous configuration: crash patterns")) << server.Stderr();
  EXPECT_NE(server.Stderr().find("broken"), std::string::npos) << server.Stderr();  // names the entry
  EXPECT_EQ(status_with("fourth-key"), 401);
  EXPECT_EQ(status_with("second-key"), 200);
}

// The reloaded load_timeout_s applies to the next load (300 s before: the
// load would outlast the client's 120 s).
TEST_F(LogsReloadTest, ReloadedLoadTimeoutAppliesToTheNextLoad) {
  WriteConfig("[server]\n");
  Server server(data(), {"--config", config().string()});
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(server.Call("POST", "/api/models", CommandModel("stuck", {"--then", "hang"})).status, 201);
  WriteConfig("[server]\nload_timeout_s = 1\n");
  ASSERT_EQ(::kill(server.pid(), SIGHUP), 0);
  ASSERT_TRUE(server.WaitForStderr("load_timeout_s 300 -> 1")) << server.Stderr();
  HttpReply r = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"stuck"})");
  ASSERT_EQ(r.status, 422) << r.raw;
  EXPECT_EQ(r.body["error"]["classification"]["outcome"], "timeout") << r.raw;
}

}  // namespace
}  // namespace mw::itest
