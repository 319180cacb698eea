// `modelwarden classify`: runs the crash classifier (classifier/crash_classifier.h)
// on a saved log and prints one JSON object (SPEC §2):
//   modelwarden classify [--exit-code N] [--signal NAME] [--timed-out]
//                        [--patterns FILE] [FILE]
//   {"category": "...", "pattern_id": "...", "summary": "...",
//    "matched_line": "...", "suggested_load_config": {...}}
// The log is FILE, or standard input without FILE (or with "-"). --exit-code
// takes decimal or 0x-hex (Windows status codes as reported); --signal a name
// or number (SIGSEGV, segv, 11); --patterns a user catalog in the format of
// data/crash_patterns.toml, added to the built-ins.
// Exit status: 0 printed a classification, 1 I/O error (unreadable log or
// bad --patterns file, message on stderr), 2 usage error.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace mw {

// `args` are the words after "classify". Reads `in` when no FILE is given.
int RunClassifyCommand(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                       std::ostream& err);

// For main(): argv[0] is "classify" (the subcommand), the options follow.
// Uses std::cin, std::cout and std::cerr.
int RunClassifyCommand(int argc, char** argv);

}  // namespace mw
