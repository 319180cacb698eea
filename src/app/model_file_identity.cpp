#include "app/model_file_identity.h"

#include <sys/stat.h>

#include <filesystem>
#include <vector>

#include "common/gguf_header.h"
#include "compat/environment.h"

namespace mw::app {
namespace {

// The sha256 of a pulled file (SPEC §17-18): its path resolves to a blob of a
// Hugging Face cache, models--ORG--NAME/blobs/SHA256, named by the hash the
// pull verified. "" for any other file.
std::string PulledSha256(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path blob = std::filesystem::canonical(path, ec);
  if (ec) return "";
  const std::string name = blob.filename().string();
  if (name.size() != 64 || name.find_first_not_of("0123456789abcdef") != std::string::npos) return "";
  if (blob.parent_path().filename() != "blobs") return "";
  if (blob.parent_path().parent_path().filename().string().rfind("models--", 0) != 0) return "";
  return name;
}

}  // namespace

std::string ModelFileIdentities::StatKey(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  return std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

std::string ModelFileIdentities::Of(const std::string& absolute_path) {
  const std::string key = StatKey(absolute_path);
  {
    std::lock_guard lock(mu_);
    if (key.empty()) {
      seen_.erase(absolute_path);  // gone: nothing to watch
      return "";
    }
    if (auto it = seen_.find(absolute_path); it != seen_.end() && it->second.stat_key == key) return it->second.identity;
  }
  struct stat st {};
  if (::stat(absolute_path.c_str(), &st) != 0) return "";
  Result<GgufHeader> header = ReadGgufHeader(absolute_path);
  if (!header.ok() && header.status().code() != StatusCode::kDataLoss) return "";
  // A pulled blob is known by its sha256 alone: two nodes with their own
  // copies (other mtimes) of the same blob agree on its identity.
  const std::string sha256 = PulledSha256(absolute_path);
  const std::string identity =
      sha256.empty() ? ModelFileComponent(static_cast<uint64_t>(st.st_size), static_cast<int64_t>(st.st_mtime),
                                          header.ok() ? header->index_hash : "none")
                     : "size=" + std::to_string(st.st_size) + " sha256=" + sha256;
  std::lock_guard lock(mu_);
  if (seen_.size() >= 4096) seen_.clear();  // bounded; refilled on demand
  seen_[absolute_path] = Seen{key, identity};
  return identity;
}

bool ModelFileIdentities::AnyChanged() {
  std::vector<std::pair<std::string, std::string>> known;
  {
    std::lock_guard lock(mu_);
    for (const auto& [path, seen] : seen_) known.emplace_back(path, seen.stat_key);
  }
  for (const auto& [path, key] : known) {
    if (StatKey(path) != key) return true;
  }
  return false;
}

}  // namespace mw::app
