// A test with a fresh schema of its own in the build's private PostgreSQL
// cluster (CTest fixture pg_cluster), skipped with the reason where
// PostgreSQL is not installed.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "harness.h"
#include "support/pg_test_util.h"

namespace mw::itest {

class PgSchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string skip, error;
    pg_ = testing_util::PgTestSchema::Create(&skip, &error);
    if (!pg_) {
      if (!skip.empty()) GTEST_SKIP() << skip;
      FAIL() << error;
    }
  }

  TempDir dir_;
  std::unique_ptr<testing_util::PgTestSchema> pg_;
};

}  // namespace mw::itest
