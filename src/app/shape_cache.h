// app/shape_cache.h: each model file's shape (layers, sizes: what the fit
// estimate needs, SPEC §12), read once per file version; a collaborator of
// ModelService (fit and residency).
//
// Contract: ShapeOf(path) answers from the cache when this version of the
// file (path, size, mtime) was read before; else it calls `read` (the
// worker's `inspect`, which reads the header and no tensor data) and keeps
// its answer: a shape, or the reason the file cannot be read (kDataLoss
// with it, remembered too). An error from `read` itself (the worker did not
// answer) is not kept: the next call asks again. At most 256 entries (all
// dropped when full; refilled on demand). A missing file is kNotFound.
// Thread-safe; its own lock, never held while `read` runs.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "common/status.h"
#include "fit/fit_estimate.h"

namespace mw::app {

class ShapeCache {
 public:
  struct Answer {
    std::optional<fit::ModelShape> shape;  // nullopt: the file cannot be read (error says why)
    std::string error;
  };
  using ReadFn = std::function<Result<Answer>(const std::string& path)>;
  explicit ShapeCache(ReadFn read) : read_(std::move(read)) {}

  Result<fit::ModelShape> ShapeOf(const std::string& path);

 private:
  const ReadFn read_;
  std::mutex mu_;  // guards shapes_
  std::map<std::string, Answer> shapes_;  // path, size and mtime -> answer
};

}  // namespace mw::app
