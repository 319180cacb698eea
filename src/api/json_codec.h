// api/json_codec.h: JSON <-> the native structs of model_api.h, at the edge.
//
// Parsers are strict: a body must be a JSON object, each field must have its
// documented type, and unknown fields are rejected (a typo must not be
// silently ignored). They return kInvalidArgument with a message naming the
// field. Encoders never fail. No function throws; all are thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "api/model_api.h"
#include "common/status.h"

namespace mw::api {

struct LoadRequest {
  std::string model_name;
  bool force = false;
};

[[nodiscard]] Result<RegisterRequest> ParseRegisterRequest(std::string_view body);
[[nodiscard]] Result<ConfigPatch> ParseConfigPatch(std::string_view body);
// {"model_name", "force_load"?} (unload ignores force_load's absence).
[[nodiscard]] Result<LoadRequest> ParseLoadRequest(std::string_view body, bool allow_force);

// with_attempts: the single-model answer (GET /api/models/{name}): "attempts"
// and "verdicts" too; the list and every other answer have neither.
std::string ModelToJson(const ModelView& model, bool with_attempts);
// PATCH /api/models/{name}/config's answer: the model, and "warning" when
// `warning` is not empty (SPEC §18: a load_config change on a loaded model).
std::string PatchedModelToJson(const ModelView& model, const std::string& warning);
std::string ModelListToJson(const std::vector<ModelView>& models);
std::string StatusToJson(const ServerStatus& status);
// GET /api/nodes: {"this_node", "nodes": [{..., "lease": {...}}], "live"} (SPEC §14).
std::string NodesToJson(const NodeList& list);
// {"environment": {...}} (the answer of POST /api/environment/reset).
std::string EnvironmentToJson(const EnvironmentView& environment);
std::string CountsToJson(const std::map<std::string, int64_t>& counts);
std::string DeletedToJson(const std::string& name);  // {"deleted":true,"model_name":...}
std::string UnloadedToJson(const ModelView& model);  // {"unloaded":true,"model":{...}}
// The 200/409/422 body of POST /api/orchestrate/load.
std::string LoadResultToJson(const LoadResult& result, std::string_view error_code);
// {"changed": {...}, "first_failure": {classification..., "attempt_id"}} (SPEC §11 auto_fix), compact;
// `brief`: first_failure only {category, summary, attempt_id} (the /v1 header).
std::string AutoFixJson(const AutoFix& fix, bool brief);
// {"error": {"code", "message", ...extra fields merged in}}; `extra_json` is
// a JSON object text or empty.
std::string ErrorToJson(std::string_view code, std::string_view message, std::string_view extra_json = {});

}  // namespace mw::api
