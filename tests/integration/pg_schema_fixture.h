// Fixtures for tests on PostgreSQL (SPEC §14). A machine without
// PostgreSQL fails them under `make test` and CI, else skips them with the
// reason (tests/require.h: scripts/bootstrap installs it).
//   PgSchemaTest          a fresh schema of its own in the build's shared
//                         cluster (CTest fixture pg_cluster)
//   PgPrivateClusterTest  a cluster of its own (cluster_), for tests that
//                         stop, restart or stall PostgreSQL
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "harness.h"
#include "require.h"
#include "support/pg_test_util.h"

namespace mw::itest {

class PgSchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string skip, error;
    pg_ = testing_util::PgTestSchema::Create(&skip, &error);
    if (!pg_ && skip.empty()) GTEST_FAIL() << error;
    MW_REQUIRE(pg_ != nullptr, skip);
  }

  TempDir dir_;
  std::unique_ptr<testing_util::PgTestSchema> pg_;
};

class PgPrivateClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string skip, error;
    const bool started = cluster_.Start(&skip, &error);
    if (!started && skip.empty()) GTEST_FAIL() << error;
    MW_REQUIRE(started, skip);
  }

  TempDir dir_;
  testing_util::PgPrivateCluster cluster_;
};

}  // namespace mw::itest
