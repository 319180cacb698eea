// app/model_paths.h: model files stay inside configured locations (SPEC §9).
//
// A model's file_path is given relative to its location or as an absolute
// path inside it. Rejected: empty paths, NUL bytes, any ".." component, and
// anything whose canonical form (symlinks resolved, weakly_canonical) lies
// outside the location's canonical root — so a symlink inside the location
// that points elsewhere is refused too. When file_path is omitted and hf_path
// ("org/name") is set, the file is found in a Hugging Face cache layout:
// <location>[/hub]/models--org--name/snapshots/*/*.gguf (exactly one such
// file, else an error listing the candidates).
//
// Pure functions over the file system; thread-safe; never throw.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/status.h"

namespace mw::app {

struct ResolvedModelFile {
  std::filesystem::path absolute;  // canonical path (inside the location)
  std::string relative;            // path relative to the location's canonical root (what is stored)
};

// kInvalidArgument for an escape or malformed path; kNotFound when
// `must_exist` and the file is missing or not a regular file.
[[nodiscard]] Result<ResolvedModelFile> ResolveModelFile(const std::filesystem::path& location_root,
                                                         std::string_view file_path, bool must_exist);

// The single *.gguf of `hf_path` in a Hugging Face cache under location_root.
// kInvalidArgument for a malformed hf_path or several candidates; kNotFound if none.
[[nodiscard]] Result<ResolvedModelFile> ResolveHfCacheFile(const std::filesystem::path& location_root,
                                                           std::string_view hf_path);

// "org/name" with [A-Za-z0-9._-] parts, no "." or ".." parts.
bool IsValidHfPath(std::string_view hf_path);

}  // namespace mw::app
