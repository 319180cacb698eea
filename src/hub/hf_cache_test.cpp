#include "hub/hf_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "hub/pull_manager.h"

namespace mw::hub {
namespace {
namespace fs = std::filesystem;

std::vector<RepoFile> Repo() {
  return {{"README.md", 10, ""},
          {"tiny.Q4_K_M.gguf", 100, "a"},
          {"tiny.Q4_K.gguf", 90, "b"},
          {"tiny.q8_0.gguf", 200, "c"},
          {"big-Q8_0-00002-of-00002.gguf", 50, "e"},
          {"big-Q8_0-00001-of-00002.gguf", 50, "d"},
          {"mmproj-tiny-f16.gguf", 30, "f"}};
}

std::vector<std::string> Paths(const std::vector<RepoFile>& files) {
  std::vector<std::string> out;
  for (const auto& f : files) out.push_back(f.path);
  return out;
}

TEST(HfCacheTest, QuantTagMatchesAWholeTokenInAnyCase) {
  auto r = ChooseFiles(Repo(), "org/tiny", "", "q4_k_m");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(Paths(*r), std::vector<std::string>{"tiny.Q4_K_M.gguf"});
  r = ChooseFiles(Repo(), "org/tiny", "", "Q4_K");  // not Q4_K_M
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(Paths(*r), std::vector<std::string>{"tiny.Q4_K.gguf"});
}

TEST(HfCacheTest, SeveralOrNoMatchesListTheGgufFiles) {
  auto r = ChooseFiles(Repo(), "org/tiny", "", "Q8_0");  // tiny.q8_0 and the split set
  ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("several GGUF files match quant 'Q8_0'"), std::string::npos);
  EXPECT_NE(r.status().message().find("tiny.q8_0.gguf"), std::string::npos);
  r = ChooseFiles(Repo(), "org/tiny", "", "IQ2_XS");
  ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("no GGUF file matches"), std::string::npos);
  EXPECT_NE(r.status().message().find("mmproj-tiny-f16.gguf"), std::string::npos) << "the mmproj is listed";
  r = ChooseFiles(Repo(), "org/tiny", "nope.gguf", "");
  ASSERT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("tiny.Q4_K_M.gguf"), std::string::npos);
}

TEST(HfCacheTest, SplitGgufTakesEveryPartAndMmprojCanBeNamed) {
  auto r = ChooseFiles(Repo(), "org/tiny", "big-Q8_0-00001-of-00002.gguf", "");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(Paths(*r), (std::vector<std::string>{"big-Q8_0-00001-of-00002.gguf", "big-Q8_0-00002-of-00002.gguf"}));
  EXPECT_EQ(SplitPartOf("big-Q8_0-00002-of-00002.gguf").index, 2);
  EXPECT_EQ(SplitPartOf("tiny.gguf").count, 0);
  r = ChooseFiles(Repo(), "org/tiny", "mmproj-tiny-f16.gguf", "");
  ASSERT_TRUE(r.ok());
  // Alone in a repository besides an mmproj, a GGUF needs no tag.
  r = ChooseFiles({{"m.gguf", 1, "x"}, {"mmproj-m.gguf", 1, "y"}}, "org/m", "", "");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(Paths(*r), std::vector<std::string>{"m.gguf"});
  EXPECT_EQ(ModelNameForFile("sub/big-Q8_0-00001-of-00002.gguf"), "big-Q8_0");
  EXPECT_EQ(ModelNameForFile("tiny model+1.gguf"), "tiny-model-1");
}

TEST(HfCacheTest, SnapshotLinksPointIntoBlobsAndScanFindsThem) {
  char tmpl[] = "/tmp/mw-hfcache-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const fs::path root = tmpl;
  EXPECT_EQ(RepoDirName("org/name"), "models--org--name");
  EXPECT_EQ(HfPathOfRepoDir("models--org--name"), "org/name");
  EXPECT_EQ(HfPathOfRepoDir("models--x"), "");
  fs::create_directories(BlobPath(root, "org/name", "abc").parent_path());
  std::ofstream(BlobPath(root, "org/name", "abc")) << "GGUF";
  ASSERT_TRUE(LinkSnapshot(root, "org/name", "c0ffee", "m.Q4_0.gguf", "abc").ok());
  const fs::path link = SnapshotPath(root, "org/name", "c0ffee", "m.Q4_0.gguf");
  EXPECT_EQ(fs::read_symlink(link), fs::path("../../blobs/abc"));
  EXPECT_EQ(FindCachedFile(root, "org/name", "m.Q4_0.gguf"), link);
  EXPECT_EQ(CachedFiles(root, "org/name"), std::vector<std::string>{"m.Q4_0.gguf"});
  std::ifstream ref(root / "models--org--name" / "refs" / "main");
  std::string commit;
  std::getline(ref, commit);
  EXPECT_EQ(commit, "c0ffee");
  fs::create_directories(root / "sub");
  std::ofstream(root / "sub" / "plain.gguf") << "GGUF";
  std::ofstream(root / "mmproj-x.gguf") << "GGUF";
  auto found = FindGgufFiles(root);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].relative, "models--org--name/snapshots/c0ffee/m.Q4_0.gguf");
  EXPECT_EQ(found[0].hf_path, "org/name");
  EXPECT_EQ(found[1].relative, "sub/plain.gguf");
  EXPECT_EQ(found[1].hf_path, "");
  fs::remove_all(root);
}

}  // namespace
}  // namespace mw::hub
