// GET /metrics against the real server with real loads: the text passes
// Debian's `promtool check metrics`, and the counts move with the loads.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "harness.h"
#include "require.h"

namespace mw::itest {
namespace {

namespace fs = std::filesystem;

// The value of the sample whose line starts with `series` ("name{labels}"), or -1.
double SampleValue(const std::string& text, const std::string& series) {
  size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

std::string Promtool() {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"}) {
    fs::path p = fs::path(dir) / "promtool";
    if (fs::exists(p)) return p.string();
  }
  return "";
}

// Runs `promtool check metrics` on the text; returns its output and sets *ok.
std::string PromtoolCheck(const std::string& promtool, const fs::path& dir, const std::string& text, bool* ok) {
  fs::path file = dir / "metrics.txt";
  std::ofstream(file) << text;
  ProcessResult r = RunProcess({"/bin/sh", "-c", "'" + promtool + "' check metrics < '" + file.string() + "' 2>&1"});
  *ok = r.exit_code == 0;
  return r.out + r.err;
}

class MetricsEndpointTest : public ::testing::Test {
 protected:
  TempDir dir_;
  fs::path data() const { return dir_.path() / "data"; }
};

TEST_F(MetricsEndpointTest, PromtoolAcceptsTheTextAndLoadCountsMove) {
  ASSERT_TRUE(MakeTestModel(data() / "models" / "tiny.gguf"));
  // A truncated copy: a GGUF header (registration checks it), no whole tensor data.
  fs::copy_file(data() / "models" / "tiny.gguf", data() / "models" / "broken.gguf");
  fs::resize_file(data() / "models" / "broken.gguf",
                  fs::file_size(data() / "models" / "tiny.gguf") / 2);
  Server server(data());
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(server.Call("POST", "/api/models", json{{"model_name", "tiny"}, {"file_path", "tiny.gguf"}}).status, 201);
  ASSERT_EQ(server.Call("POST", "/api/models", json{{"model_name", "broken"}, {"file_path", "broken.gguf"}}).status,
            201);

  HttpReply before = server.Call("GET", "/metrics");
  ASSERT_EQ(before.status, 200) << before.raw;
  EXPECT_EQ(SampleValue(before.raw, "modelwarden_models{status=\"unknown\"}"), 2);
  EXPECT_EQ(SampleValue(before.raw, "modelwarden_loaded_models"), 0);
  EXPECT_EQ(SampleValue(before.raw, "modelwarden_load_duration_seconds_count"), 0);
  EXPECT_EQ(SampleValue(before.raw, "modelwarden_environment_failing"), 0);
  EXPECT_EQ(SampleValue(before.raw, "modelwarden_queue_depth"), 0);
  EXPECT_EQ(before.raw.find("modelwarden_load_attempts_total{"), std::string::npos);

  ASSERT_EQ(server.Call("POST", "/api/orchestrate/load", R"({"model_name":"tiny"})").status, 200);
  HttpReply failed = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"broken"})");
  ASSERT_EQ(failed.status, 422) << failed.raw;
  const std::string category = failed.body["error"]["classification"].value("category", "");
  ASSERT_FALSE(category.empty()) << failed.raw;

  HttpReply after = server.Call("GET", "/metrics");
  ASSERT_EQ(after.status, 200);
  EXPECT_EQ(SampleValue(after.raw, "modelwarden_load_attempts_total{outcome=\"success\",category=\"none\"}"), 1)
      << after.raw;
  const std::string outcome = failed.body["error"]["classification"].value("outcome", "");
  EXPECT_EQ(SampleValue(after.raw, "modelwarden_load_attempts_total{outcome=\"" + outcome + "\",category=\"" +
                                       category + "\"}"),
            1)
      << after.raw;
  EXPECT_EQ(SampleValue(after.raw, "modelwarden_load_duration_seconds_count"), 2);
  EXPECT_EQ(SampleValue(after.raw, "modelwarden_load_duration_seconds_bucket{le=\"+Inf\"}"), 2);
  EXPECT_GT(SampleValue(after.raw, "modelwarden_load_duration_seconds_sum"), 0);
  EXPECT_EQ(SampleValue(after.raw, "modelwarden_loaded_models"), 1);
  EXPECT_EQ(SampleValue(after.raw, "modelwarden_models{status=\"compatible\"}"), 1);
  EXPECT_EQ(SampleValue(after.raw, "modelwarden_models{status=\"incompatible\"}"), 1);
  EXPECT_EQ(SampleValue(after.raw, "modelwarden_models{status=\"unknown\"}"), 0);

  const std::string promtool = Promtool();
  MW_REQUIRE(!promtool.empty(),
             "promtool (Debian package 'prometheus'; scripts/bootstrap installs it): "
             "the text was not checked by promtool");
  bool ok = false;
  std::string out = PromtoolCheck(promtool, dir_.path(), before.raw, &ok);
  EXPECT_TRUE(ok) << out << "\n--- text:\n" << before.raw;
  out = PromtoolCheck(promtool, dir_.path(), after.raw, &ok);
  EXPECT_TRUE(ok) << out << "\n--- text:\n" << after.raw;
  // And promtool does fail on a broken text (the check is real).
  out = PromtoolCheck(promtool, dir_.path(), "# TYPE x counter\nx{ 1\n", &ok);
  EXPECT_FALSE(ok) << out;
}

TEST_F(MetricsEndpointTest, TheApiKeyProtectsMetrics) {
  Server server(data(), {}, {{"MODELWARDEN_API_KEY", "sekret-key"}});
  ASSERT_TRUE(server.started()) << server.startup_output();
  HttpReply anonymous = server.Call("GET", "/metrics");
  EXPECT_EQ(anonymous.status, 401) << anonymous.raw;
  HttpReply keyed = server.Call("GET", "/metrics", "", "sekret-key");
  EXPECT_EQ(keyed.status, 200);
  EXPECT_NE(keyed.raw.find("# TYPE modelwarden_models gauge"), std::string::npos);
}

}  // namespace
}  // namespace mw::itest
