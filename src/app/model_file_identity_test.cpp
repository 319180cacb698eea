#include "app/model_file_identity.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
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

// SPEC §18 (issue 23): a pulled file's identity is its sha256 (the HF cache
// blob's name), so copies of the same blob with other mtimes agree; a file
// elsewhere keeps size + mtime + header hash.
TEST(ModelFileIdentityTest, APulledBlobIsKnownByItsSha256NotItsMtime) {
  const fs::path root = fs::path(::testing::TempDir()) / ("model_file_identity_hf_" + std::to_string(::getpid()));
  const std::string sha(64, 'a');
  const fs::path blobs_a = root / "a" / "models--org--name" / "blobs";
  const fs::path blobs_b = root / "b" / "models--org--name" / "blobs";
  fs::create_directories(blobs_a);
  fs::create_directories(blobs_b);
  fs::create_directories(root / "a" / "models--org--name" / "snapshots" / "c0");
  std::ofstream(blobs_a / sha) << "not a GGUF";
  std::ofstream(blobs_b / sha) << "not a GGUF";
  fs::last_write_time(blobs_b / sha, fs::last_write_time(blobs_a / sha) - std::chrono::hours(24));
  const fs::path link = root / "a" / "models--org--name" / "snapshots" / "c0" / "m.gguf";
  fs::create_symlink("../../blobs/" + sha, link);
  ModelFileIdentities files;
  const std::string a = files.Of((blobs_a / sha).string());
  EXPECT_EQ(a, "size=10 sha256=" + sha);
  EXPECT_EQ(files.Of((blobs_b / sha).string()), a);  // another node's copy, another mtime
  EXPECT_EQ(files.Of(link.string()), a);               // the snapshot's link names the same blob
  // Not in a cache: size, mtime and header hash as before.
  std::ofstream(root / sha) << "not a GGUF";
  EXPECT_NE(files.Of((root / sha).string()).find("mtime="), std::string::npos);
  fs::remove_all(root);
}

}  // namespace
}  // namespace mw::app
