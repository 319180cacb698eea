// common/text_lines: a list of names kept in one text column, one per line.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mw {

// The non-empty lines of `text` ("a\nb\n" and "a\nb" both give {a, b}).
inline std::vector<std::string> SplitLines(std::string_view text) {
  std::vector<std::string> lines;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (!line.empty()) lines.emplace_back(line);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
  }
  return lines;
}

}  // namespace mw
