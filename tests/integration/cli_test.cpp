// The command-line client against the real server: tables, --json, exit codes.
#include <gtest/gtest.h>

#include "harness.h"

namespace mw::itest {
namespace {

TEST(CliTest, CommandsAndExitCodes) {
  TempDir dir;
  ASSERT_TRUE(MakeTestModel(dir.path() / "data" / "models" / "tiny.gguf"));
  Server server(dir.path() / "data");
  ASSERT_TRUE(server.started());

  ProcessResult empty = server.Cli({"models", "list"});
  EXPECT_EQ(empty.exit_code, 0);
  EXPECT_NE(empty.out.find("No models registered"), std::string::npos);

  ProcessResult add = server.Cli({"models", "add", "tiny", "--file", "tiny.gguf", "--load-config", R"({"n_ctx":256})"});
  EXPECT_EQ(add.exit_code, 0) << add.err;
  ProcessResult dup = server.Cli({"models", "add", "tiny", "--file", "tiny.gguf"});
  EXPECT_EQ(dup.exit_code, 1);
  EXPECT_NE(dup.err.find("model_exists"), std::string::npos);

  ProcessResult list = server.Cli({"models", "list"});
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_NE(list.out.find("NAME"), std::string::npos);
  EXPECT_NE(list.out.find("tiny"), std::string::npos);
  ProcessResult json_list = server.Cli({"models", "list", "--json"});
  EXPECT_EQ(json_list.exit_code, 0);
  EXPECT_EQ(json::parse(json_list.out)["models"][0]["model_name"], "tiny");

  ProcessResult load = server.Cli({"load", "tiny"});
  EXPECT_EQ(load.exit_code, 0) << load.err;
  ProcessResult show = server.Cli({"models", "show", "tiny"});
  EXPECT_EQ(show.exit_code, 0);
  EXPECT_NE(show.out.find("compatible"), std::string::npos);
  EXPECT_NE(show.out.find("recent attempts"), std::string::npos);
  ProcessResult status = server.Cli({"status"});
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_NE(status.out.find("loaded: tiny"), std::string::npos) << status.out;
  EXPECT_EQ(server.Cli({"unload", "tiny"}).exit_code, 0);

  ProcessResult set = server.Cli({"models", "set", "tiny", "--status", "incompatible", "--notes", "manual"});
  EXPECT_EQ(set.exit_code, 0) << set.err;
  ProcessResult refused = server.Cli({"load", "tiny"});
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_NE(refused.err.find("--force"), std::string::npos);
  EXPECT_EQ(server.Cli({"load", "tiny", "--force"}).exit_code, 0);

  EXPECT_EQ(server.Cli({"models", "show", "ghost"}).exit_code, 1);
  EXPECT_EQ(server.Cli({"models", "set", "tiny", "--status", "testing"}).exit_code, 1);
  EXPECT_EQ(server.Cli({"models", "set", "tiny"}).exit_code, 2);
  EXPECT_EQ(server.Cli({"models", "add", "x", "--load-config", "[1]"}).exit_code, 2);
  EXPECT_EQ(server.Cli({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(server.Cli({"load"}).exit_code, 2);
  EXPECT_EQ(server.Cli({"models", "rm", "tiny"}).exit_code, 0);
  EXPECT_EQ(server.Cli({"models", "rm", "tiny"}).exit_code, 1);

  // No server there: exit 1 and a message that says what to do.
  ProcessResult down = RunProcess({(BinDir() / "modelwarden").string(), "--url", "http://127.0.0.1:1", "status"});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_NE(down.err.find("modelwarden serve"), std::string::npos) << down.err;
  ProcessResult env_url = RunProcess({(BinDir() / "modelwarden").string(), "models", "list"}, {{"MODELWARDEN_URL", server.url()}});
  EXPECT_EQ(env_url.exit_code, 0) << env_url.err;
}

}  // namespace
}  // namespace mw::itest
