#include "hub/hf_cache.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <system_error>
#include <thread>

#include <unistd.h>

namespace mw::hub {
namespace fs = std::filesystem;
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool IsGguf(std::string_view path) { return EndsWith(Lower(path), ".gguf"); }

std::string BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

bool IsMmproj(std::string_view path) { return Lower(BaseName(path)).find("mmproj") != std::string::npos; }

// NAME-00001-of-00003.gguf -> NAME (the split set's key); the path itself when not split.
std::string SplitKey(std::string_view path) {
  SplitPart p = SplitPartOf(path);
  if (p.count == 0) return std::string(path);
  return std::string(path.substr(0, path.size() - std::string_view("-00001-of-00003.gguf").size()));
}

std::string GgufList(const std::vector<RepoFile>& files) {
  std::string list;
  for (const RepoFile& f : files) {
    if (!IsGguf(f.path)) continue;
    list += (list.empty() ? "" : ", ") + f.path;
  }
  return list.empty() ? "(no .gguf files)" : list;
}

// The file and, for a split set, every part of it, by part number.
std::vector<RepoFile> WithParts(const std::vector<RepoFile>& files, const RepoFile& chosen) {
  if (SplitPartOf(chosen.path).count == 0) return {chosen};
  std::vector<RepoFile> parts;
  const std::string key = SplitKey(chosen.path);
  for (const RepoFile& f : files) {
    if (IsGguf(f.path) && SplitPartOf(f.path).count > 0 && SplitKey(f.path) == key) parts.push_back(f);
  }
  std::sort(parts.begin(), parts.end(), [](const RepoFile& a, const RepoFile& b) { return a.path < b.path; });
  return parts;
}

// Does the tag occur in the file name as a whole token (Q4_K matches
// "x.Q4_K.gguf" but not "x.Q4_K_M.gguf")?
bool HasTag(std::string_view path, std::string_view tag) {
  const std::string name = Lower(BaseName(path));
  const std::string t = Lower(tag);
  auto is_sep = [](char c) { return !std::isalnum(static_cast<unsigned char>(c)) && c != '_'; };
  for (size_t at = name.find(t); at != std::string::npos; at = name.find(t, at + 1)) {
    const bool left = at == 0 || is_sep(name[at - 1]);
    const size_t end = at + t.size();
    const bool right = end == name.size() || is_sep(name[end]);
    if (left && right) return true;
  }
  return false;
}

}  // namespace

std::string RepoDirName(std::string_view hf_path) {
  size_t slash = hf_path.find('/');
  return "models--" + std::string(hf_path.substr(0, slash)) + "--" +
         std::string(slash == std::string_view::npos ? "" : hf_path.substr(slash + 1));
}

std::string HfPathOfRepoDir(std::string_view dir_name) {
  constexpr std::string_view kPrefix = "models--";
  if (dir_name.substr(0, kPrefix.size()) != kPrefix) return "";
  std::string_view rest = dir_name.substr(kPrefix.size());
  size_t sep = rest.find("--");
  if (sep == std::string_view::npos || sep == 0 || sep + 2 >= rest.size()) return "";
  return std::string(rest.substr(0, sep)) + "/" + std::string(rest.substr(sep + 2));
}

fs::path BlobPath(const fs::path& root, std::string_view hf_path, std::string_view sha256) {
  return root / RepoDirName(hf_path) / "blobs" / std::string(sha256);
}

fs::path IncompletePath(const fs::path& root, std::string_view hf_path, std::string_view sha256) {
  return root / RepoDirName(hf_path) / "blobs" / (std::string(sha256) + ".incomplete");
}

fs::path SnapshotPath(const fs::path& root, std::string_view hf_path, std::string_view commit, std::string_view file) {
  return root / RepoDirName(hf_path) / "snapshots" / std::string(commit) / std::string(file);
}

Status LinkSnapshot(const fs::path& root, std::string_view hf_path, std::string_view commit, std::string_view file,
                    std::string_view sha256) {
  const fs::path link = SnapshotPath(root, hf_path, commit, file);
  const fs::path blob = BlobPath(root, hf_path, sha256);
  std::error_code ec;
  fs::create_directories(link.parent_path(), ec);
  if (ec) return InternalError("cannot create " + link.parent_path().string() + ": " + ec.message());
  // From snapshots/COMMIT/a/b/FILE back to the repository directory. Made
  // under a private name and renamed into place: two pulls of one file may
  // link it at the same moment.
  const fs::path target = blob.lexically_relative(link.parent_path());
  const std::string unique = "." + std::to_string(getpid()) + "-" +
                             std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id())) + ".tmp";
  const fs::path temp_link = link.string() + unique;
  fs::remove(temp_link, ec);
  fs::create_symlink(target, temp_link, ec);
  if (!ec) fs::rename(temp_link, link, ec);
  if (ec) return InternalError("cannot link " + link.string() + " -> " + target.string() + ": " + ec.message());
  const fs::path refs = root / RepoDirName(hf_path) / "refs";
  fs::create_directories(refs, ec);
  const fs::path temp_ref = (refs / "main").string() + unique;
  {
    std::ofstream out(temp_ref, std::ios::trunc);
    out << commit;
    if (!out) return InternalError("cannot write " + temp_ref.string());
  }
  fs::rename(temp_ref, refs / "main", ec);
  if (ec) return InternalError("cannot write " + (refs / "main").string() + ": " + ec.message());
  return Status::Ok();
}

