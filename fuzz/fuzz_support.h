// Small helpers shared by the fuzz targets.
//
// MW_FUZZ_CHECK(cond): a contract check. A failure prints the condition and
// aborts, which libFuzzer reports as a crash and saves the input as a
// reproducer (unlike assert(), it is never compiled out).
//
// InputReader: takes control values from the FRONT of the input, so a seed
// file reads as "a few control bytes, then the text" (libFuzzer's
// FuzzedDataProvider takes integers from the end, which makes hand-written
// seeds and regression files harder to read). Past the end it yields zeros.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#define MW_FUZZ_CHECK(cond)                                                                        \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(stderr, "%s:%d: fuzz contract check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                                \
    }                                                                                              \
  } while (false)

namespace mw::fuzz {

class InputReader {
 public:
  InputReader(const uint8_t* data, size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}

  uint8_t Byte() {
    if (rest_.empty()) return 0;
    auto b = static_cast<uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }

  // Little-endian integer of sizeof(T) bytes (missing bytes are zero).
  template <typename T>
  T Integer() {
    unsigned char bytes[sizeof(T)] = {};
    for (auto& b : bytes) b = Byte();
    T value;
    std::memcpy(&value, bytes, sizeof(T));
    return value;
  }

  // Bytes up to the first '\n' (consumed, not returned), at most max_bytes;
  // the whole rest if there is no '\n' within reach.
  std::string Line(size_t max_bytes) {
    size_t nl = rest_.substr(0, max_bytes + 1).find('\n');
    size_t n = nl == std::string_view::npos ? std::min(rest_.size(), max_bytes) : nl;
    std::string line(rest_.substr(0, n));
    rest_.remove_prefix(nl == std::string_view::npos ? n : n + 1);
    return line;
  }

  std::string Rest() {
    std::string all(rest_);
    rest_ = {};
    return all;
  }

 private:
  std::string_view rest_;
};

}  // namespace mw::fuzz
