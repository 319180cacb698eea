#include "app/model_file_identity.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace mw::app {
namespace {

namespace fs = std::filesystem;

// SPEC §18: the identity names one version of the file; a replaced file is
// noticed by AnyChanged (a cached model list is then rebuilt).
TEST(ModelFileIdentityTest, OneVersionOfTheFileAndItsReplacement) {
  const fs::path file = fs::path(::testing::TempDir()) / ("model_file_identity_" + std::to_string(::getpid()) + ".gguf");
  std::ofstream(file) << "not a GGUF";
  ModelFileIdentities files;
  const std::string text = files.Of(file.string());
  EXPECT_NE(text.find("gguf=none"), std::string::npos) << text;  // still an identity: replacing it is a change
  EXPECT_EQ(files.Of(file.string()), text);
  EXPECT_FALSE(files.AnyChanged());
  std::ofstream(file, std::ios::trunc) << "not a GGUF either";
  EXPECT_TRUE(files.AnyChanged());
  EXPECT_NE(files.Of(file.string()), text);
  EXPECT_FALSE(files.AnyChanged());
  fs::remove(file);
  EXPECT_TRUE(files.AnyChanged());
  EXPECT_EQ(files.Of(file.string()), "");  // gone: no evidence either way
  EXPECT_FALSE(files.AnyChanged());
}

}  // namespace
}  // namespace mw::app
