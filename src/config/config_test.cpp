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
  EXPECT_EQ(config->verify, "decode");
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

// SPEC §21: the fleet's routing options (defaults resolved at start: serve_command).
TEST_F(ConfigTest, AdvertiseUrlAndRouteToPeers) {
  Config config;
  EXPECT_TRUE(config.advertise_url.empty());
  EXPECT_FALSE(config.route_to_peers.has_value());
  ASSERT_TRUE(ApplyToml("advertise_url = \"http://10.0.0.5:8080/\"\nroute_to_peers = false\n", dir_, env_, config).ok());
  EXPECT_EQ(config.advertise_url, "http://10.0.0.5:8080");
  EXPECT_EQ(config.route_to_peers, false);
  for (const char* bad : {"advertise_url = \"10.0.0.5:8080\"\n", "advertise_url = \"https://a:1\"\n",
                          "route_to_peers = \"yes\"\n"}) {
    Status st = ApplyToml(bad, dir_, env_, config);
    EXPECT_FALSE(st.ok()) << bad;
  }
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
verify = "load"
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
  EXPECT_EQ(config->verify, "load");
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
      {"log_format = \"xml\"", "log_format must be \"text\" or \"json\""},
      {"log_format = 1", "log_format must be a string"},
      {"verify = \"maybe\"", "verify must be"},
      {"verify = true", "verify must be a string"},
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

TEST_F(ConfigTest, LogFormat) {
  auto text = LoadConfig({}, env_);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->log_format, LogFormat::kText);
  ServeFlags flags;
  flags.config_file = Write("json.toml", "[server]\nlog_format = \"json\"\n");
  auto json = LoadConfig(flags, env_);
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_EQ(json->log_format, LogFormat::kJson);
}

TEST_F(ConfigTest, MemoryMargin) {
  auto unset = LoadConfig({}, env_);
  ASSERT_TRUE(unset.ok());
  EXPECT_EQ(unset->memory_margin_mib, std::nullopt);  // 1024 per GPU, 512 for RAM
  ServeFlags flags;
  flags.config_file = Write("m.toml", "[server]\nmemory_margin_mib = 2048\n");
  auto set = LoadConfig(flags, env_);
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->memory_margin_mib, 2048);
  flags.config_file = Write("bad.toml", "[server]\nmemory_margin_mib = -1\n");
  auto bad = LoadConfig(flags, env_);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("memory_margin_mib"), std::string::npos);
}

TEST_F(ConfigTest, MaxLoadedModels) {
  auto unset = LoadConfig({}, env_);
  ASSERT_TRUE(unset.ok());
  EXPECT_EQ(unset->max_loaded_models, 0);  // as many as fit
  Config config;
  ASSERT_TRUE(ApplyToml("[server]\nmax_loaded_models = 2\n", dir_, env_, config).ok());
  EXPECT_EQ(config.max_loaded_models, 2);
  Status negative = ApplyToml("max_loaded_models = -1\n", dir_, env_, config);
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.message().find("max_loaded_models must be in [0, 1000]"), std::string::npos) << negative.message();
  EXPECT_FALSE(ApplyToml("max_loaded_models = \"2\"\n", dir_, env_, config).ok());
  EXPECT_FALSE(ApplyToml("max_loaded_models = 1001\n", dir_, env_, config).ok());
  EXPECT_EQ(config.max_loaded_models, 2);
}

TEST_F(ConfigTest, RegistryIsTheSqliteFileUnlessAPostgresUrlIsGiven) {
  auto unset = LoadConfig({}, env_);
  ASSERT_TRUE(unset.ok());
  EXPECT_EQ(unset->RegistryLocation(), unset->RegistryPath().string());
  ServeFlags flags;
  flags.config_file = Write("r.toml", "[server]\nregistry = \"postgresql://mw@db.lan/mw\"\n");
  auto set = LoadConfig(flags, env_);
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->RegistryLocation(), "postgresql://mw@db.lan/mw");
  flags.config_file = Write("bad.toml", "registry = \"/var/lib/mw/registry.db\"\n");
  auto bad = LoadConfig(flags, env_);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("registry must be a PostgreSQL URL"), std::string::npos)
      << bad.status().ToString();
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

