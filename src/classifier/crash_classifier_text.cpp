#include "classifier/crash_classifier_text.h"

#include <algorithm>

namespace mw {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr std::string_view kEllipsis = "...";

// Length of the valid UTF-8 sequence starting at text[i], or 0 if invalid.
size_t Utf8SequenceLength(std::string_view text, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char lead = byte(i);
  size_t length = 0;
  unsigned char min_second = 0x80, max_second = 0xBF;
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) min_second = 0xA0;  // no overlong forms
    if (lead == 0xED) max_second = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) min_second = 0x90;
    if (lead == 0xF4) max_second = 0x8F;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < min_second || byte(i + 1) > max_second) return 0;
  for (size_t k = 2; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return length;
}

// Skips an ANSI escape sequence starting at text[i] (ESC); returns its length.
size_t AnsiSequenceLength(std::string_view text, size_t i) {
  if (i + 1 < text.size() && text[i + 1] == '[') {
    size_t k = i + 2;
    while (k < text.size() && static_cast<unsigned char>(text[k]) >= 0x20 &&
           static_cast<unsigned char>(text[k]) <= 0x3F) {
      ++k;
    }
    return k < text.size() ? k - i + 1 : text.size() - i;
  }
  return 1;
}

}  // namespace

std::string SanitizeUtf8Line(std::string_view text, size_t max_bytes) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes) + kEllipsis.size());
  bool truncated = false;
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    std::string_view piece;
    size_t advance = 1;
    if (c == 0x1B) {
      advance = AnsiSequenceLength(text, i);
      piece = "";
    } else if (c < 0x20 || c == 0x7F) {
      piece = " ";
    } else if (size_t length = Utf8SequenceLength(text, i); length > 0) {
      piece = text.substr(i, length);
      advance = length;
    } else {
      piece = kReplacement;
    }
    if (out.size() + piece.size() > max_bytes) {
      truncated = true;
      break;
    }
    out += piece;
    i += advance;
  }
  size_t begin = out.find_first_not_of(' ');
  if (begin == std::string::npos) return "";
  size_t end = out.find_last_not_of(' ');
  out = out.substr(begin, end - begin + 1);
  if (truncated) {
    // Make room for the ellipsis without splitting a UTF-8 sequence.
    while (!out.empty() && out.size() + kEllipsis.size() > max_bytes) {
      out.pop_back();
      while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) out.pop_back();
      if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xC0) out.pop_back();
    }
    out += kEllipsis;
  }
  return out;
}

}  // namespace mw
