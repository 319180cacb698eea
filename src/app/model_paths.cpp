#include "app/model_paths.h"

#include "api/errors.h"  // api::Echo: at most 200 bytes of client input in a message

#include <algorithm>
#include <system_error>
#include <vector>

namespace mw::app {
namespace fs = std::filesystem;

namespace {

bool IsInside(const fs::path& root, const fs::path& candidate) {
  auto r = root.begin();
  auto c = candidate.begin();
  for (; r != root.end(); ++r, ++c) {
    if (r->empty()) continue;  // a trailing separator yields an empty element
    if (c == candidate.end() || *r != *c) return false;
  }
  return true;
}

bool IsHfPart(std::string_view part) {
  if (part.empty() || part.size() > 96 || part == "." || part == "..") return false;
  return std::all_of(part.begin(), part.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
           ch == '_' || ch == '-';
  });
}

Result<fs::path> CanonicalRoot(const fs::path& location_root) {
  std::error_code ec;
  fs::path root = fs::weakly_canonical(location_root, ec);
  if (ec) return InvalidArgumentError("model location " + location_root.string() + " is not usable: " + ec.message());
  return root;
}

}  // namespace

bool IsValidHfPath(std::string_view hf_path) {
  size_t slash = hf_path.find('/');
  if (slash == std::string_view::npos || hf_path.find('/', slash + 1) != std::string_view::npos) return false;
  return IsHfPart(hf_path.substr(0, slash)) && IsHfPart(hf_path.substr(slash + 1));
}

Result<ResolvedModelFile> ResolveModelFile(const fs::path& location_root, std::string_view file_path,
                                           bool must_exist) {
  if (file_path.empty()) return InvalidArgumentError("file_path is empty");
  if (file_path.size() > 4096) return InvalidArgumentError("file_path is too long");
  if (file_path.find('\0') != std::string_view::npos) return InvalidArgumentError("file_path contains a NUL byte");
  fs::path given{std::string(file_path)};
  for (const auto& part : given) {
    if (part == "..") {
      return InvalidArgumentError("file_path must not contain '..': give a path inside the model location " +
                                  location_root.string());
    }
  }
  ASSIGN_OR_RETURN(fs::path root, CanonicalRoot(location_root));
  fs::path candidate = given.is_absolute() ? given : root / given;
  std::error_code ec;
  fs::path canonical = fs::weakly_canonical(candidate, ec);
  if (ec) return InvalidArgumentError("cannot resolve file_path '" + api::Echo(file_path) + "': " + ec.message());
  if (!IsInside(root, canonical) || canonical == root) {
    return InvalidArgumentError("file_path '" + api::Echo(file_path) + "' is outside the model location " +
                                root.string() + " (symlinks are resolved; model files must lie inside a "
                                "configured location)");
  }
  if (must_exist && !fs::is_regular_file(canonical, ec)) {
    return NotFoundError("model file " + api::Echo(canonical.string()) + " does not exist (or is not a regular file)");
  }
  // Stored as the user's path relative to the location (readable: a Hugging
  // Face snapshot name, not the blob it links to); checked again at load time.
  fs::path relative = given.is_absolute() ? given.lexically_normal().lexically_relative(root) : given.lexically_normal();
  if (relative.empty() || *relative.begin() == "..") relative = canonical.lexically_relative(root);
  return ResolvedModelFile{canonical, relative.string()};
}

Result<ResolvedModelFile> ResolveHfCacheFile(const fs::path& location_root, std::string_view hf_path) {
  if (!IsValidHfPath(hf_path)) {
    return InvalidArgumentError("hf_path must look like 'org/name' (got '" + api::Echo(hf_path) + "')");
  }
  size_t slash = hf_path.find('/');
  std::string dir_name =
      "models--" + std::string(hf_path.substr(0, slash)) + "--" + std::string(hf_path.substr(slash + 1));
  ASSIGN_OR_RETURN(fs::path root, CanonicalRoot(location_root));
  std::vector<fs::path> found;
  for (const fs::path& base : {root, root / "hub"}) {
    std::error_code ec;
    fs::path snapshots = base / dir_name / "snapshots";
    if (!fs::is_directory(snapshots, ec)) continue;
    for (fs::directory_iterator snap(snapshots, ec), end; !ec && snap != end; snap.increment(ec)) {
      std::error_code ec2;
      if (!snap->is_directory(ec2)) continue;
      for (fs::directory_iterator file(snap->path(), ec2), fend; !ec2 && file != fend; file.increment(ec2)) {
        if (file->path().extension() == ".gguf") found.push_back(file->path());
      }
    }
  }
  if (found.empty()) {
    return NotFoundError("no .gguf file for hf_path '" + api::Echo(hf_path) + "' in a Hugging Face cache under " +
                         root.string() + " (looked for " + dir_name + "/snapshots/*/*.gguf); give file_path");
  }
  if (found.size() > 1) {
    std::sort(found.begin(), found.end());
    std::string list;
    for (const auto& f : found) list += (list.empty() ? "" : ", ") + f.lexically_relative(root).string();
    return InvalidArgumentError("several .gguf files for hf_path '" + api::Echo(hf_path) +
                                "': give file_path, one of: " + list);
  }
  // Snapshot files are symlinks into blobs/ of the same cache: resolve and confine them like any path.
  return ResolveModelFile(location_root, found[0].lexically_relative(root).string(), /*must_exist=*/true);
}

}  // namespace mw::app
