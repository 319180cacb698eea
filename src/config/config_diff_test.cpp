#include "config/config_diff.h"

#include <gtest/gtest.h>

namespace mw::config {
namespace {

Config Base() {
  Config c;
  c.data_dir = "/var/lib/mw";
  c.locations = {{"primary", "/var/lib/mw/models"}, {"hf", "/hf"}};
  c.api_key = "old-secret";
  return c;
}

TEST(ConfigDiffTest, NothingChanged) {
  ConfigChanges c = DiffConfig(Base(), Base());
  EXPECT_TRUE(c.applied.empty());
  EXPECT_TRUE(c.need_restart.empty());
}

TEST(ConfigDiffTest, ReloadablePartsAndNoSecretInTheText) {
  Config after = Base();
  after.api_key = "new-secret";
  after.load_timeout_s = 60;
  after.log_format = LogFormat::kJson;
  after.retest_stale_auto = true;
  after.probe_command = {"/opt/probe", "--json"};
  after.probe_interval_s = 5;
  after.max_loaded_models = 2;
  after.crash_patterns_file = "/etc/mw/patterns.toml";
  after.locations = {{"primary", "/models"}, {"extra", "/extra"}};
  ConfigChanges c = DiffConfig(Base(), after);
  std::string all;
  for (const auto& s : c.applied) all += s + "\n";
  EXPECT_NE(all.find("api_key changed"), std::string::npos) << all;
  EXPECT_EQ(all.find("secret"), std::string::npos) << all;
  EXPECT_NE(all.find("load_timeout_s 300 -> 60"), std::string::npos) << all;
  EXPECT_NE(all.find("log_format text -> json"), std::string::npos) << all;
  EXPECT_NE(all.find("retest_stale ask -> auto"), std::string::npos) << all;
  EXPECT_NE(all.find("probe_command (modelwarden-worker probe) -> /opt/probe --json"), std::string::npos) << all;
  EXPECT_NE(all.find("probe_interval_s 30 -> 5"), std::string::npos) << all;
  EXPECT_NE(all.find("max_loaded_models 0 -> 2"), std::string::npos) << all;
  EXPECT_NE(all.find("crash_patterns '' -> '/etc/mw/patterns.toml'"), std::string::npos) << all;
  EXPECT_NE(all.find("location 'primary' /var/lib/mw/models -> /models"), std::string::npos) << all;
  EXPECT_NE(all.find("location 'hf' removed"), std::string::npos) << all;
  EXPECT_NE(all.find("location 'extra' added (/extra)"), std::string::npos) << all;
  EXPECT_TRUE(c.need_restart.empty());
}

TEST(ConfigDiffTest, RestartOnlyParts) {
  Config after = Base();
  after.port = 9090;
  after.host = "::1";
  after.data_dir = "/elsewhere";
  after.worker_path = "/opt/w";
  ConfigChanges c = DiffConfig(Base(), after);
  EXPECT_TRUE(c.applied.empty());
  ASSERT_EQ(c.need_restart.size(), 4u);
  EXPECT_EQ(c.need_restart[0], "host 127.0.0.1 -> ::1");
  EXPECT_EQ(c.need_restart[1], "port 8080 -> 9090");
}

TEST(ConfigDiffTest, RegistryChangeNeedsARestartAndIsNotPrinted) {
  Config after = Base();
  after.registry_url = "postgresql://mw:secret@db/mw";
  ConfigChanges c = DiffConfig(Base(), after);
  EXPECT_TRUE(c.applied.empty());
  ASSERT_EQ(c.need_restart.size(), 1u);
  EXPECT_EQ(c.need_restart[0], "registry");  // the URL may hold a password
}

TEST(ConfigDiffTest, ApiKeySetAndRemoved) {
  Config none = Base();
  none.api_key.clear();
  EXPECT_EQ(DiffConfig(none, Base()).applied.at(0), "api_key set (requests now need it)");
  EXPECT_EQ(DiffConfig(Base(), none).applied.at(0), "api_key removed (no authentication)");
}

}  // namespace
}  // namespace mw::config
