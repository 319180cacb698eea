// api/json_limits.h (internal to api/): parsing JSON from outside (request
// bodies, engine answers) with a nesting limit. nlohmann's dump() recurses
// once per level, so a 1 MiB body of '[' (depth 500 000) overflowed an HTTP
// thread's stack when it was re-serialized (fuzz/fuzz_request_body).
#pragma once

#include <nlohmann/json.hpp>

#include <string_view>

namespace mw::api {

// Parses `text` without exceptions (discarded on a syntax error); sets
// *too_deep when it nests deeper than `max_depth`.
nlohmann::json ParseJsonWithDepthLimit(std::string_view text, int max_depth, bool* too_deep);

}  // namespace mw::api
