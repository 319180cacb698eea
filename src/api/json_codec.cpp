#include "api/json_codec.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "api/errors.h"
#include "api/json_limits.h"

namespace mw::api {
namespace {

using nlohmann::json;

// No /api request nests deeper than this (see api/json_limits.h).
constexpr int kMaxNesting = 64;

json ParseWithDepthLimit(std::string_view text, bool* too_deep) {
  return ParseJsonWithDepthLimit(text, kMaxNesting, too_deep);
}

// nlohmann throws on malformed input; this is the edge where that becomes a Status.
Result<json> ParseObject(std::string_view body) {
  bool too_deep = false;
  json value = ParseWithDepthLimit(body, &too_deep);
  if (too_deep) return InvalidArgumentError("request body is nested too deeply");
  if (value.is_discarded()) return InvalidArgumentError("request body is not valid JSON");
  if (!value.is_object()) return InvalidArgumentError("request body must be a JSON object");
  return value;
}

Status CheckKnownFields(const json& object, std::initializer_list<std::string_view> known) {
  for (const auto& [key, unused] : object.items()) {
    bool ok = false;
    for (auto k : known) ok = ok || key == k;
    if (!ok) {
      std::string list;
      for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return InvalidArgumentError("unknown field '" + Echo(key) + "' (known fields: " + list + ")");
    }
  }
  return Status::Ok();
}

// A string field; null or absent gives nullopt.
Result<std::optional<std::string>> OptString(const json& object, const char* field) {
  auto it = object.find(field);
  if (it == object.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return InvalidArgumentError(std::string("field '") + field + "' must be a string");
  return std::optional<std::string>(it->get<std::string>());
}

// load_config: a JSON object, or a string holding one. Returns its compact text.
Result<std::optional<std::string>> OptLoadConfig(const json& object) {
  auto it = object.find("load_config");
  if (it == object.end() || it->is_null()) return std::optional<std::string>();
  if (it->is_object()) return std::optional<std::string>(it->dump());
  if (it->is_string()) {
    const std::string& text = it->get_ref<const std::string&>();
    if (text.empty()) return std::optional<std::string>("{}");
    bool too_deep = false;
    json inner = ParseWithDepthLimit(text, &too_deep);
    if (too_deep) return InvalidArgumentError("load_config string is nested too deeply");
    if (inner.is_discarded()) return InvalidArgumentError("load_config string is not valid JSON");
    if (!inner.is_object()) return InvalidArgumentError("load_config must be a JSON object");
    return std::optional<std::string>(inner.dump());
  }
  return InvalidArgumentError("load_config must be a JSON object (or a string holding one)");
}

json JsonOrNull(const std::optional<std::string>& v) { return v ? json(*v) : json(nullptr); }
json JsonOrNull(const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); }

json LoadConfigObject(const std::string& text) {
  json value = json::parse(text, nullptr, false);
  return value.is_object() ? value : json::object();
}

json AttemptJson(const AttemptView& a) {
  json j;
  j["id"] = a.id;
  j["started_at"] = a.started_at;
  j["finished_at"] = JsonOrNull(a.finished_at);
  j["outcome"] = a.outcome.empty() ? json(nullptr) : json(a.outcome);
  j["forced"] = a.forced;
  j["status_before"] = a.status_before;
  j["status_after"] = a.status_after.empty() ? json(nullptr) : json(a.status_after);
  j["exit_code"] = a.exit_code ? json(*a.exit_code) : json(nullptr);
  j["signal"] = JsonOrNull(a.signal);
  j["category"] = a.category.empty() ? json(nullptr) : json(a.category);
  j["pattern_id"] = a.pattern_id.empty() ? json(nullptr) : json(a.pattern_id);
  j["summary"] = a.summary;
  j["matched_line"] = a.matched_line;
  j["log_excerpt"] = a.log_excerpt;
  j["duration_ms"] = a.duration_ms ? json(*a.duration_ms) : json(nullptr);
  return j;
}

json FitJson(const FitView& f) {
  json per_device = json::array();
  for (const auto& d : f.per_device) {
    per_device.push_back({{"device", d.device}, {"bytes", d.bytes}, {"free_bytes", d.free_bytes}});
  }
  json j{{"estimate_bytes", f.estimate_bytes},
         {"n_ctx", f.n_ctx},
         {"per_device", per_device},
         {"breakdown", {{"weights", f.weights}, {"kv_cache", f.kv_cache}, {"compute", f.compute}}},
         {"fits", f.fits}};
  j["reason"] = JsonOrNull(f.reason);
  j["largest_fitting_n_ctx"] = JsonOrNull(f.largest_fitting_ctx);
  j["memory_used"] = JsonOrNull(f.memory_used);
  return j;
}

// SPEC §14: the verdict of each environment class, this node's first.
json VerdictsJson(const std::vector<ClassVerdictView>& verdicts) {
  json list = json::array();
  for (const auto& v : verdicts) {
    json j{{"environment_class", v.environment_class}, {"status", v.status}, {"notes", JsonOrNull(v.notes)},
           {"nodes", v.nodes}, {"total_loads", v.total_loads}, {"total_failures", v.total_failures},
           {"this_node_class", v.this_node_class}};
    list.push_back(std::move(j));
  }
  return list;
}

json ModelJson(const ModelView& m, bool with_attempts) {
  json j;
  j["model_name"] = m.model_name;
  j["hf_path"] = m.hf_path;
  j["cache_location"] = m.cache_location;
  j["file_path"] = m.file_path;
  j["engine"] = m.engine;
  j["compatibility_status"] = m.compatibility_status;
  j["compatibility_notes"] = m.compatibility_notes;
  j["load_config"] = LoadConfigObject(m.load_config_json);
  j["total_loads"] = m.total_loads;
  j["total_failures"] = m.total_failures;
  j["created_at"] = m.created_at;
  j["updated_at"] = m.updated_at;
  j["last_loaded_at"] = JsonOrNull(m.last_loaded_at);
  j["last_failed_at"] = JsonOrNull(m.last_failed_at);
  j["last_hung_at"] = JsonOrNull(m.last_hung_at);  // SPEC §19
  j["loaded"] = m.loaded;
  j["load_state"] = std::string(LoadStateName(m.load_state));
  j["load_progress"] = m.load_progress ? json(*m.load_progress) : json(nullptr);
  j["last_error"] = JsonOrNull(m.last_error);
  json memory = json::array();
  for (const auto& d : m.memory) memory.push_back({{"name", d.name}, {"kind", d.kind}, {"memory_used", d.memory_used}});
  j["memory"] = memory;
  j["offloaded_layers"] = JsonOrNull(m.offloaded_layers);
  j["n_layers"] = JsonOrNull(m.n_layers);
  j["verdict_fingerprint"] = JsonOrNull(m.verdict_fingerprint);
  j["verdict_stale"] = m.verdict_stale;
  j["verdict_stale_reason"] = JsonOrNull(m.verdict_stale_reason);
  if (with_attempts) {
    json attempts = json::array();
    for (const auto& a : m.attempts) attempts.push_back(AttemptJson(a));
    j["attempts"] = attempts;
  }
  if (with_attempts) j["verdicts"] = VerdictsJson(m.verdicts);
  if (m.fit) j["fit"] = FitJson(*m.fit);
  if (m.residency) {
    j["memory_used"] = m.residency->memory_used;
    j["last_used_at"] = JsonOrNull(m.residency->last_used_at);
    j["keep_alive_until"] = JsonOrNull(m.residency->keep_alive_until);
    j["requests_in_flight"] = m.residency->requests_in_flight;
  }
  return j;
}

json EnvironmentJson(const EnvironmentView& e) {
  return json{{"fingerprint", e.fingerprint}, {"components", json(e.components)},
              {"state", e.failing ? "failing" : "ok"}, {"reason", JsonOrNull(e.reason)},
              {"since", JsonOrNull(e.since)}, {"retest_stale", e.retest_stale}};
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

std::string_view LoadStateName(LoadState state) {
  switch (state) {
    case LoadState::kIdle: return "idle";
    case LoadState::kQueued: return "queued";
    case LoadState::kLoading: return "loading";
    case LoadState::kLoaded: return "loaded";
  }
  return "idle";
}

Result<RegisterRequest> ParseRegisterRequest(std::string_view body) {
  ASSIGN_OR_RETURN(json object, ParseObject(body));
  RETURN_IF_ERROR(CheckKnownFields(object, {"model_name", "hf_path", "cache_location", "file_path", "engine",
                                            "load_config"}));
  RegisterRequest request;
  ASSIGN_OR_RETURN(auto name, OptString(object, "model_name"));
  if (!name) return InvalidArgumentError("field 'model_name' is required");
  request.model_name = *name;
  ASSIGN_OR_RETURN(auto hf_path, OptString(object, "hf_path"));
  request.hf_path = hf_path.value_or("");
  ASSIGN_OR_RETURN(auto location, OptString(object, "cache_location"));
  request.cache_location = location.value_or("");
  ASSIGN_OR_RETURN(request.file_path, OptString(object, "file_path"));
  ASSIGN_OR_RETURN(request.engine, OptString(object, "engine"));
  ASSIGN_OR_RETURN(request.load_config_json, OptLoadConfig(object));
  return request;
}

Result<ConfigPatch> ParseConfigPatch(std::string_view body) {
  ASSIGN_OR_RETURN(json object, ParseObject(body));
  RETURN_IF_ERROR(CheckKnownFields(object, {"compatibility_status", "compatibility_notes", "load_config"}));
  ConfigPatch patch;
  ASSIGN_OR_RETURN(patch.compatibility_status, OptString(object, "compatibility_status"));
  ASSIGN_OR_RETURN(patch.compatibility_notes, OptString(object, "compatibility_notes"));
  ASSIGN_OR_RETURN(patch.load_config_json, OptLoadConfig(object));
  if (!patch.compatibility_status && !patch.compatibility_notes && !patch.load_config_json) {
    return InvalidArgumentError(
        "nothing to change: give compatibility_status, compatibility_notes or load_config");
  }
  return patch;
}

Result<LoadRequest> ParseLoadRequest(std::string_view body, bool allow_force) {
  ASSIGN_OR_RETURN(json object, ParseObject(body));
  if (allow_force) {
    RETURN_IF_ERROR(CheckKnownFields(object, {"model_name", "force_load"}));
  } else {
    RETURN_IF_ERROR(CheckKnownFields(object, {"model_name"}));
  }
  LoadRequest request;
  ASSIGN_OR_RETURN(auto name, OptString(object, "model_name"));
  if (!name) return InvalidArgumentError("field 'model_name' is required");
  request.model_name = *name;
  if (auto it = object.find("force_load"); it != object.end() && !it->is_null()) {
    if (!it->is_boolean()) return InvalidArgumentError("field 'force_load' must be true or false");
    request.force = it->get<bool>();
  }
  return request;
}

std::string ModelToJson(const ModelView& model, bool with_attempts) { return Dump(ModelJson(model, with_attempts)); }

std::string PatchedModelToJson(const ModelView& model, const std::string& warning) {
  json j = ModelJson(model, false);
  if (!warning.empty()) j["warning"] = warning;
  return Dump(j);
}

std::string ModelListToJson(const std::vector<ModelView>& models) {
  json list = json::array();
  for (const auto& m : models) list.push_back(ModelJson(m, false));
  json body = json::object();
  body["models"] = std::move(list);  // moved, not deep-copied as an initializer list would
  return Dump(body);
}

std::string EnvironmentToJson(const EnvironmentView& environment) {
  return Dump(json{{"environment", EnvironmentJson(environment)}});
}

std::string CountsToJson(const std::map<std::string, int64_t>& counts) {
  return Dump(json{{"counts", json(counts)}});
}

std::string StatusToJson(const ServerStatus& status) {
  json devices = json::array();
  for (const auto& d : status.devices) {
    devices.push_back({{"name", d.name},
                       {"kind", d.kind},
                       {"memory_total", d.memory_total},
                       {"memory_free", d.memory_free},
                       {"id", d.id},
                       {"backend", d.backend},
                       {"description", d.description}});
    if (d.driver) devices.back()["driver"] = *d.driver;
  }
  json backends = json::array();
  for (const auto& b : status.backends) {
    backends.push_back({{"name", b.name}, {"state", b.state}, {"reason", b.reason}, {"devices", b.devices}});
  }
  json loaded = json::array();
  for (const auto& m : status.loaded_models) loaded.push_back(ModelJson(m, false));
  json queue = json::array();
  for (const auto& q : status.load_queue) {
    queue.push_back({{"model_name", q.model_name},
                     {"state", std::string(LoadStateName(q.state))},
                     {"progress", q.progress ? json(*q.progress) : json(nullptr)}});
  }
  json j{{"version", status.version}, {"uptime_s", status.uptime_s}, {"devices", devices},
         {"loaded_models", loaded},   {"load_queue", queue},            {"counts", json(status.counts)}};
  j["devices_error"] = status.devices_error.empty() ? json(nullptr) : json(status.devices_error);
  j["backends"] = std::move(backends);
  j["engine_presets"] = status.engine_presets;
  j["environment"] = EnvironmentJson(status.environment);
  j["memory"] = {{"in_use_bytes", status.memory.in_use}, {"free_bytes", status.memory.free}};
  j["max_loaded_models"] = status.max_loaded_models;
  j["node"] = {{"node_id", status.node.node_id},
               {"environment_class", status.node.environment_class},
               {"nodes_live", status.node.nodes_live}};
  return Dump(j);
}

std::string NodesToJson(const NodeList& list) {
  json nodes = json::array();
  for (const auto& n : list.nodes) {
    json lease{{"state", n.lease_state},
               {"live", n.live},
               {"lease_s", n.lease_s},
               {"heartbeat_at", n.heartbeat_at},
               {"heartbeat_age_s", static_cast<double>(std::max<int64_t>(n.heartbeat_age_ms, 0)) / 1000.0}};
    json j{{"node_id", n.node_id},         {"host", n.host},
           {"environment_class", n.environment_class}, {"lease", std::move(lease)},
           {"started_at", n.started_at},   {"loaded_models", n.loaded_models}};
    j["expired_by"] = JsonOrNull(n.expired_by);
    j["advertise_url"] = n.advertise_url.empty() ? json(nullptr) : json(n.advertise_url);
    nodes.push_back(std::move(j));
  }
  json body = json::object();
  body["this_node"] = list.this_node;
  body["nodes"] = std::move(nodes);
  body["live"] = list.live;
  return Dump(body);
}

namespace {

json ClassificationJson(const Classification& c) {
  json cls{{"category", c.category},        {"pattern_id", c.pattern_id}, {"summary", c.summary},
           {"matched_line", c.matched_line}, {"outcome", c.outcome},       {"log_excerpt", c.log_excerpt}};
  cls["exit_code"] = c.exit_code ? json(*c.exit_code) : json(nullptr);
  cls["signal"] = JsonOrNull(c.signal);
  cls["suggested_load_config"] =
      c.suggested_load_config_json.empty() ? json(nullptr) : LoadConfigObject(c.suggested_load_config_json);
  return cls;
}

}  // namespace

std::string AutoFixJson(const AutoFix& fix, bool brief) {
  json first = brief ? json{{"category", fix.first_failure.category}, {"summary", fix.first_failure.summary}}
                     : ClassificationJson(fix.first_failure);
  first["attempt_id"] = fix.first_attempt_id ? json(*fix.first_attempt_id) : json(nullptr);
  return Dump(json{{"changed", LoadConfigObject(fix.changed_json)}, {"first_failure", first}});
}

namespace {

// auto_fix and auto_fit, where a load answer has them.
void AddFitAndFix(const LoadResult& result, json& j) {
  if (result.auto_fix) j["auto_fix"] = json::parse(AutoFixJson(*result.auto_fix, false));
  if (!result.adjusted_json.empty()) j["adjusted"] = LoadConfigObject(result.adjusted_json);
}

}  // namespace

std::string LoadResultToJson(const LoadResult& result, std::string_view error_code) {
  json model = ModelJson(result.model, false);
  if (result.kind == LoadResult::Kind::kLoaded || result.kind == LoadResult::Kind::kAlreadyLoaded) {
    json j{{"model", model},
           {"loaded", true},
           {"already_loaded", result.kind == LoadResult::Kind::kAlreadyLoaded},
           {"joined", result.joined}};
    j["attempt_id"] = result.attempt_id ? json(*result.attempt_id) : json(nullptr);
    if (!result.warning.empty()) j["warning"] = result.warning;
    AddFitAndFix(result, j);
    return Dump(j);
  }
  json error{{"code", error_code}, {"message", result.message}};
  if (result.kind == LoadResult::Kind::kIncompatible) {
    error["notes"] = result.notes;
  } else if (result.kind == LoadResult::Kind::kInsufficientMemory) {
    error["fit"] = result.model.fit ? FitJson(*result.model.fit) : json(nullptr);
  } else if (result.kind == LoadResult::Kind::kModelsBusy) {
    error["busy_models"] = result.busy_models;
  } else {
    error["classification"] = ClassificationJson(result.classification);
    error["attempt_id"] = result.attempt_id ? json(*result.attempt_id) : json(nullptr);
    error["joined"] = result.joined;
    AddFitAndFix(result, error);
  }
  return Dump(json{{"error", error}, {"model", model}});
}

std::string DeletedToJson(const std::string& name) { return Dump(json{{"deleted", true}, {"model_name", name}}); }

std::string UnloadedToJson(const ModelView& model) {
  return Dump(json{{"unloaded", true}, {"model", ModelJson(model, false)}});
}

std::string ErrorToJson(std::string_view code, std::string_view message, std::string_view extra_json) {
  json error{{"code", code}, {"message", message}};
  if (!extra_json.empty()) {
    json extra = json::parse(extra_json, nullptr, false);
    if (extra.is_object()) {
      for (auto& [k, v] : extra.items()) error[k] = v;
    }
  }
  return Dump(json{{"error", error}});
}

json ParseJsonWithDepthLimit(std::string_view text, int max_depth, bool* too_deep) {
  *too_deep = false;
  auto check_depth = [too_deep, max_depth](int depth, json::parse_event_t, json&) {
    if (depth > max_depth) *too_deep = true;
    return true;
  };
  return json::parse(text.begin(), text.end(), check_depth, /*allow_exceptions=*/false);
}

}  // namespace mw::api
