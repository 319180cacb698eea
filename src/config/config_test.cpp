#include "config/config.h"

#include <gtest/gtest.h>

#include <fstream>

namespace mw::config {
namespace {
namespace fs = std::filesystem;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mw_config_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    env_.home = (dir_ / "home").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path Write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p;
  }
  fs::path dir_;
  Environment env_;
};

TEST_F(ConfigTest, DefaultsWithoutFile) {
  auto config = LoadConfig({}, env_);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->host, "127.0.0.1");
  EXPECT_EQ(config->port, 8080);
  EXPECT_EQ(config->load_timeout_s, 300);
  EXPECT_EQ(config->data_dir, dir_ / "home/.local/share/modelwarden");
  EXPECT_EQ(config->RegistryPath(), dir_ / "home/.local/share/modelwarden/registry.db");
  ASSERT_EQ(config->locations.size(), 1u);
  EXPECT_EQ(config->locations[0].name, "primary");
  EXPECT_EQ(config->locations[0].path, config->data_dir / "models");
  EXPECT_TRUE(config->config_file.empty());
}

TEST_F(ConfigTest, ServingOptions) {
  auto defaults = LoadConfig({}, env_);
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->max_queue, 64);
  EXPECT_EQ(defaults->keep_alive_ms, 300000);
  Config config;
  ASSERT_TRUE(ApplyToml("[server]\nmax_queue = 8\nkeep_alive = \"-1\"\n", dir_, env_, config).ok());
  EXPECT_EQ(config.max_queue, 8);
  EXPECT_EQ(config.keep_alive_ms, -1);
  ASSERT_TRUE(ApplyToml("keep_alive = 30\n", dir_, env_, config).ok());
  EXPECT_EQ(config.keep_alive_ms, 30000);
  ASSERT_TRUE(ApplyToml("keep_alive = \"0\"\n", dir_, env_, config).ok());
  EXPECT_EQ(config.keep_alive_ms, 0);
  EXPECT_FALSE(ApplyToml("keep_alive = \"5 minutes\"\n", dir_, env_, config).ok());
  EXPECT_FALSE(ApplyToml("keep_alive = true\n", dir_, env_, config).ok());
  EXPECT_FALSE(ApplyToml("max_queue = -1\n", dir_, env_, config).ok());
}

TEST_F(ConfigTest, XdgDataHome) {
  env_.xdg_data_home = (dir_ / "xdg").string();
  auto config = LoadConfig({}, env_);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->data_dir, dir_ / "xdg/modelwarden");
}

TEST_F(ConfigTest, DefaultConfigFileUsedWhenPresent) {
  fs::create_directories(dir_ / "home/.config/modelwarden");
  Write("home/.config/modelwarden/config.toml", "port = 9000\n");
  auto config = LoadConfig({}, env_);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->port, 9000);
  EXPECT_EQ(config->config_file, dir_ / "home/.config/modelwarden/config.toml");
}

TEST_F(ConfigTest, FullFileAndRelativePaths) {
  fs::path file = Write("c.toml", R"(
[server]
host = "127.0.0.2"
port = 1234
data_dir = "data"
load_timeout_s = 60
crash_patterns = "patterns.json"
worker = "~/bin/w"
api_key = "secret"
[locations]
primary = "/models/main"
hf = "hub"
)");
  ServeFlags flags;
  flags.config_file = file;
  auto config = LoadConfig(flags, env_);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->host, "127.0.0.2");
  EXPECT_EQ(config->port, 1234);
  EXPECT_EQ(config->data_dir, dir_ / "data");
  EXPECT_EQ(config->load_timeout_s, 60);
  EXPECT_EQ(config->crash_patterns_file, dir_ / "patterns.json");
  EXPECT_EQ(config->worker_path, dir_ / "home/bin/w");
  EXPECT_EQ(config->api_key, "secret");
  ASSERT_EQ(config->locations.size(), 2u);
  EXPECT_EQ(config->locations[0].name, "primary");
  EXPECT_EQ(config->locations[0].path, "/models/main");
  EXPECT_EQ(config->locations[1].name, "hf");
  EXPECT_EQ(config->locations[1].path, dir_ / "hub");
}

TEST_F(ConfigTest, FlagsOverrideFile) {
  fs::path file = Write("c.toml", "host = \"127.0.0.3\"\nport = 1\ndata_dir = \"/a\"\n");
  auto flags = ParseServeFlags({"--config", file.string(), "--port=2", "--host", "localhost", "--data-dir",
                                (dir_ / "d").string()});
  ASSERT_TRUE(flags.ok()) << flags.status().ToString();
  auto config = LoadConfig(*flags, env_);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->host, "localhost");
  EXPECT_EQ(config->port, 2);
  EXPECT_EQ(config->data_dir, dir_ / "d");
  EXPECT_EQ(config->locations[0].path, dir_ / "d/models");
}

TEST_F(ConfigTest, ExplicitMissingFileIsAnError) {
  ServeFlags flags;
  flags.config_file = dir_ / "nope.toml";
  auto config = LoadConfig(flags, env_);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kNotFound);
  EXPECT_NE(config.status().message().find("nope.toml"), std::string::npos);
}

TEST_F(ConfigTest, BadFiles) {
  struct Case {
    const char* text;
    const char* expect;
  } cases[] = {
      {"port = ", "line 1"},
      {"port = \"x\"", "integer"},
      {"port = 70000", "range"},
      {"colour = 1", "unknown configuration key 'colour'"},
      {"load_timeout_s = 0", "load_timeout_s"},
      {"[locations]\n\"bad name\" = \"/x\"", "location name"},
      {"[locations]\nx = 3", "path string"},
      {"server = 3", "[server]"},
  };
  for (const auto& c : cases) {
    fs::path file = Write("bad.toml", c.text);
    ServeFlags flags;
    flags.config_file = file;
    auto config = LoadConfig(flags, env_);
    ASSERT_FALSE(config.ok()) << c.text;
    EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument) << c.text;
    EXPECT_NE(config.status().message().find(c.expect), std::string::npos)
        << c.text << " -> " << config.status().message();
  }
}

TEST_F(ConfigTest, BadFlags) {
  EXPECT_FALSE(ParseServeFlags({"--bogus"}).ok());
  EXPECT_FALSE(ParseServeFlags({"--port"}).ok());
  EXPECT_FALSE(ParseServeFlags({"--port", "abc"}).ok());
  EXPECT_FALSE(ParseServeFlags({"--port", "99999"}).ok());
  EXPECT_FALSE(ParseServeFlags({"--host="}).ok());
  auto ok = ParseServeFlags({"--port", "0"});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok->port, 0);
}

TEST_F(ConfigTest, NonLoopbackNeedsApiKey) {
  ServeFlags flags;
  flags.host = "0.0.0.0";
  auto config = LoadConfig(flags, env_);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(config.status().message().find("API key"), std::string::npos);
  env_.api_key = "k";
  config = LoadConfig(flags, env_);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->api_key, "k");
}

TEST(LoopbackTest, Hosts) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("127.evil.example"));
  EXPECT_FALSE(IsLoopbackHost("192.168.1.1"));
  EXPECT_FALSE(IsLoopbackHost("::"));
}

}  // namespace
}  // namespace mw::config
