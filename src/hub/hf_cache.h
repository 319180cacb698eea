// hub/hf_cache.h: the Hugging Face cache layout inside a model location
// (SPEC §17), shared with huggingface_hub and llama.cpp's -hf:
//
//   <root>/models--ORG--NAME/blobs/SHA256              the file's bytes
//   <root>/models--ORG--NAME/blobs/SHA256.incomplete   a download in progress (resumed with Range)
//   <root>/models--ORG--NAME/snapshots/COMMIT/FILE     -> ../../blobs/SHA256 (relative symlink)
//   <root>/models--ORG--NAME/refs/main                 COMMIT
//
// and the choice of files in a repository: a file named exactly, or a quant
// tag matched case-insensitively against the GGUF file names, split GGUFs
// (NAME-00001-of-0000N.gguf) taken whole. Pure functions over the file
// system; thread-safe; never throw.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace mw::hub {

// "models--ORG--NAME" for "ORG/NAME".
std::string RepoDirName(std::string_view hf_path);
// "ORG/NAME" for "models--ORG--NAME"; "" when the name is not one.
std::string HfPathOfRepoDir(std::string_view dir_name);

std::filesystem::path BlobPath(const std::filesystem::path& root, std::string_view hf_path, std::string_view sha256);
std::filesystem::path IncompletePath(const std::filesystem::path& root, std::string_view hf_path,
                                     std::string_view sha256);
std::filesystem::path SnapshotPath(const std::filesystem::path& root, std::string_view hf_path,
                                   std::string_view commit, std::string_view file);

// Creates snapshots/COMMIT/FILE -> ../../blobs/SHA256 (replacing a link that
// was there) and writes refs/main. The blob must exist.
[[nodiscard]] Status LinkSnapshot(const std::filesystem::path& root, std::string_view hf_path,
                                  std::string_view commit, std::string_view file, std::string_view sha256);

// Offline: the snapshot path of FILE under refs/main's commit, else under any
// snapshot; empty when the cache does not have it.
std::filesystem::path FindCachedFile(const std::filesystem::path& root, std::string_view hf_path,
                                     std::string_view file);
// Offline: every file of the repository's snapshots (relative to the snapshot, sorted, unique).
std::vector<std::string> CachedFiles(const std::filesystem::path& root, std::string_view hf_path);

// One file of a repository as the hub lists it.
struct RepoFile {
  std::string path;    // relative to the repository root
  int64_t size = -1;   // -1: unknown
  std::string sha256;  // the LFS oid; empty when the hub did not say
};

// Which files a pull of `hf_path` takes from `files`:
//   `file` set: that file (and, for part 1 of a split GGUF, all its parts);
//   `quant` set: the one GGUF (or split set) whose name holds the tag, any case;
//   neither: the one GGUF of the repository that is not an mmproj.
// kNotFound (a named file that is not there) and kInvalidArgument (several
// matches or none) list the GGUF files there.
[[nodiscard]] Result<std::vector<RepoFile>> ChooseFiles(const std::vector<RepoFile>& files, std::string_view hf_path,
                                                        std::string_view file, std::string_view quant);

// "-00001-of-00003" in NAME-00001-of-00003.gguf: the part number and count; {0,0} when not split.
struct SplitPart {
  int index = 0;
  int count = 0;
};
SplitPart SplitPartOf(std::string_view file);

// Every GGUF under a location that a scan may register: plain *.gguf files
// (relative paths; not inside a models--* directory) and, for each
// Hugging Face cache (root and root/hub), each snapshot file of refs/main's
// commit (else the newest snapshot), split sets by their first part, mmproj
// files left out.
struct FoundGguf {
  std::string relative;  // path relative to the root, as file_path stores it
  std::string hf_path;   // "ORG/NAME" for a cache file, else ""
};
std::vector<FoundGguf> FindGgufFiles(const std::filesystem::path& root);

}  // namespace mw::hub
