// Bounded capture of a child's output, and splitting of a byte stream into
// lines for the callbacks that watch it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

namespace mw {

// Bytes of output kept per process by default (SPEC §2: the last 64 KiB at least).
inline constexpr size_t kDefaultLogCapacity = 64 * 1024;

// The last `capacity` bytes written to it (a ring). Thread-safe.
class LogBuffer {
 public:
  explicit LogBuffer(size_t capacity = kDefaultLogCapacity);

  void Append(std::string_view bytes);
  // The last min(max_bytes, held) bytes, oldest first.
  std::string Tail(size_t max_bytes = SIZE_MAX) const;
  // Every byte ever appended, including those no longer held.
  uint64_t total_bytes() const;
  size_t capacity() const { return ring_.size(); }

 private:
  mutable std::mutex mu_;
  std::string ring_;   // fixed size == capacity
  size_t head_ = 0;    // next write position
  size_t held_ = 0;    // valid bytes, <= capacity
  uint64_t total_ = 0;
};

// Splits a byte stream into lines. '\n' and '\r' both end a line (progress
// bars redraw with '\r'); empty lines are skipped. A line longer than
// max_line_bytes is delivered in pieces of that size, so memory stays
// bounded. Not thread-safe (one reader owns it).
class LineSplitter {
 public:
  using LineFn = std::function<void(std::string_view line)>;
  explicit LineSplitter(size_t max_line_bytes = 16 * 1024) : max_line_bytes_(max_line_bytes) {}

  void Feed(std::string_view bytes, const LineFn& on_line);
  // At EOF: delivers an unterminated last line, if any.
  void Flush(const LineFn& on_line);

 private:
  size_t max_line_bytes_;
  std::string partial_;
};

}  // namespace mw
