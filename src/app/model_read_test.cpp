#include "app/model_read.h"

#include <gtest/gtest.h>

#include "support/registry_test_util.h"

namespace mw::app {
namespace {

ModelRecord Row(std::string load_config, CompatStatus status = CompatStatus::kUnknown) {
  ModelRecord row;
  row.model_name = "m";
  row.load_config = std::move(load_config);
  row.compatibility_status = status;
  return row;
}

TEST(ModelReadTest, ValidatesTheRowOnce) {
  ModelRead read(Row(R"({"n_ctx": 512, "n_parallel": 2})"));
  ASSERT_TRUE(read.config.ok()) << read.config.status().ToString();
  EXPECT_EQ(read.config->n_parallel.value_or(0), 2);
  EXPECT_EQ(read.validations, 1);
  ModelRead bad(Row(R"({"n_ctx": "many"})"));
  EXPECT_FALSE(bad.config.ok());
}

// The job's re-read after waiting in the load queue: an unchanged config
// keeps the request's validation; a changed one (a PATCH meanwhile) is
// validated again.
TEST(ModelReadTest, AReReadKeepsTheValidationOfAnUnchangedConfig) {
  ModelRead read(Row(R"({"n_ctx": 512})"));
  read.Refresh(Row(R"({"n_ctx": 512})"), 0);
  EXPECT_EQ(read.validations, 1);
  read.Refresh(Row(R"({"n_ctx": 1024})"), 0);
  EXPECT_EQ(read.validations, 2);
  ASSERT_TRUE(read.config.ok());
  EXPECT_NE(read.config->normalized_json.find("1024"), std::string::npos) << read.config->normalized_json;
  ModelRecord other_engine = Row(R"({"n_ctx": 1024})");
  other_engine.engine = "command";
  read.Refresh(other_engine, 0);
  EXPECT_EQ(read.validations, 3);
  EXPECT_FALSE(read.config.ok());  // a command model needs an argv or a preset
}

// The refusal decided on a row stands for a re-read of the same status, and
// is decided again when the status changed (set by hand while it waited).
TEST(ModelReadTest, ARefusalDecisionStandsUntilTheStatusChanges) {
  ModelRead read(Row("{}", CompatStatus::kCompatible));
  read.refusal_checked = true;
  read.Refresh(Row("{}", CompatStatus::kCompatible), 0);
  EXPECT_TRUE(read.refusal_checked);
  read.Refresh(Row("{}", CompatStatus::kIncompatible), 0);
  EXPECT_FALSE(read.refusal_checked);
  EXPECT_TRUE(read.incompatible());
}

// The load job reads the row again only when a write began since the
// request read it (SQLite: only this server writes): a request that found
// its model unloaded reads the row once.
TEST(ModelReadTest, TheRowIsReadAgainOnlyAfterAWrite) {
  testing_util::TempDir dir;
  auto reg = Registry::Open(dir.File("registry.db"));
  ASSERT_TRUE(reg.ok()) << reg.status().ToString();
  Registry& registry = **reg;
  ASSERT_TRUE(registry.AddModel(Row(R"({"n_ctx": 512})")).ok());
  Result<ModelRead> read = ModelRead::Read(registry, "m");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_FALSE(read->MayHaveChanged(registry));
  (void)registry.GetModel("m");  // reads write nothing
  EXPECT_FALSE(read->MayHaveChanged(registry));
  ModelUpdate patch;
  patch.load_config = R"({"n_ctx": 1024})";
  ASSERT_TRUE(registry.UpdateModel("m", patch).ok());  // a PATCH while the request waited
  EXPECT_TRUE(read->MayHaveChanged(registry));
  ASSERT_TRUE(read->ReadAgain(registry).ok());
  EXPECT_FALSE(read->MayHaveChanged(registry));
  EXPECT_EQ(read->row.load_config, R"({"n_ctx": 1024})");
  EXPECT_EQ(read->validations, 2);
  ASSERT_TRUE(registry.DeleteModel("m").ok());
  EXPECT_EQ(read->ReadAgain(registry).code(), StatusCode::kNotFound);
  EXPECT_TRUE(ModelRead(Row("{}")).MayHaveChanged(registry));  // not read through Read: unknown
}

}  // namespace
}  // namespace mw::app
