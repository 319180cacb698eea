#include "app/model_paths.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace mw::app {
namespace {
namespace fs = std::filesystem;

class ModelPathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mw_paths_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "loc/sub");
    fs::create_directories(dir_ / "outside");
    std::ofstream(dir_ / "loc/a.gguf") << "x";
    std::ofstream(dir_ / "loc/sub/b.gguf") << "x";
    std::ofstream(dir_ / "outside/secret.gguf") << "x";
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(ModelPathsTest, RelativeAndAbsoluteInside) {
  auto r = ResolveModelFile(dir_ / "loc", "a.gguf", true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->relative, "a.gguf");
  auto r2 = ResolveModelFile(dir_ / "loc", (dir_ / "loc/sub/b.gguf").string(), true);
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  EXPECT_EQ(r2->relative, "sub/b.gguf");
  auto missing = ResolveModelFile(dir_ / "loc", "nope.gguf", true);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(ResolveModelFile(dir_ / "loc", "nope.gguf", false).ok());
}

TEST_F(ModelPathsTest, EscapesAreRefused) {
  for (const std::string& bad : std::vector<std::string>{"../outside/secret.gguf", "sub/../../outside/secret.gguf", "", "/etc/passwd",
                          (dir_ / "outside/secret.gguf").string(), std::string("a\0b", 3)}) {
    auto r = ResolveModelFile(dir_ / "loc", bad, false);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  fs::create_symlink(dir_ / "outside/secret.gguf", dir_ / "loc/link.gguf");
  fs::create_directory_symlink(dir_ / "outside", dir_ / "loc/linkdir");
  EXPECT_EQ(ResolveModelFile(dir_ / "loc", "link.gguf", true).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveModelFile(dir_ / "loc", "linkdir/secret.gguf", true).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(ResolveModelFile(dir_ / "loc", ".", false).ok());  // the location itself is not a file
}

TEST_F(ModelPathsTest, HuggingFaceCacheLayout) {
  fs::path snap = dir_ / "loc/hub/models--my-org--tiny/snapshots/abc123";
  fs::create_directories(snap);
  fs::create_directories(dir_ / "loc/hub/models--my-org--tiny/blobs");
  std::ofstream(dir_ / "loc/hub/models--my-org--tiny/blobs/sha") << "x";
  fs::create_symlink("../../blobs/sha", snap / "tiny.gguf");
  auto r = ResolveHfCacheFile(dir_ / "loc", "my-org/tiny");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->relative, "hub/models--my-org--tiny/snapshots/abc123/tiny.gguf");
  EXPECT_EQ(ResolveHfCacheFile(dir_ / "loc", "my-org/other").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ResolveHfCacheFile(dir_ / "loc", "../x").status().code(), StatusCode::kInvalidArgument);
  std::ofstream(snap / "second.gguf") << "x";
  EXPECT_EQ(ResolveHfCacheFile(dir_ / "loc", "my-org/tiny").status().code(), StatusCode::kInvalidArgument);
}

TEST(HfPathTest, Validation) {
  EXPECT_TRUE(IsValidHfPath("microsoft/Phi-3-mini-4k-instruct"));
  EXPECT_FALSE(IsValidHfPath("noslash"));
  EXPECT_FALSE(IsValidHfPath("a/b/c"));
  EXPECT_FALSE(IsValidHfPath("../b"));
  EXPECT_FALSE(IsValidHfPath("a/.."));
  EXPECT_FALSE(IsValidHfPath("a b/c"));
}

}  // namespace
}  // namespace mw::app
