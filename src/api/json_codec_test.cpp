#include "api/json_codec.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "api/errors.h"

namespace mw::api {
namespace {

using nlohmann::json;

TEST(JsonCodecTest, RegisterRequestStrictTypes) {
  auto ok = ParseRegisterRequest(
      R"({"model_name":"m","hf_path":"org/x","file_path":"a.gguf","engine":"llama.cpp","load_config":{"n_ctx":8}})");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->model_name, "m");
  EXPECT_EQ(*ok->file_path, "a.gguf");
  EXPECT_EQ(json::parse(*ok->load_config_json), json({{"n_ctx", 8}}));

  const char* bad[] = {
      "",
      "not json",
      "[1,2]",
      "{}",
      R"({"model_name":5})",
      R"({"model_name":"m","engine":1})",
      R"({"model_name":"m","load_config":[1]})",
      R"({"model_name":"m","load_config":"[1]"})",
      R"({"model_name":"m","load_config":"{bad"})",
      R"({"model_name":"m","colour":"red"})",
  };
  for (const char* body : bad) {
    auto r = ParseRegisterRequest(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << body;
  }
}

TEST(JsonCodecTest, ConfigPatchLoadConfigAsString) {
  auto p = ParseConfigPatch(R"({"load_config":"{\"flash_attn\":false}"})");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(json::parse(*p->load_config_json), json({{"flash_attn", false}}));
  EXPECT_FALSE(p->compatibility_status);
  EXPECT_FALSE(ParseConfigPatch("{}").ok());
  EXPECT_FALSE(ParseConfigPatch(R"({"compatibility_status":1})").ok());
}

TEST(JsonCodecTest, LoadRequest) {
  auto r = ParseLoadRequest(R"({"model_name":"m","force_load":true})", true);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->force);
  EXPECT_FALSE(ParseLoadRequest(R"({"model_name":"m","force_load":"yes"})", true).ok());
  EXPECT_FALSE(ParseLoadRequest(R"({"model_name":"m","force_load":true})", false).ok());
  EXPECT_FALSE(ParseLoadRequest(R"({"force_load":true})", true).ok());
}

TEST(JsonCodecTest, ModelJsonHasContractFields) {
  ModelView m;
  m.model_name = "m";
  m.load_config_json = R"({"a":1})";
  m.load_state = LoadState::kLoading;
  m.load_progress = 0.5;
  m.attempts.push_back(AttemptView{});
  json j = json::parse(ModelToJson(m, true));
  for (const char* key : {"model_name", "hf_path", "cache_location", "file_path", "engine", "compatibility_status",
                          "compatibility_notes", "load_config", "total_loads", "total_failures", "created_at",
                          "updated_at", "last_loaded_at", "last_failed_at", "loaded", "load_state", "load_progress",
                          "last_error", "attempts"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["load_config"]["a"], 1);
  EXPECT_EQ(j["load_state"], "loading");
  EXPECT_FALSE(json::parse(ModelToJson(m, false)).contains("attempts"));
}

// SPEC §14: the single-model answer has "verdicts" (even empty); the list does not.
TEST(JsonCodecTest, VerdictsOnlyWithTheSingleModel) {
  ModelView m;
  m.model_name = "m";
  json empty = json::parse(ModelToJson(m, true));
  ASSERT_TRUE(empty.contains("verdicts"));
  EXPECT_EQ(empty["verdicts"], json::array());
  ClassVerdictView v;
  v.environment_class = "cpu";
  v.status = "unknown";
  v.this_node_class = true;
  m.verdicts.push_back(v);
  json j = json::parse(ModelToJson(m, true));
  ASSERT_EQ(j["verdicts"].size(), 1u);
  for (const char* key : {"environment_class", "status", "notes", "nodes", "total_loads", "total_failures",
                          "this_node_class"}) {
    EXPECT_TRUE(j["verdicts"][0].contains(key)) << key;
  }
  EXPECT_EQ(j["verdicts"][0]["nodes"], json::array());
  EXPECT_FALSE(json::parse(ModelToJson(m, false)).contains("verdicts"));
  EXPECT_FALSE(json::parse(ModelListToJson({m}))["models"][0].contains("verdicts"));
}

TEST(JsonCodecTest, StatusHasTheNode) {
  ServerStatus s;
  s.node.node_id = "n1";
  s.node.environment_class = "cpu";
  s.node.nodes_live = 3;
  json j = json::parse(StatusToJson(s));
  EXPECT_EQ(j["node"], json({{"node_id", "n1"}, {"environment_class", "cpu"}, {"nodes_live", 3}}));
}

TEST(JsonCodecTest, LoadResultBodies) {
  LoadResult r;
  r.kind = LoadResult::Kind::kIncompatible;
  r.notes = "Hardware incompatibility detected: x";
  r.message = "incompatible";
  json j = json::parse(LoadResultToJson(r, "model_incompatible"));
  EXPECT_EQ(j["error"]["code"], "model_incompatible");
  EXPECT_EQ(j["error"]["notes"], r.notes);
  r.kind = LoadResult::Kind::kFailed;
  r.classification.category = "assertion";
  j = json::parse(LoadResultToJson(r, "load_failed"));
  EXPECT_EQ(j["error"]["classification"]["category"], "assertion");
  r.kind = LoadResult::Kind::kLoaded;
  r.warning = "degraded";
  j = json::parse(LoadResultToJson(r, ""));
  EXPECT_EQ(j["warning"], "degraded");
  EXPECT_EQ(j["loaded"], true);
  EXPECT_FALSE(j["model"].contains("fit"));  // only when estimated

  r.kind = LoadResult::Kind::kInsufficientMemory;
  FitView fit;
  fit.estimate_bytes = 300;
  fit.n_ctx = 512;
  fit.per_device = {{"CPU", 300, 100}};
  fit.weights = 100, fit.kv_cache = 150, fit.compute = 50;
  fit.fits = false;
  fit.reason = "needs 1 MiB on CPU";
  fit.largest_fitting_ctx = 256;
  r.model.fit = fit;
  j = json::parse(LoadResultToJson(r, "insufficient_memory"));
  EXPECT_EQ(j["error"]["code"], "insufficient_memory");
  EXPECT_EQ(j["error"]["fit"],
            json::parse(R"({"estimate_bytes":300,"n_ctx":512,"per_device":[{"device":"CPU","bytes":300,"free_bytes":100}],
                "breakdown":{"weights":100,"kv_cache":150,"compute":50},"fits":false,"reason":"needs 1 MiB on CPU",
                "largest_fitting_n_ctx":256,"memory_used":null})"));
  EXPECT_EQ(j["model"]["fit"], j["error"]["fit"]);
  EXPECT_EQ(DescribeError(ErrorKind::kInsufficientMemory).http_status, 507);
  EXPECT_EQ(DescribeError(ErrorKind::kInsufficientMemory).code, "insufficient_memory");
}

// Residency (SPEC §12): the cap reached with every loaded model busy, and the
// fields GET /api/status adds to each loaded model and to the server.
TEST(JsonCodecTest, ModelsBusyAndResidency) {
  LoadResult r;
  r.kind = LoadResult::Kind::kModelsBusy;
  r.message = "cannot load 'b' now";
  r.busy_models = {"a"};
  r.model.model_name = "b";
  json j = json::parse(LoadResultToJson(r, "models_busy"));
  EXPECT_EQ(j["error"]["code"], "models_busy");
  EXPECT_EQ(j["error"]["busy_models"], json::array({"a"}));
  EXPECT_FALSE(j["model"].contains("last_used_at"));  // residency only in the status
  EXPECT_EQ(DescribeError(ErrorKind::kModelsBusy).http_status, 503);
  EXPECT_EQ(DescribeError(ErrorKind::kModelsBusy).code, "models_busy");
  EXPECT_EQ(DescribeError(ErrorKind::kEngineHung).http_status, 502);  // SPEC §19
  EXPECT_EQ(DescribeError(ErrorKind::kEngineHung).code, "engine_hung");
  EXPECT_EQ(DescribeError(ErrorKind::kRequestTimeout).http_status, 504);
  EXPECT_EQ(DescribeError(ErrorKind::kRequestTimeout).code, "request_timeout");

  ServerStatus status;
  ModelView loaded;
  loaded.model_name = "a";
  loaded.residency = ResidencyView{1234, "2026-01-01T00:00:00.000Z", std::nullopt, 2};
  status.loaded_models = {loaded};
  status.memory = {1234, 99999};
  status.max_loaded_models = 2;
  j = json::parse(StatusToJson(status));
  const json& m = j["loaded_models"][0];
  EXPECT_EQ(m["memory_used"], 1234);
  EXPECT_EQ(m["last_used_at"], "2026-01-01T00:00:00.000Z");
  EXPECT_TRUE(m["keep_alive_until"].is_null());
  EXPECT_EQ(m["requests_in_flight"], 2);
  EXPECT_EQ(j["memory"], json::parse(R"({"in_use_bytes":1234,"free_bytes":99999})"));
  EXPECT_EQ(j["max_loaded_models"], 2);
}

TEST(ErrorsTest, TableIsStable) {
  EXPECT_EQ(DescribeError(ErrorKind::kInvalidRequest).http_status, 400);
  EXPECT_EQ(DescribeError(ErrorKind::kInvalidModel).http_status, 400);
  EXPECT_EQ(DescribeError(ErrorKind::kInvalidModel).code, "invalid_model");
  EXPECT_EQ(DescribeError(ErrorKind::kPayloadTooLarge).code, "payload_too_large");
  EXPECT_EQ(DescribeError(ErrorKind::kModelIncompatible).http_status, 409);
  EXPECT_EQ(DescribeError(ErrorKind::kLoadFailed).http_status, 422);
  EXPECT_EQ(ErrorKindForStatus(StatusCode::kNotFound), ErrorKind::kModelNotFound);
  EXPECT_EQ(ErrorKindForStatus(StatusCode::kAlreadyExists), ErrorKind::kModelExists);
  EXPECT_EQ(DescribeError(ErrorKindForStatus(StatusCode::kInternal)).http_status, 500);
  EXPECT_EQ(ErrorToJson("x", "y"), R"({"error":{"code":"x","message":"y"}})");
}

// Storage failures are the server's, not the caller's: 5xx with codes that
// say which (the registry maps SQLite's errors onto these StatusCodes).
TEST(ErrorsTest, StorageErrorsAreServerSide) {
  ErrorInfo full = DescribeError(ErrorKindForStatus(StatusCode::kResourceExhausted));
  EXPECT_EQ(full.http_status, 507);
  EXPECT_EQ(full.code, "insufficient_storage");
  ErrorInfo read_only = DescribeError(ErrorKindForStatus(StatusCode::kPermissionDenied));
  EXPECT_EQ(read_only.http_status, 503);
  EXPECT_EQ(read_only.code, "storage_read_only");
  ErrorInfo io = DescribeError(ErrorKindForStatus(StatusCode::kUnavailable));
  EXPECT_EQ(io.http_status, 503);
  EXPECT_EQ(io.code, "unavailable");
}

}  // namespace
}  // namespace mw::api
