// cli/pull_command.h: `modelwarden pull` and `modelwarden models scan` (SPEC §17).
//
//   modelwarden pull REPO[:QUANT|:FILE] [--name NAME] [--location LOC] [--test]
// starts a pull on the server (POST /api/models/pull) and follows it
// (GET /api/pulls) with a progress bar (bytes, rate, ETA) on a terminal, and
// a plain line every few seconds when stdout is not one. Exit 0 when the
// model is registered (and tested), 1 when the pull failed or was cancelled
// (Ctrl-C cancels it on the server).
//   modelwarden models scan
// registers the GGUF files of the server's locations not registered yet and
// prints what it added.
#pragma once

#include <string>
#include <vector>

namespace mw::cli {

struct PullArgs {
  std::string url;
  std::string api_key;
  bool json = false;
  std::string target;  // REPO[:QUANT|:FILE]
  std::string name;
  std::string location;
  bool test = false;
};

int RunPullCommand(const PullArgs& args);
int RunScanCommand(const std::string& url, const std::string& api_key, bool json);

}  // namespace mw::cli
