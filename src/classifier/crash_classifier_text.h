// Text clean-up for what the classifier reports: log lines are arbitrary
// bytes (ANSI colours, binary garbage, Latin-1), but summaries and matched
// lines end up in JSON, SQLite and HTML, so they must be one line of valid
// UTF-8. Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mw {

// One printable line of valid UTF-8, at most `max_bytes` long: ANSI escape
// sequences removed, control characters turned into spaces, leading and
// trailing blanks trimmed, invalid UTF-8 bytes replaced by U+FFFD, and a
// longer text cut at a character boundary and ended with "...".
std::string SanitizeUtf8Line(std::string_view text, size_t max_bytes);

}  // namespace mw
