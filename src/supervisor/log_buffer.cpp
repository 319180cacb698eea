#include "supervisor/log_buffer.h"

#include <algorithm>

namespace mw {

LogBuffer::LogBuffer(size_t capacity) : ring_(std::max<size_t>(capacity, 1), '\0') {}

void LogBuffer::Append(std::string_view bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  total_ += bytes.size();
  const size_t cap = ring_.size();
  if (bytes.size() >= cap) {  // only the end survives
    bytes.remove_prefix(bytes.size() - cap);
    ring_.assign(bytes.data(), bytes.size());
    head_ = 0;
    held_ = cap;
    return;
  }
  size_t first = std::min(bytes.size(), cap - head_);
  ring_.replace(head_, first, bytes.data(), first);
  ring_.replace(0, bytes.size() - first, bytes.data() + first, bytes.size() - first);
  head_ = (head_ + bytes.size()) % cap;
  held_ = std::min(cap, held_ + bytes.size());
}

std::string LogBuffer::Tail(size_t max_bytes) const {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t cap = ring_.size();
  size_t n = std::min(max_bytes, held_);
  size_t start = (head_ + cap - n) % cap;
  std::string out;
  out.reserve(n);
  size_t first = std::min(n, cap - start);
  out.append(ring_, start, first);
  out.append(ring_, 0, n - first);
  return out;
}

uint64_t LogBuffer::total_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

void LineSplitter::Feed(std::string_view bytes, const LineFn& on_line) {
  while (!bytes.empty()) {
    size_t end = bytes.find_first_of("\r\n");
    std::string_view piece = bytes.substr(0, end);
    // Respect the bound even inside one piece.
    while (partial_.size() + piece.size() >= max_line_bytes_) {
      size_t take = max_line_bytes_ - partial_.size();
      partial_.append(piece.substr(0, take));
      on_line(partial_);
      partial_.clear();
      piece.remove_prefix(take);
    }
    partial_.append(piece);
    if (end == std::string_view::npos) return;
    if (!partial_.empty()) on_line(partial_);
    partial_.clear();
    bytes.remove_prefix(end + 1);
  }
}

void LineSplitter::Flush(const LineFn& on_line) {
  if (!partial_.empty()) on_line(partial_);
  partial_.clear();
}

}  // namespace mw
