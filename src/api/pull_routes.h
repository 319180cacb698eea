// api/pull_routes.h: the routes of api/pull_api.h (SPEC §17) on the server,
// and a pull's JSON (the answers and the `event: pull` frames).
#pragma once

#include <string>

#include "api/pull_api.h"

namespace httplib {
class Server;
}

namespace mw::api {

// {"id","hf_path","files","model_name","cache_location","state","bytes_done","bytes_total",
//  "rate_bytes_per_s","eta_s","shared","error"?,"error_code"?,"compatibility_status"?,"started_at","finished_at"}
std::string PullToJson(const hub::PullView& pull);

// Installs the routes (before any catch-all route). `pulls` must outlive the server.
void InstallPullRoutes(httplib::Server& server, PullApi& pulls);

}  // namespace mw::api
