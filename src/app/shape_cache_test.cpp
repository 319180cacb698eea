#include "app/shape_cache.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace mw::app {
namespace {

class ShapeCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/mw-shape-cache-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/m.gguf";
    Write("abc");
  }
  void TearDown() override {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  void Write(const std::string& text) { std::ofstream(path_, std::ios::trunc) << text; }
  std::string dir_;
  std::string path_;
};

// Read once per file version; a file the reader cannot read is remembered
// too; a reader that did not answer is asked again.
TEST_F(ShapeCacheTest, OncePerFileVersionAndAnUnreadableFileIsRemembered) {
  int reads = 0;
  bool answer = false;
  bool readable = true;
  ShapeCache cache([&](const std::string&) -> Result<ShapeCache::Answer> {
    ++reads;
    if (!answer) return UnavailableError("the worker did not answer");
    ShapeCache::Answer out;
    if (readable) {
      out.shape = fit::ModelShape{};
      out.shape->layers = 12;
    } else {
      out.error = "not a GGUF file";
    }
    return out;
  });
  EXPECT_EQ(cache.ShapeOf(path_).status().code(), StatusCode::kUnavailable);
  answer = true;
  auto shape = cache.ShapeOf(path_);
  ASSERT_TRUE(shape.ok());
  EXPECT_EQ(shape->layers, 12);
  EXPECT_TRUE(cache.ShapeOf(path_).ok());
  EXPECT_EQ(reads, 2);
  readable = false;
  Write("abcdef");  // another version of the file (another size)
  EXPECT_EQ(cache.ShapeOf(path_).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(cache.ShapeOf(path_).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(reads, 3);
  EXPECT_EQ(cache.ShapeOf(dir_ + "/missing.gguf").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(reads, 3);
}

}  // namespace
}  // namespace mw::app
