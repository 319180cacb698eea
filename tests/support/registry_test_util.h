// Test helpers for registry/ and compat/ tests: fresh temp directories,
// raw file bytes, and raw SQL on a closed registry file.
#pragma once

#include <string>

namespace mw::testing_util {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The whole file, or "<missing>" if it cannot be read.
std::string ReadFileBytes(const std::string& path);
void WriteFileBytes(const std::string& path, const std::string& bytes);
bool FileExists(const std::string& path);

// Runs `sql` on `db_path` through a plain SQLite connection (no registry).
// Returns "" on success or SQLite's error message. Results are ignored.
std::string RawExec(const std::string& db_path, const std::string& sql);
// First column of the first row of `sql`, as text ("" if none).
std::string RawQuery(const std::string& db_path, const std::string& sql);

}  // namespace mw::testing_util
