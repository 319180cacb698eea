// libFuzzer target: the crash classifier (classifier/crash_classifier.h) over
// the built-in catalog, with arbitrary output bytes and an exit status,
// signal and timeout flag taken from the input.
//
// Input: byte 0 = flags (bit 0 has exit code, bit 1 has signal, bit 2 the
// signal is free text, bit 3 timed out, bits 4-7 a SanitizeUtf8Line limit);
// then the exit code (8 bytes, little-endian) if bit 0, the signal (1 byte
// number, or a text line if bit 2) if bit 1; the rest is the captured output. Checked: no crash/UB, and the contract
// of Classification: a category with a wire name, a non-empty pattern id,
// a one-line summary <= 200 bytes and a matched line <= 512 bytes, both
// valid UTF-8 (they go to JSON, SQLite and HTML). SanitizeUtf8Line and
// ParseSignal are fuzzed directly as well.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "classifier/crash_classifier.h"
#include "classifier/crash_classifier_text.h"
#include "fuzz_support.h"

namespace {

const mw::CrashClassifier& Classifier() {
  static const mw::CrashClassifier* classifier = [] {
    auto loaded = mw::CrashClassifier::Load("");
    MW_FUZZ_CHECK(loaded.ok());  // the built-in catalog must compile
    return new mw::CrashClassifier(std::move(*loaded));
  }();
  return *classifier;
}

// Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

bool IsOneLine(std::string_view s) { return s.find_first_of("\r\n") == std::string_view::npos; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mw::fuzz::InputReader input(data, size);
  const uint8_t flags = input.Byte();
  mw::CrashEvidence evidence;
  if (flags & 1) evidence.exit_code = input.Integer<int64_t>();
  if (flags & 2) {
    if (flags & 4) {
      evidence.signal = input.Line(16);
    } else {
      evidence.signal = std::to_string(input.Byte() % 72);
    }
  }
  evidence.timed_out = (flags & 8) != 0;
  const std::string output = input.Rest();
  evidence.output = output;

  const mw::Classification c = Classifier().Classify(evidence);
  MW_FUZZ_CHECK(!mw::CrashCategoryName(c.category).empty());
  MW_FUZZ_CHECK(mw::ParseCrashCategory(mw::CrashCategoryName(c.category)) == c.category);
  MW_FUZZ_CHECK(!c.pattern_id.empty());
  MW_FUZZ_CHECK(c.summary.size() <= 200 && IsOneLine(c.summary) && IsValidUtf8(c.summary));
  MW_FUZZ_CHECK(c.matched_line.size() <= 512 && IsOneLine(c.matched_line) && IsValidUtf8(c.matched_line));
  if (evidence.timed_out) MW_FUZZ_CHECK(c.category == mw::CrashCategory::kTimeout);

  if (evidence.signal) {
    auto parsed = mw::ParseSignal(*evidence.signal);
    // A number gets its canonical name ("SIGSEGV") or "signal N" when unknown.
    if (parsed && parsed->number != 0) {
      MW_FUZZ_CHECK(parsed->name.rfind("SIG", 0) == 0 || parsed->name == "signal " + std::to_string(parsed->number));
    }
  }

  const size_t max_bytes = flags >> 4 == 0 ? 512 : (flags >> 4) * 3;
  const std::string line = mw::SanitizeUtf8Line(output, max_bytes);
  MW_FUZZ_CHECK(line.size() <= max_bytes && IsOneLine(line) && IsValidUtf8(line));
  return 0;
}
