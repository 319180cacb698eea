// Fit before load (SPEC §12) against the real server and real llama.cpp
// loads: the estimate in GET /api/models/{name}, the engine's memory beside
// it after a load, and the 507 refusal that starts nothing.
#include <gtest/gtest.h>

#include <iostream>

#include "harness.h"

namespace mw::itest {
namespace {

class FitTest : public ::testing::Test {
 protected:
  std::filesystem::path data() const { return dir_.path() / "data"; }
  TempDir dir_;
};

json Model(Server& s, const std::string& name) { return s.Call("GET", "/api/models/" + name).body; }

// make-test-model's default shape: 2 layers, embedding 64, 4 heads of 16
// (KV heads 4), f16 KV cache: 2 * (128 + 128) = 512 bytes per token.
TEST_F(FitTest, EstimateShownBeforeAndMemoryUsedAfterALoad) {
  ASSERT_TRUE(MakeTestModel(data() / "models" / "tiny.gguf"));
  Server server(data());
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(server.Call("POST", "/api/models",
                        json{{"model_name", "tiny"}, {"file_path", "tiny.gguf"}, {"load_config", {{"n_ctx", 512}}}})
                .status,
            201);
  json fit = Model(server, "tiny")["fit"];
  ASSERT_TRUE(fit.is_object()) << fit.dump();
  EXPECT_EQ(fit["n_ctx"], 512);
  EXPECT_EQ(fit["breakdown"]["kv_cache"], 512 * 512);
  EXPECT_GT(fit["breakdown"]["weights"].get<int64_t>(), 0);
  EXPECT_GT(fit["breakdown"]["compute"].get<int64_t>(), 0);
  EXPECT_EQ(fit["estimate_bytes"].get<int64_t>(), fit["breakdown"]["weights"].get<int64_t>() +
                                                      fit["breakdown"]["kv_cache"].get<int64_t>() +
                                                      fit["breakdown"]["compute"].get<int64_t>());
  ASSERT_FALSE(fit["per_device"].empty());
  EXPECT_FALSE(fit["per_device"][0]["device"].get<std::string>().empty());
  EXPECT_GT(fit["per_device"][0]["free_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(fit["fits"], true);
  EXPECT_TRUE(fit["reason"].is_null());
  EXPECT_TRUE(fit["memory_used"].is_null());  // not loaded
  ProcessResult shown = server.Cli({"models", "show", "tiny"});
  EXPECT_NE(shown.out.find("estimated for n_ctx 512, fits"), std::string::npos) << shown.out;

  HttpReply r = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"tiny"})");
  ASSERT_EQ(r.status, 200) << r.raw;
  fit = Model(server, "tiny")["fit"];
  ASSERT_TRUE(fit["memory_used"].is_number()) << fit.dump();
  EXPECT_GT(fit["memory_used"].get<int64_t>(), 0);
  std::cout << "estimate_bytes " << fit["estimate_bytes"] << " memory_used " << fit["memory_used"] << "\n";
  // The list stays light: no estimate there.
  EXPECT_FALSE(server.Call("GET", "/api/models").body["models"][0].contains("fit"));
}

// 128 layers: the KV cache of n_ctx 16777216 is 128 * 256 * 2^24 bytes = 512 GiB.
TEST_F(FitTest, ALoadBeyondFreeMemoryIsRefusedBeforeAnyAttempt) {
  ASSERT_TRUE(MakeTestModel(data() / "models" / "deep.gguf", {"--layers", "128"}));
  Server server(data());
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(server.Call("POST", "/api/models",
                        json{{"model_name", "deep"}, {"file_path", "deep.gguf"}, {"load_config", {{"n_ctx", 16777216}}}})
                .status,
            201);
  HttpReply r = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"deep"})");
  ASSERT_EQ(r.status, 507) << r.raw;
  EXPECT_EQ(r.body["error"]["code"], "insufficient_memory");
  const std::string message = r.body["error"]["message"];
  EXPECT_NE(message.find("needs "), std::string::npos) << message;
  EXPECT_NE(message.find(" is free"), std::string::npos) << message;
  EXPECT_NE(message.find("would fit with load_config n_ctx "), std::string::npos) << message;
  json fit = r.body["error"]["fit"];
  EXPECT_EQ(fit["fits"], false);
  EXPECT_EQ(fit["breakdown"]["kv_cache"], int64_t{128} * 256 * 16777216);
  ASSERT_TRUE(fit["largest_fitting_n_ctx"].is_number()) << fit.dump();
  EXPECT_LT(fit["largest_fitting_n_ctx"].get<int64_t>(), 16777216);
  EXPECT_EQ(fit["largest_fitting_n_ctx"].get<int64_t>() % 256, 0);

  json m = Model(server, "deep");
  EXPECT_TRUE(m["attempts"].empty()) << m.dump();
  EXPECT_EQ(m["compatibility_status"], "unknown");
  EXPECT_EQ(m["total_loads"], 0);
  EXPECT_EQ(m["total_failures"], 0);
  EXPECT_EQ(m["load_state"], "idle");
  EXPECT_EQ(m["fit"]["fits"], false);
  EXPECT_FALSE(m["fit"]["reason"].get<std::string>().empty());
  // The CLI reports the refusal as a failure.
  ProcessResult cli = server.Cli({"load", "deep"});
  EXPECT_EQ(cli.exit_code, 1);
  EXPECT_NE(cli.err.find("[insufficient_memory]"), std::string::npos) << cli.err;
  EXPECT_TRUE(Model(server, "deep")["attempts"].empty());
}

// The margin is the server's option; force_load skips the check.
TEST_F(FitTest, MemoryMarginCountsAndForceLoadSkipsTheCheck) {
  ASSERT_TRUE(MakeTestModel(data() / "models" / "tiny.gguf"));
  Server server(data(), ConfigArgs(dir_.path(), "memory_margin_mib = 1048576\n"));  // keep 1 TiB free
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(server.Call("POST", "/api/models", json{{"model_name", "tiny"}, {"file_path", "tiny.gguf"}}).status, 201);
  HttpReply refused = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"tiny"})");
  ASSERT_EQ(refused.status, 507) << refused.raw;
  EXPECT_NE(refused.body["error"]["message"].get<std::string>().find("1048576 MiB is kept as margin"), std::string::npos)
      << refused.raw;
  EXPECT_TRUE(Model(server, "tiny")["attempts"].empty());

  HttpReply forced = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"tiny","force_load":true})");
  ASSERT_EQ(forced.status, 200) << forced.raw;
  json m = Model(server, "tiny");
  ASSERT_EQ(m["attempts"].size(), 1u);
  EXPECT_EQ(m["attempts"][0]["outcome"], "success");
  EXPECT_EQ(m["loaded"], true);
}

}  // namespace
}  // namespace mw::itest