TEST_F(ConfigTest, RetestStale) {
  auto defaults = LoadConfig({}, env_);
  ASSERT_TRUE(defaults.ok());
  EXPECT_FALSE(defaults->retest_stale_auto);  // "ask"
  ServeFlags flags;
  flags.config_file = Write("auto.toml", "retest_stale = \"auto\"\n");
  auto config = LoadConfig(flags, env_);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(config->retest_stale_auto);
  flags.config_file = Write("bad.toml", "retest_stale = \"sometimes\"\n");
  auto bad = LoadConfig(flags, env_);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("retest_stale"), std::string::npos);
}

TEST_F(ConfigTest, ProbeCommandAndInterval) {
  auto defaults = LoadConfig({}, env_);
  ASSERT_TRUE(defaults.ok());
  EXPECT_TRUE(defaults->probe_command.empty());  // modelwarden-worker probe
  EXPECT_EQ(defaults->probe_interval_s, 30);
  ServeFlags flags;
  flags.config_file = Write("p.toml", "probe_command = [\"bin/probe\", \"--all\"]\nprobe_interval_s = 2\n");
  auto config = LoadConfig(flags, env_);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  // A relative path is relative to the file's directory; arguments are kept as they are.
  EXPECT_EQ(config->probe_command,
            (std::vector<std::string>{(flags.config_file->parent_path() / "bin/probe").string(), "--all"}));
  EXPECT_EQ(config->probe_interval_s, 2);
  flags.config_file = Write("name.toml", "probe_command = [\"my-probe\"]\n");
  config = LoadConfig(flags, env_);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->probe_command, (std::vector<std::string>{"my-probe"}));  // found on PATH when run
  for (const char* bad : {"probe_command = []\n", "probe_command = [\"\"]\n", "probe_command = \"probe\"\n",
                          "probe_interval_s = 0\n", "probe_interval_s = 86401\n", "probe_interval_s = \"30\"\n"}) {
    flags.config_file = Write("bad.toml", bad);
    auto refused = LoadConfig(flags, env_);
    EXPECT_FALSE(refused.ok()) << bad;
    EXPECT_NE(refused.status().message().find("probe_"), std::string::npos) << refused.status().message();
  }
}

TEST_F(ConfigTest, HealthWatchAndRequestTimeout) {  // SPEC §19
  auto defaults = LoadConfig({}, env_);
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->health_interval_s, 10);
  EXPECT_EQ(defaults->hang_timeout_s, 60);
  EXPECT_EQ(defaults->request_timeout_s, 600);
  ServeFlags flags;
  flags.config_file = Write("h.toml", "health_interval_s = 1\nhang_timeout_s = 3\nrequest_timeout_s = 5\n");
  auto config = LoadConfig(flags, env_);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->health_interval_s, 1);
  EXPECT_EQ(config->hang_timeout_s, 3);
  EXPECT_EQ(config->request_timeout_s, 5);
  for (const char* bad : {"health_interval_s = 0\n", "health_interval_s = 3601\n", "hang_timeout_s = 0\n",
                          "request_timeout_s = -1\n", "request_timeout_s = \"5m\"\n"}) {
    flags.config_file = Write("bad.toml", bad);
    auto refused = LoadConfig(flags, env_);
    EXPECT_FALSE(refused.ok()) << bad;
    EXPECT_NE(refused.status().message().find("_s"), std::string::npos) << refused.status().message();
  }
}

TEST_F(ConfigTest, LeaseSeconds) {
  auto defaults = LoadConfig({}, env_);
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->lease_s, 30);
  ServeFlags flags;
  flags.config_file = Write("lease.toml", "lease_s = 2\n");
  auto config = LoadConfig(flags, env_);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->lease_s, 2);
  for (const char* bad : {"lease_s = 0\n", "lease_s = 3601\n", "lease_s = \"30\"\n"}) {
    flags.config_file = Write("bad.toml", bad);
    auto refused = LoadConfig(flags, env_);
    EXPECT_FALSE(refused.ok()) << bad;
    EXPECT_NE(refused.status().message().find("lease_s"), std::string::npos) << refused.status().message();
  }
}

