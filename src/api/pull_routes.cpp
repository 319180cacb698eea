#include "api/pull_routes.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "api/errors.h"
#include "api/json_codec.h"
#include "api/route_guard.h"

namespace mw::api {
namespace {

using nlohmann::json;
constexpr const char* kJson = "application/json; charset=utf-8";

json PullJson(const hub::PullView& p) {
  json j{{"id", p.id},
         {"hf_path", p.hf_path},
         {"files", p.files},
         {"model_name", p.model_name},
         {"cache_location", p.location},
         {"state", p.state},
         {"bytes_done", p.bytes_done},
         {"bytes_total", p.bytes_total},
         {"rate_bytes_per_s", static_cast<int64_t>(p.rate_bytes_per_s)},
         {"eta_s", p.eta_s ? json(*p.eta_s) : json(nullptr)},
         {"shared", p.shared},
         {"started_at", p.started_at},
         {"finished_at", p.finished_at ? json(*p.finished_at) : json(nullptr)}};
  if (!p.error.empty()) {
    j["error"] = p.error;
    j["error_code"] = p.error_code;
  }
  if (!p.compatibility_status.empty()) j["compatibility_status"] = p.compatibility_status;
  return j;
}

void SendPullError(httplib::Response& res, const Status& status) {
  // A repository or file the hub does not have is not a model of ours, and
  // the hub's refusal is not this server's API key.
  ErrorKind kind = status.code() == StatusCode::kNotFound          ? ErrorKind::kNotFound
                   : status.code() == StatusCode::kUnauthenticated ? ErrorKind::kRepositoryGated
                                                                   : ErrorKindForStatus(status.code());
  ErrorInfo info = DescribeError(kind);
  res.status = info.http_status;
  res.set_content(ErrorToJson(info.code, status.message()), kJson);
}

// The fields of POST /api/models/pull; an unknown field or a wrong type is a 400.
Result<hub::PullSpec> ParsePullSpec(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgumentError("the body must be a JSON object");
  hub::PullSpec spec;
  for (auto& [key, value] : j.items()) {
    std::string* target = key == "hf_path"          ? &spec.hf_path
                          : key == "file"           ? &spec.file
                          : key == "quant"          ? &spec.quant
                          : key == "model_name"     ? &spec.model_name
                          : key == "cache_location" ? &spec.location
                                                    : nullptr;
    if (target) {
      if (!value.is_string()) return InvalidArgumentError("'" + key + "' must be a string");
      *target = value.get<std::string>();
    } else if (key == "test") {
      if (!value.is_boolean()) return InvalidArgumentError("'test' must be true or false");
      spec.test = value.get<bool>();
    } else {
      return InvalidArgumentError("unknown field '" + Echo(key) +
                                  "'; known: hf_path, file, quant, model_name, cache_location, test");
    }
  }
  if (spec.hf_path.empty()) return InvalidArgumentError("'hf_path' (ORG/NAME of a Hugging Face repository) is required");
  if (spec.location.empty()) spec.location = "primary";
  if (!spec.file.empty() && !spec.quant.empty()) return InvalidArgumentError("give 'file' or 'quant', not both");
  return spec;
}

}  // namespace

std::string PullToJson(const hub::PullView& pull) { return PullJson(pull).dump(); }

void InstallPullRoutes(httplib::Server& server, PullApi& pulls) {
  server.Post("/api/models/pull", GuardedRoute([&pulls](const httplib::Request& req, httplib::Response& res) {
    auto spec = ParsePullSpec(req.body);
    if (!spec.ok()) return SendPullError(res, spec.status());
    auto pull = pulls.StartPull(*spec);
    if (!pull.ok()) return SendPullError(res, pull.status());
    res.status = 202;
    res.set_content(json{{"pull", PullJson(*pull)}}.dump(), kJson);
  }));
  server.Post("/api/models/scan", GuardedRoute([&pulls](const httplib::Request&, httplib::Response& res) {
    auto added = pulls.Scan();
    if (!added.ok()) return SendPullError(res, added.status());
    json list = json::array();
    for (const ScannedModel& m : *added) {
      list.push_back({{"model_name", m.model_name},
                      {"cache_location", m.cache_location},
                      {"file_path", m.file_path},
                      {"hf_path", m.hf_path.empty() ? json(nullptr) : json(m.hf_path)}});
    }
    res.set_content(json{{"added", list}}.dump(), kJson);
  }));
  server.Get("/api/pulls", GuardedRoute([&pulls](const httplib::Request&, httplib::Response& res) {
    json list = json::array();
    for (const hub::PullView& p : pulls.ListPulls()) list.push_back(PullJson(p));
    res.set_content(json{{"pulls", list}}.dump(), kJson);
  }));
  server.Delete(R"(/api/pulls/([^/]+))", GuardedRoute([&pulls](const httplib::Request& req, httplib::Response& res) {
    auto pull = pulls.CancelPull(req.matches[1].str());
    if (!pull.ok()) return SendPullError(res, pull.status());
    res.set_content(json{{"pull", PullJson(*pull)}}.dump(), kJson);
  }));
}

}  // namespace mw::api
