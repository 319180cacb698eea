#include "cli/advice.h"

#include <regex>
#include <utility>

namespace mw::cli {
namespace {

void ReplaceAll(std::string& text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

}  // namespace

std::string InCliWords(std::string message, const std::string& model) {
  const std::string load_force = "`modelwarden load " + model + " --force`";
  // Whole phrases first, so that the sentence still reads; then what is left, piece by piece.
  const std::pair<std::string, std::string> phrases[] = {
      {"load it with POST /api/orchestrate/load and force_load=true, or set its status",
       "load it with " + load_force + ", or set its status with `modelwarden models set " + model + " --status unknown`"},
      {"Load it with force_load=true to try anyway.", "Load it anyway with " + load_force + "."},
      {"load it with force_load=true to try anyway", "load it anyway with " + load_force},
      {"unload a model (POST /api/orchestrate/unload)", "unload a model (`modelwarden unload NAME`)"},
      {"give file_path", "give --file PATH"},
      {"POST /api/orchestrate/load", "`modelwarden load " + model + "`"},
      {"POST /api/orchestrate/unload", "`modelwarden unload NAME`"},
      {"force_load=true", "--force"},
      {"file_path '", "--file '"},
  };
  for (const auto& [from, to] : phrases) ReplaceAll(message, from, to);
  // "(PATCH /api/models/NAME/config)": the load_config is set with `models set`.
  static const std::regex kPatchConfig(R"(PATCH /api/models/([A-Za-z0-9._%-]+)/config)");
  message = std::regex_replace(message, kPatchConfig, "`modelwarden models set $1 --load-config '{...}'`");
  static const std::regex kRetest(R"(POST /api/models/([A-Za-z0-9._%-]+)/retest)");
  message = std::regex_replace(message, kRetest, "`modelwarden retest $1`");
  ReplaceAll(message, "POST /api/environment/reset", "`modelwarden environment reset`");
  return message;
}

}  // namespace mw::cli