namespace {

std::string ReadRef(const fs::path& repo_dir) {
  std::ifstream in(repo_dir / "refs" / "main");
  std::string commit;
  std::getline(in, commit);
  return commit;
}

// refs/main's snapshot first, then the others by name.
std::vector<fs::path> SnapshotDirs(const fs::path& repo_dir) {
  std::vector<fs::path> dirs;
  std::error_code ec;
  for (fs::directory_iterator it(repo_dir / "snapshots", ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec)) dirs.push_back(it->path());
  }
  std::sort(dirs.begin(), dirs.end());
  const std::string ref = ReadRef(repo_dir);
  std::stable_partition(dirs.begin(), dirs.end(), [&](const fs::path& p) { return p.filename() == ref; });
  return dirs;
}

}  // namespace

fs::path FindCachedFile(const fs::path& root, std::string_view hf_path, std::string_view file) {
  for (const fs::path& snap : SnapshotDirs(root / RepoDirName(hf_path))) {
    std::error_code ec;
    fs::path p = snap / std::string(file);
    if (fs::is_regular_file(p, ec)) return p;
  }
  return {};
}

std::vector<std::string> CachedFiles(const fs::path& root, std::string_view hf_path) {
  std::set<std::string> files;
  for (const fs::path& snap : SnapshotDirs(root / RepoDirName(hf_path))) {
    std::error_code ec;
    for (fs::recursive_directory_iterator it(snap, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code ec2;
      if (fs::is_regular_file(it->path(), ec2)) files.insert(it->path().lexically_relative(snap).string());
    }
  }
  return {files.begin(), files.end()};
}

SplitPart SplitPartOf(std::string_view file) {
  // -NNNNN-of-NNNNN.gguf
  constexpr size_t kLen = std::string_view("-00001-of-00003.gguf").size();
  if (file.size() < kLen || !IsGguf(file)) return {};
  std::string_view tail = file.substr(file.size() - kLen);
  if (tail[0] != '-' || tail.substr(6, 4) != "-of-") return {};
  auto digits = [](std::string_view d) {
    int n = 0;
    for (char c : d) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return -1;
      n = n * 10 + (c - '0');
    }
    return n;
  };
  int index = digits(tail.substr(1, 5));
  int count = digits(tail.substr(10, 5));
  if (index < 1 || count < 1 || index > count) return {};
  return {index, count};
}

Result<std::vector<RepoFile>> ChooseFiles(const std::vector<RepoFile>& files, std::string_view hf_path,
                                          std::string_view file, std::string_view quant) {
  const std::string where = " in " + std::string(hf_path) + "; its GGUF files: " + GgufList(files);
  if (!file.empty()) {
    for (const RepoFile& f : files) {
      if (f.path == file) return WithParts(files, f);
    }
    return NotFoundError("no file '" + std::string(file) + "'" + where);
  }
  // Candidates: one per split set (its first part) and each single GGUF.
  std::vector<RepoFile> candidates;
  for (const RepoFile& f : files) {
    if (!IsGguf(f.path)) continue;
    const SplitPart p = SplitPartOf(f.path);
    if (p.count > 0 && p.index != 1) continue;
    if (quant.empty() ? IsMmproj(f.path) : !HasTag(f.path, quant)) continue;
    candidates.push_back(f);
  }
  if (candidates.size() == 1) return WithParts(files, candidates[0]);
  if (quant.empty()) {
    return InvalidArgumentError(std::string(candidates.empty() ? "no GGUF file" : "several GGUF files") + where +
                                " (name one: REPO:QUANT or REPO:FILE)");
  }
  return InvalidArgumentError(std::string(candidates.empty() ? "no GGUF file matches" : "several GGUF files match") +
                              " quant '" + std::string(quant) + "'" + where + " (name one: REPO:FILE)");
}

std::vector<FoundGguf> FindGgufFiles(const fs::path& root) {
  std::vector<FoundGguf> found;
  std::error_code ec;
  // Plain files.
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    if (it->is_directory(ec) && p.filename().string().rfind("models--", 0) == 0) {
      it.disable_recursion_pending();
      continue;
    }
    std::error_code ec2;
    if (!it->is_regular_file(ec2) || it->is_symlink(ec2)) continue;
    const std::string rel = p.lexically_relative(root).string();
    const SplitPart part = SplitPartOf(rel);
    if (!IsGguf(rel) || IsMmproj(rel) || (part.count > 0 && part.index != 1)) continue;
    found.push_back({rel, ""});
  }
  // Hugging Face caches.
  for (const fs::path& base : {root, root / "hub"}) {
    std::error_code ec3;
    for (fs::directory_iterator repo(base, ec3), rend; !ec3 && repo != rend; repo.increment(ec3)) {
      const std::string hf_path = HfPathOfRepoDir(repo->path().filename().string());
      if (hf_path.empty()) continue;
      std::vector<fs::path> snaps = SnapshotDirs(repo->path());
      if (snaps.empty()) continue;
      const fs::path& snap = snaps.front();
      std::error_code ec4;
      for (fs::recursive_directory_iterator f(snap, ec4), fend; !ec4 && f != fend; f.increment(ec4)) {
        std::error_code ec5;
        if (!fs::is_regular_file(f->path(), ec5)) continue;
        const std::string name = f->path().lexically_relative(snap).string();
        const SplitPart part = SplitPartOf(name);
        if (!IsGguf(name) || IsMmproj(name) || (part.count > 0 && part.index != 1)) continue;
        found.push_back({f->path().lexically_relative(root).string(), hf_path});
      }
    }
  }
  std::sort(found.begin(), found.end(), [](const FoundGguf& a, const FoundGguf& b) { return a.relative < b.relative; });
  return found;
}

}  // namespace mw::hub
