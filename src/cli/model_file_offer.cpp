#include "cli/model_file_offer.h"

#include <filesystem>
#include <system_error>

namespace mw::cli {

namespace fs = std::filesystem;

std::string FileArgument(const std::string& given) {
  fs::path path(given);
  std::error_code ec;
  if (given.empty() || path.is_absolute() || !fs::is_regular_file(path, ec)) return given;
  fs::path absolute = fs::absolute(path, ec);
  return ec ? given : absolute.lexically_normal().string();
}

std::optional<std::string> LocationOfOutsideRefusal(const std::string& message) {
  static const std::string kFrom = "' is outside the model location ";
  static const std::string kTo = " (symlinks are resolved";
  const size_t from = message.find(kFrom);
  if (from == std::string::npos) return std::nullopt;
  const size_t start = from + kFrom.size();
  const size_t to = message.find(kTo, start);
  if (to == std::string::npos) return std::nullopt;
  return message.substr(start, to - start);
}

Result<std::string> PlaceInLocation(const std::string& file, const std::string& root, bool link) {
  const std::string name = fs::path(file).filename().string();
  const fs::path target = fs::path(root) / name;
  std::error_code ec;
  if (fs::exists(target, ec)) {
    return AlreadyExistsError(target.string() + " already exists: register it with --file " + name +
                              ", or give the file another name");
  }
  if (link) {
    fs::create_hard_link(file, target, ec);
    if (ec == std::errc::cross_device_link) {
      return FailedPreconditionError("cannot hard-link " + file + " into " + root +
                                     ": another file system; use --copy instead");
    }
  } else {
    fs::copy_file(file, target, ec);
  }
  if (ec) {
    fs::remove(target, ec);  // no half-copied file left behind
    return InternalError(std::string("cannot ") + (link ? "link " : "copy ") + file + " into " + root + ": " +
                         ec.message());
  }
  return name;
}

std::string OutsideAdvice(const std::string& model, const std::string& file, const std::string& root) {
  const fs::path folder = fs::path(file).parent_path();
  return "The server reads model files only inside its model locations. Either copy the file into " + root +
         ":\n  modelwarden models add " + model + " --file " + file + " --copy\n" +
         "or hard-link it there (same file system, no second copy):\n  modelwarden models add " + model +
         " --file " + file + " --link\n" +
         "or make its folder a location in the server's configuration file (then reload it: SIGHUP):\n"
         "  [locations]\n  mine = \"" + folder.string() + "\"\n" +
         "then: modelwarden models add " + model + " --file " + fs::path(file).filename().string() +
         " --location mine\n";
}

}  // namespace mw::cli