TEST_F(ConfigTest, RegistryConnectionLimits) {  // issue 26
  auto defaults = LoadConfig({}, env_);
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->registry_connect_timeout_s, 5);
  EXPECT_EQ(defaults->registry_statement_timeout_s, 10);
  EXPECT_EQ(defaults->registry_keepalive_s, 10);
  ServeFlags flags;
  flags.config_file = Write("pg.toml",
                            "registry_connect_timeout_s = 2\nregistry_statement_timeout_s = 3\nregistry_keepalive_s = 4\n");
  auto config = LoadConfig(flags, env_);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->registry_connect_timeout_s, 2);
  EXPECT_EQ(config->registry_statement_timeout_s, 3);
  EXPECT_EQ(config->registry_keepalive_s, 4);
  for (const char* bad : {"registry_statement_timeout_s = 0\n", "registry_keepalive_s = 3601\n"}) {
    flags.config_file = Write("bad.toml", bad);
    auto refused = LoadConfig(flags, env_);
    EXPECT_FALSE(refused.ok()) << bad;
    EXPECT_NE(refused.status().message().find("registry_"), std::string::npos) << refused.status().message();
  }
}

TEST_F(ConfigTest, AutoFixAndAutoFit) {
  auto defaults = LoadConfig({}, env_);
  ASSERT_TRUE(defaults.ok());
  EXPECT_TRUE(defaults->auto_fix);
  EXPECT_TRUE(defaults->auto_fit);
  ServeFlags flags;
  flags.config_file = Write("off.toml", "auto_fix = false\n[server]\nauto_fit = false\n");
  auto config = LoadConfig(flags, env_);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_FALSE(config->auto_fix);
  EXPECT_FALSE(config->auto_fit);
  flags.config_file = Write("bad.toml", "auto_fix = \"yes\"\n");
  auto bad = LoadConfig(flags, env_);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("auto_fix must be true or false"), std::string::npos);
}

TEST_F(ConfigTest, BrowserDefencesAndEnginePresets) {
  auto defaults = LoadConfig({}, env_);
  ASSERT_TRUE(defaults.ok());
  EXPECT_FALSE(defaults->allow_api_commands);
  EXPECT_TRUE(defaults->engine_presets.empty());
  fs::path file = Write("c.toml", R"(
allowed_hosts = ["MyBox.lan"]
allowed_origins = ["http://localhost:3000"]
[server]
allow_api_commands = true
[engines.vllm]
argv = ["/opt/vllm", "{model_path}", "--port", "{port}"]
health_path = "/health"
env = { CUDA_VISIBLE_DEVICES = "0" }
[engines.a-tool]
argv = ["/bin/tool"]
ready_pattern = "ready"
)");
  ServeFlags flags;
  flags.config_file = file;
  auto config = LoadConfig(flags, env_);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(config->allow_api_commands);
  EXPECT_EQ(config->allowed_hosts, std::vector<std::string>{"mybox.lan"});
  EXPECT_EQ(config->allowed_origins, std::vector<std::string>{"http://localhost:3000"});
  ASSERT_EQ(config->engine_presets.size(), 2u);
  EXPECT_EQ(config->engine_presets[0].name, "a-tool");  // sorted
  const EnginePreset* vllm = config->FindPreset("vllm");
  ASSERT_NE(vllm, nullptr);
  EXPECT_EQ(vllm->argv.size(), 4u);
  EXPECT_EQ(vllm->health_path, "/health");
  ASSERT_EQ(vllm->env.size(), 1u);
  EXPECT_EQ(vllm->env[0].first, "CUDA_VISIBLE_DEVICES");
  EXPECT_EQ(config->FindPreset("nope"), nullptr);
}

TEST_F(ConfigTest, BadPresetsAndListsAreClearErrors) {
  for (const char* text : {"[engines.x]\nready_pattern = \"r\"\n", "[engines.x]\nargv = []\n",
                                 "[engines.x]\nargv = \"/bin/sh -c x\"\n", "[engines.x]\nargv = [\"a\"]\nshell = true\n",
                                 "[engines.x]\nargv = [\"a\"]\nhealth_path = \"health\"\n", "[engines]\nx = 1\n",
                                 "allowed_hosts = \"a\"\n", "allowed_origins = [\"localhost:3000\"]\n",
                                 "allowed_origins = [\"http://a/\"]\n", "allow_api_commands = \"yes\"\n"}) {
    ServeFlags flags;
    flags.config_file = Write("bad.toml", text);
    auto config = LoadConfig(flags, env_);
    EXPECT_FALSE(config.ok()) << text;
    if (!config.ok()) {
      EXPECT_FALSE(config.status().message().empty());
    }
  }
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
