// api/pull_api.h: getting models (SPEC §17) as the HTTP edge sees it.
//
//   POST   /api/models/pull   {"hf_path", "file"?, "quant"?, "model_name"?, "cache_location"?, "test"?}
//                             -> 202 {"pull": PULL}; 400 (quant ambiguity: the GGUF files listed),
//                             401 (gated), 404 (repository or file), 409 (name taken),
//                             507 insufficient_storage (needed and free), 503 (no network)
//   GET    /api/pulls         {"pulls": [PULL...]} newest first
//   DELETE /api/pulls/{id}    cancels -> {"pull": PULL}
//   POST   /api/models/scan   registers the GGUF files of the locations not yet registered -> {"added": [...]}
// Progress and the end of each pull are `event: pull` frames on /api/events.
// The implementation is app/pull_service.h. Thread-safe.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "hub/pull_types.h"

namespace mw::api {

struct ScannedModel {
  std::string model_name;
  std::string cache_location;
  std::string file_path;
  std::string hf_path;  // empty for a plain file
};

class PullApi {
 public:
  virtual ~PullApi() = default;
  [[nodiscard]] virtual Result<hub::PullView> StartPull(const hub::PullSpec& spec) = 0;
  virtual std::vector<hub::PullView> ListPulls() = 0;
  [[nodiscard]] virtual Result<hub::PullView> CancelPull(const std::string& id) = 0;
  [[nodiscard]] virtual Result<std::vector<ScannedModel>> Scan() = 0;
  // The one listener of pull changes (the HTTP server's event stream); runs
  // on the pulling thread and must not block.
  virtual void SetListener(std::function<void(const hub::PullView&)> listener) = 0;
};

}  // namespace mw::api
