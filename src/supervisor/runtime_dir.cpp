#include "supervisor/runtime_dir.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace mw {
namespace {

bool FitsSocketPath(const std::string& dir) {
  return dir.size() + 1 + kRuntimeNameRoom < sizeof(sockaddr_un{}.sun_path);
}

bool EndsWith(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// Removes *.sock in `dir`.
void RemoveEngineFiles(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (EndsWith(name, ".sock")) names.push_back(std::move(name));
  }
  ::closedir(d);
  for (const std::string& n : names) ::unlink((dir + "/" + n).c_str());
}

Result<RuntimeDir> MakeTemporary() {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  std::vector<std::string> bases;
  if (xdg != nullptr && *xdg == '/') bases.emplace_back(xdg);
  bases.emplace_back("/tmp");
  std::string last_error;
  for (const std::string& base : bases) {
    std::string templ = base + "/mw-XXXXXX";
    if (!FitsSocketPath(templ)) continue;
    if (::mkdtemp(templ.data()) != nullptr) return RuntimeDir{templ, true};  // mkdtemp makes it 0700
    last_error = base + ": " + std::strerror(errno);
  }
  return InternalError("cannot create a runtime directory for the engines' sockets (" + last_error + ")");
}

}  // namespace

Result<RuntimeDir> PrepareRuntimeDir(const std::string& preferred) {
  if (preferred.empty() || !FitsSocketPath(preferred)) return MakeTemporary();
  if (::mkdir(preferred.c_str(), 0700) != 0 && errno != EEXIST) {
    return InternalError("cannot create the runtime directory " + preferred + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::lstat(preferred.c_str(), &st) != 0) {
    return InternalError("cannot read the runtime directory " + preferred + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) return FailedPreconditionError("the runtime directory " + preferred + " is not a directory");
  if (st.st_uid != ::geteuid()) {
    return FailedPreconditionError("the runtime directory " + preferred + " belongs to another user (uid " +
                                   std::to_string(st.st_uid) + ")");
  }
  if ((st.st_mode & 07777) != 0700 && ::chmod(preferred.c_str(), 0700) != 0) {
    return InternalError("cannot make the runtime directory " + preferred + " private: " + std::strerror(errno));
  }
  RemoveEngineFiles(preferred);
  return RuntimeDir{preferred, false};
}

void RemoveRuntimeDir(const RuntimeDir& dir) {
  if (dir.path.empty()) return;
  RemoveEngineFiles(dir.path);
  if (dir.temporary) ::rmdir(dir.path.c_str());
}

}  // namespace mw
