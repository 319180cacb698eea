#include "common/gguf_header.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

namespace mw {
namespace {

// Value types of GGUF key-value pairs (gguf.h's gguf_type).
enum : uint32_t {
  kU8 = 0, kI8, kU16, kI16, kU32, kI32, kF32, kBool, kString, kArray, kU64, kI64, kF64,
};

// A bound on one string or array: a header that claims more is not believed.
constexpr uint64_t kMaxLength = uint64_t{1} << 32;

class Reader {
 public:
  Reader(std::ifstream& in, uint64_t file_size) : in_(in), file_size_(file_size) {}

  bool Bytes(void* out, uint64_t n) {
    if (n > file_size_ - pos_) return false;
    in_.read(static_cast<char*>(out), static_cast<std::streamsize>(n));
    if (static_cast<uint64_t>(in_.gcount()) != n) return false;
    Hash(static_cast<const unsigned char*>(out), n);
    pos_ += n;
    return true;
  }
  template <typename T>
  bool Scalar(T& out) { return Bytes(&out, sizeof out); }
  // Skips (and hashes) n bytes.
  bool Skip(uint64_t n) {
    unsigned char buf[4096];
    while (n > 0) {
      const uint64_t chunk = n < sizeof buf ? n : sizeof buf;
      if (!Bytes(buf, chunk)) return false;
      n -= chunk;
    }
    return true;
  }
  bool String() {
    uint64_t length = 0;
    return Scalar(length) && length <= kMaxLength && Skip(length);
  }
  bool Value(uint32_t type, int depth = 0) {
    switch (type) {
      case kU8: case kI8: case kBool: return Skip(1);
      case kU16: case kI16: return Skip(2);
      case kU32: case kI32: case kF32: return Skip(4);
      case kU64: case kI64: case kF64: return Skip(8);
      case kString: return String();
      case kArray: {
        uint32_t item = 0;
        uint64_t count = 0;
        if (depth > 0 || !Scalar(item) || !Scalar(count) || count > kMaxLength) return false;
        for (uint64_t i = 0; i < count; ++i) {
          if (!Value(item, depth + 1)) return false;
        }
        return true;
      }
      default: return false;
    }
  }
  uint64_t pos() const { return pos_; }
  std::string HashHex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(hash_));
    return buf;
  }

 private:
  void Hash(const unsigned char* p, uint64_t n) {
    for (uint64_t i = 0; i < n; ++i) {
      hash_ ^= p[i];
      hash_ *= 1099511628211ull;
    }
  }

  std::ifstream& in_;
  uint64_t file_size_;
  uint64_t pos_ = 0;
  uint64_t hash_ = 14695981039346656037ull;
};

}  // namespace

Result<GgufHeader> ReadGgufHeader(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return NotFoundError("cannot read model file '" + path + "': " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return NotFoundError("model path '" + path + "' is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open model file '" + path + "'");
  Reader r(in, static_cast<uint64_t>(st.st_size));
  auto bad = [&](const std::string& why) { return DataLossError("'" + path + "' is not a GGUF file: " + why); };
  char magic[4] = {};
  if (!r.Bytes(magic, sizeof magic) || std::memcmp(magic, "GGUF", 4) != 0) {
    return bad("it does not start with the GGUF magic");
  }
  GgufHeader h;
  if (!r.Scalar(h.version) || !r.Scalar(h.tensor_count) || !r.Scalar(h.kv_count)) {
    return bad("it ends inside its header");
  }
  if (h.version < 2 || h.version > 3) return bad("GGUF version " + std::to_string(h.version) + " is not supported");
  for (uint64_t i = 0; i < h.kv_count; ++i) {
    uint32_t type = 0;
    if (!r.String() || !r.Scalar(type) || !r.Value(type)) {
      return bad("key-value pair " + std::to_string(i) + " is cut off or malformed");
    }
  }
  for (uint64_t i = 0; i < h.tensor_count; ++i) {
    uint32_t n_dims = 0;
    if (!r.String() || !r.Scalar(n_dims) || n_dims > 8 || !r.Skip(uint64_t{8} * n_dims) || !r.Skip(4 + 8)) {
      return bad("the entry of tensor " + std::to_string(i) + " is cut off or malformed");
    }
  }
  h.index_bytes = r.pos();
  h.index_hash = r.HashHex();
  return h;
}

}  // namespace mw
