#include "web/web_assets.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <fstream>
#include <sstream>
#include <string>

namespace mw::web {
namespace {

// The web/ folder is compiled in (MW_WEB_SOURCE_DIR), so the test does not
// depend on the environment CTest passes.
std::string ReadSource(const std::string& name) {
  std::ifstream in(std::string(MW_WEB_SOURCE_DIR) + "/" + name, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(WebAssets, RootIsThePage) {
  const WebAsset* root = FindWebAsset("/");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root, FindWebAsset("/index.html"));
  EXPECT_EQ(root->content_type, "text/html; charset=utf-8");
  EXPECT_NE(root->body.find("<!doctype html>"), std::string_view::npos);
}

TEST(WebAssets, BodiesAreTheSourceBytes) {
  for (const char* name : {"index.html", "app.js", "core.js", "cards.js", "events.js", "loads.js", "details.js",
                           "register.js", "chat.js", "style.css"}) {
    const WebAsset* asset = FindWebAsset(std::string("/") + name);
    ASSERT_NE(asset, nullptr) << name;
    const std::string source = ReadSource(name);
    ASSERT_FALSE(source.empty()) << "cannot read web/" << name;
    EXPECT_TRUE(asset->body == source) << name << " differs from its source";
  }
}

TEST(WebAssets, ContentTypes) {
  EXPECT_EQ(FindWebAsset("/app.js")->content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(FindWebAsset("/style.css")->content_type, "text/css; charset=utf-8");
}

TEST(WebAssets, UnknownPathsAreNotFound) {
  EXPECT_EQ(FindWebAsset("/nope.js"), nullptr);
  EXPECT_EQ(FindWebAsset("/../CMakeLists.txt"), nullptr);
  EXPECT_EQ(FindWebAsset("/app.js?x=1"), nullptr);
  EXPECT_EQ(FindWebAsset("/api/models"), nullptr);
}

TEST(WebAssets, AllListsEveryAsset) {
  std::size_t count = 0;
  const WebAsset* all = AllWebAssets(&count);
  ASSERT_EQ(count, 11u);
  for (std::size_t i = 0; i < count; ++i) {
    EXPECT_EQ(FindWebAsset(all[i].path), &all[i]);
  }
}

}  // namespace
}  // namespace mw::web
