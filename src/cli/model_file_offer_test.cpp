#include "cli/model_file_offer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace mw::cli {
namespace {

namespace fs = std::filesystem;

TEST(ModelFileOfferTest, ReadsTheLocationOfTheServersRefusal) {
  // The sentence of app/model_paths.cpp ResolveModelFile.
  const std::string refusal =
      "file_path '/tmp/nu/tiny.gguf' is outside the model location /srv/models (symlinks are resolved; model files "
      "must lie inside a configured location)";
  EXPECT_EQ(LocationOfOutsideRefusal(refusal), "/srv/models");
  EXPECT_FALSE(LocationOfOutsideRefusal("file_path must not contain '..'").has_value());
  const std::string advice = OutsideAdvice("tiny", "/tmp/nu/tiny.gguf", "/srv/models");
  EXPECT_NE(advice.find("modelwarden models add tiny --file /tmp/nu/tiny.gguf --copy"), std::string::npos) << advice;
  EXPECT_NE(advice.find("--link"), std::string::npos);
  EXPECT_NE(advice.find("[locations]\n  mine = \"/tmp/nu\""), std::string::npos) << advice;
}

TEST(ModelFileOfferTest, RelativeToTheCurrentDirectoryAndPlacedByCopyOrLink) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("model_file_offer_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "here");
  fs::create_directories(dir / "loc");
  std::ofstream(dir / "here" / "m.gguf") << "GGUF";
  const fs::path before = fs::current_path();
  fs::current_path(dir / "here");
  EXPECT_EQ(FileArgument("m.gguf"), (dir / "here" / "m.gguf").string());
  EXPECT_EQ(FileArgument("other.gguf"), "other.gguf");  // not here: the server's location decides
  fs::current_path(before);

  auto copied = PlaceInLocation((dir / "here" / "m.gguf").string(), (dir / "loc").string(), /*link=*/false);
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(*copied, "m.gguf");
  EXPECT_TRUE(fs::is_regular_file(dir / "loc" / "m.gguf"));
  EXPECT_EQ(PlaceInLocation((dir / "here" / "m.gguf").string(), (dir / "loc").string(), true).status().code(),
            StatusCode::kAlreadyExists);
  fs::remove(dir / "loc" / "m.gguf");
  auto linked = PlaceInLocation((dir / "here" / "m.gguf").string(), (dir / "loc").string(), /*link=*/true);
  ASSERT_TRUE(linked.ok()) << linked.status().ToString();
  EXPECT_EQ(fs::hard_link_count(dir / "here" / "m.gguf"), 2u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace mw::cli
