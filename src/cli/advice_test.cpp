#include "cli/advice.h"

#include <gtest/gtest.h>

namespace mw::cli {
namespace {

// The server's own sentences (src/app) as they reach the CLI.
TEST(CliAdviceTest, ServerAdviceBecomesCommands) {
  const std::string refusal =
      "model 'fake' is incompatible with this machine: bad. Load it with force_load=true to try anyway.";
  EXPECT_EQ(InCliWords(refusal, "fake"),
            "model 'fake' is incompatible with this machine: bad. Load it anyway with `modelwarden load fake --force`.");
  const std::string inference = "fix the cause, or load it with POST /api/orchestrate/load and force_load=true, or set its status";
  EXPECT_EQ(InCliWords(inference, "half"),
            "fix the cause, or load it with `modelwarden load half --force`, or set its status with "
            "`modelwarden models set half --status unknown`");
  EXPECT_EQ(InCliWords("No n_ctx makes it fit; load it with force_load=true to try anyway.", "big"),
            "No n_ctx makes it fit; load it anyway with `modelwarden load big --force`.");
  EXPECT_EQ(InCliWords("set \"embeddings\": true in its load_config (PATCH /api/models/tiny/config); it is", "tiny"),
            "set \"embeddings\": true in its load_config (`modelwarden models set tiny --load-config '{...}'`); it is");
  EXPECT_EQ(InCliWords("looked for x/snapshots/*/*.gguf); give file_path", "x"),
            "looked for x/snapshots/*/*.gguf); give --file PATH");
  const std::string stale =
      "model 'half' was refused: The model file is bad: x. Its verdict is stale (model file changed): retest it with "
      "POST /api/models/half/retest. Load it with force_load=true to try anyway.";
  EXPECT_EQ(InCliWords(stale, "half"),
            "model 'half' was refused: The model file is bad: x. Its verdict is stale (model file changed): retest it "
            "with `modelwarden retest half`. Load it anyway with `modelwarden load half --force`.");
  EXPECT_EQ(InCliWords("or POST /api/environment/reset.", "m"), "or `modelwarden environment reset`.");
  EXPECT_EQ(InCliWords("file_path '/tmp/x.gguf' is outside the model location /m (symlinks", "m"),
            "--file '/tmp/x.gguf' is outside the model location /m (symlinks");
  EXPECT_EQ(InCliWords("Retry later, unload a model (POST /api/orchestrate/unload), or", "m"),
            "Retry later, unload a model (`modelwarden unload NAME`), or");
}

TEST(CliAdviceTest, NoApiWordsAreLeft) {
  for (const char* message : {"force_load=true", "POST /api/orchestrate/load then force_load=true",
                              "(PATCH /api/models/a.b-c/config)", "POST /api/orchestrate/unload",
                              "POST /api/models/m/retest", "POST /api/environment/reset"}) {
    const std::string cli = InCliWords(message, "m");
    EXPECT_EQ(cli.find("force_load="), std::string::npos) << cli;
    EXPECT_EQ(cli.find("POST /api"), std::string::npos) << cli;
    EXPECT_EQ(cli.find("PATCH /api"), std::string::npos) << cli;
  }
  EXPECT_EQ(InCliWords("nothing to change", "m"), "nothing to change");
}

}  // namespace
}  // namespace mw::cli
