// libFuzzer target: the worker -> server protocol reader
// (protocol/protocol.h): DecodeMessage and LineBuffer.
//
// Input: byte 0 picks the line limit of a LineBuffer (1..256 bytes, so
// overlong lines are common), bytes 1-4 the sizes of the chunks the stream
// is fed in (1..64); the rest is the byte stream a worker wrote. Checked:
//  - LineBuffer yields, whatever the chunking, exactly what a simple
//    reference split yields (lines without '\n' and one trailing '\r', one
//    kResourceExhausted per overlong line, the unterminated tail at EOF);
//  - DecodeMessage never crashes on any line, and a decoded message
//    survives EncodeMessage -> DecodeMessage unchanged, as one line.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.h"
#include "protocol/protocol.h"

namespace {

namespace protocol = mw::protocol;

// What LineBuffer must produce for `stream`: nullopt stands for an overlong line.
struct Expected {
  std::vector<std::optional<std::string>> lines;
  std::optional<std::string> remainder;
  bool remainder_overlong = false;
};

Expected ReferenceSplit(std::string_view stream, size_t max_line) {
  Expected out;
  while (true) {
    size_t nl = stream.find('\n');
    std::string_view segment = stream.substr(0, nl);
    if (nl == std::string_view::npos) {
      if (segment.size() > max_line) {
        out.remainder_overlong = true;
      } else if (!segment.empty()) {
        out.remainder = std::string(segment);
      }
      return out;
    }
    if (segment.size() > max_line) {
      out.lines.emplace_back(std::nullopt);
    } else {
      if (!segment.empty() && segment.back() == '\r') segment.remove_suffix(1);
      out.lines.emplace_back(std::string(segment));
    }
    stream.remove_prefix(nl + 1);
  }
}

void CheckDecode(std::string_view line) {
  auto decoded = protocol::DecodeMessage(line);
  if (!decoded.ok()) {
    MW_FUZZ_CHECK(!decoded.status().message().empty());
    return;
  }
  const std::string encoded = protocol::EncodeMessage(*decoded);
  MW_FUZZ_CHECK(!encoded.empty() && encoded.back() == '\n');
  MW_FUZZ_CHECK(encoded.find('\n') == encoded.size() - 1);
  MW_FUZZ_CHECK(protocol::MessageTypeName(*decoded).size() > 0);
  auto again = protocol::DecodeMessage(encoded);
  MW_FUZZ_CHECK(again.ok());
  MW_FUZZ_CHECK(*again == *decoded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mw::fuzz::InputReader input(data, size);
  const size_t max_line = 1 + input.Byte();
  std::vector<size_t> chunk_sizes;
  for (int i = 0; i < 4; ++i) chunk_sizes.push_back(1 + input.Byte() % 64);
  const std::string stream = input.Rest();

  // The whole stream as one line, as the supervisor would hand it over
  // (with the real limit, so DecodeMessage's own size check is reached).
  CheckDecode(stream);

  protocol::LineBuffer buffer(max_line);
  std::vector<std::optional<std::string>> got;
  auto drain = [&] {
    while (auto next = buffer.Next()) {
      if (next->ok()) {
        MW_FUZZ_CHECK((*next)->find('\n') == std::string::npos);
        MW_FUZZ_CHECK((*next)->size() <= max_line);
        got.emplace_back(**next);
      } else {
        MW_FUZZ_CHECK(next->status().code() == mw::StatusCode::kResourceExhausted);
        got.emplace_back(std::nullopt);
      }
    }
  };
  std::string_view rest = stream;
  for (size_t i = 0; !rest.empty(); ++i) {
    size_t n = std::min(rest.size(), chunk_sizes[i % chunk_sizes.size()]);
    buffer.Append(rest.substr(0, n));
    rest.remove_prefix(n);
    if (i % 3 == 0) drain();  // readers drain at arbitrary points
  }
  drain();
  std::optional<std::string> remainder = buffer.TakeRemainder();

  Expected expected = ReferenceSplit(stream, max_line);
  if (expected.remainder_overlong) expected.lines.emplace_back(std::nullopt);
  MW_FUZZ_CHECK(got == expected.lines);
  MW_FUZZ_CHECK(remainder == expected.remainder);
  MW_FUZZ_CHECK(!buffer.Next().has_value() && !buffer.TakeRemainder().has_value());

  for (const auto& line : got) {
    if (line) CheckDecode(*line);
  }
  return 0;
}
