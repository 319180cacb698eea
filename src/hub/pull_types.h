// hub/pull_types.h: what a pull is asked (PullSpec) and what it reports
// (PullView): plain structs shared by the puller (hub/pull_manager.h) and the
// HTTP edge (api/pull_api.h). No dependencies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mw::hub {

struct PullSpec {
  std::string hf_path;          // ORG/NAME
  std::string file;             // a file of the repository (exact), or empty
  std::string quant;            // a quant tag (any case), or empty
  std::string model_name;       // empty: named after the file
  std::string location = "primary";
  bool test = false;            // one load with its first decode, then unload
};

struct PullView {
  std::string id;
  std::string hf_path;
  std::vector<std::string> files;  // the repository files it downloads
  std::string model_name;
  std::string location;
  // "downloading" -> "registering" -> ("testing" ->) "done"; or "failed" / "cancelled".
  std::string state;
  int64_t bytes_done = 0;
  int64_t bytes_total = 0;
  double rate_bytes_per_s = 0;
  std::optional<int64_t> eta_s;
  bool shared = false;          // joined a download another pull started
  std::string error;            // failed: what happened
  std::string error_code;       // failed: the Status code name
  std::string compatibility_status;  // after the test
  std::string started_at;
  std::optional<std::string> finished_at;
  bool finished() const { return state == "done" || state == "failed" || state == "cancelled"; }
};

}  // namespace mw::hub
