#include "app/shape_cache.h"

#include <sys/stat.h>

namespace mw::app {

Result<fit::ModelShape> ShapeCache::ShapeOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return NotFoundError("cannot read model file '" + path + "'");
  const std::string key = path + "\n" + std::to_string(st.st_size) + "\n" + std::to_string(st.st_mtim.tv_sec) + "." +
                          std::to_string(st.st_mtim.tv_nsec);
  {
    std::lock_guard lock(mu_);
    if (auto it = shapes_.find(key); it != shapes_.end()) {
      if (!it->second.shape) return DataLossError(it->second.error);
      return *it->second.shape;
    }
  }
  ASSIGN_OR_RETURN(Answer answer, read_(path));
  std::lock_guard lock(mu_);
  if (shapes_.size() >= 256) shapes_.clear();  // bounded; refilled on demand
  shapes_[key] = answer;
  if (!answer.shape) return DataLossError(answer.error);
  return *answer.shape;
}

}  // namespace mw::app
