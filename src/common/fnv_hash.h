// FNV-1a 64 of a byte string as 16 lowercase hex digits: a short, stable
// name for some text (an environment's fingerprint, a PostgreSQL channel);
// not a cryptographic hash.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace mw {

inline std::string Fnv1a64Hex(std::string_view bytes) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char ch : bytes) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace mw
