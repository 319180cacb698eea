// app/model_file_identity.h: a model file's identity for its verdict (SPEC
// §18): size, modification time and the hash of its GGUF header and tensor
// index (common/gguf_header.h), the "model_file" component of the model's
// fingerprint. A replaced file makes the verdict stale ("model file
// changed"). The hash is computed once per (path, size, mtime). Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>

namespace mw::app {

class ModelFileIdentities {
 public:
  // The component for the file at `absolute_path` ("size=N mtime=S
  // gguf=HASH"; gguf=none for a file that is not a GGUF; "size=N
  // sha256=HEX" for a pulled file, one that resolves to a Hugging Face cache
  // blob models--ORG--NAME/blobs/SHA256), or "" when the file cannot be
  // read (no evidence either way).
  std::string Of(const std::string& absolute_path);

  // Re-stats every file seen so far: true when one of them changed since
  // its identity was last given (a cached model list is then out of date).
  bool AnyChanged();

 private:
  // "" when the file cannot be stat'ed.
  static std::string StatKey(const std::string& path);

  std::mutex mu_;
  struct Seen {
    std::string stat_key;   // size and mtime (ns) when the identity was computed
    std::string identity;
  };
  std::map<std::string, Seen> seen_;  // absolute path -> its last identity
};

}  // namespace mw::app
