#include "worker/text_guard.h"

#include <cstddef>

namespace mw::worker {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed sequence a lead byte starts (0 = not a lead), and
// the allowed range of its second byte (Unicode Table 3-7), which rules out
// overlong forms, surrogates and code points above U+10FFFF.
struct Lead {
  size_t length;
  unsigned char second_lo;
  unsigned char second_hi;
};

Lead LeadOf(unsigned char b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

}  // namespace

std::string RepairUtf8(std::string_view text, bool partial) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<unsigned char>(text[i]);
    const Lead lead = LeadOf(b);
    if (lead.length == 1) {
      out.push_back(text[i]);
      ++i;
      continue;
    }
    if (lead.length == 0) {  // a stray continuation byte or an impossible lead
      out.append(kReplacement);
      ++i;
      continue;
    }
    // How many bytes after the lead continue the sequence well-formed.
    size_t good = 1;
    while (good < lead.length && i + good < text.size()) {
      const auto c = static_cast<unsigned char>(text[i + good]);
      const bool ok = good == 1 ? (c >= lead.second_lo && c <= lead.second_hi) : (c >= 0x80 && c <= 0xBF);
      if (!ok) break;
      ++good;
    }
    if (good == lead.length) {
      out.append(text.substr(i, good));
    } else if (i + good == text.size()) {
      // A well-formed prefix cut off by the end of the text.
      if (!partial) out.append(kReplacement);
    } else {
      out.append(kReplacement);  // the maximal ill-formed subpart, as one U+FFFD
    }
    i += good;
  }
  return out;
}

}  // namespace mw::worker
