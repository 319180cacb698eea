// Crash classifier: names what ended a failed load from the loader's own
// output, its exit status and whether it timed out (SPEC §2, issue 3).
//
// Pure logic over a compiled pattern catalog (crash_catalog.h); no I/O.
//
// How a failure is decided (details at the top of data/crash_patterns.toml):
//  - every catalog entry is matched against every output line (one RE2::Set
//    pass over the whole text finds the candidate entries, then only those
//    are located line by line);
//  - each hit weighs its entry's priority (specific causes outrank generic
//    ones: flash_attention > out_of_memory > unsupported_model > gpu_context >
//    assertion > timeout > aborted_signal > other); a hit on a line that also
//    matches a "demote" entry (a warning before a fallback) ranks below all
//    other hits, so it decides only when nothing else does;
//  - the highest weight wins; among equals the latest line (the failure that
//    ended the run); on one line the entry listed first;
//  - a "context" entry within 5 lines of a generic winner (gpu_context,
//    assertion, aborted_signal, other) refines it, e.g. a CUDA error raised
//    inside a flash-attention kernel becomes flash_attention;
//  - the exit code and signal become synthetic evidence lines ("exit status
//    3221226505 (0xc0000409)", "killed by signal SIGKILL (9)") matched by the
//    same catalog and placed before the log, so a signal counts even when no
//    line matches, but a real line of equal weight is preferred;
//  - timed_out makes the category timeout (the best hit, if any, is kept as
//    the matched line and named in the summary);
//  - nothing matched: category other (or aborted_signal for an unknown
//    signal), pattern_id "unmatched", the last non-empty line as matched_line.
// Only the last 1 MiB of the output is examined (the end decides).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "classifier/crash_catalog.h"
#include "common/status.h"

namespace mw {

struct CrashEvidence {
  std::string_view output;            // captured stdout+stderr; any bytes, any size
  std::optional<int64_t> exit_code;   // as reported; Windows NTSTATUS codes as integers
  std::optional<std::string> signal;  // "SIGSEGV", "SEGV", "11", ... (see ParseSignal)
  bool timed_out = false;             // the supervisor killed it at the load timeout
};

struct Classification {
  CrashCategory category = CrashCategory::kOther;
  std::string pattern_id;    // catalog entry id, "timeout.load", or "unmatched"
  std::string summary;       // one line for compatibility_notes, <= 200 bytes
  std::string matched_line;  // the decisive output line (valid UTF-8, <= 512 bytes); may be empty
  std::vector<ConfigSetting> suggested_load_config;  // empty when no fix is known
};

// A parsed signal: canonical name ("SIGSEGV") and number (11), or for an
// unrecognised text the text itself and number 0.
struct SignalInfo {
  std::string name;
  int number = 0;
};
// Accepts "SIGSEGV", "segv", "11", "signal 11". nullopt for empty text.
std::optional<SignalInfo> ParseSignal(std::string_view text);

// An exit code in any form loaders report: decimal ("1", "-1073740791"),
// unsigned 32-bit ("3221226505"), unsigned 64-bit, i.e. a sign-extended
// 32-bit code ("18446744072635810825"), or hex ("0xC0000409",
// "0xFFFFFFFFC0000409", "-0x1"). Values past 64 bits wrap as two's complement
// (the classifier compares the low 32 bits for Windows codes). nullopt for
// anything else.
std::optional<int64_t> ParseExitCode(std::string_view text);

// Immutable after creation (but for the Set's recompilation); Classify is thread-safe. Cheap to copy (shared).
class CrashClassifier {
 public:
  // Compiles every entry (and one RE2::Set of all of them, compiled again
  // after every 256 classifications so that its DFA cache does not grow for
  // the classifier's life). kInvalidArgument
  // naming the entry's origin (file), id and RE2's message for a bad pattern.
  [[nodiscard]] static Result<CrashClassifier> Create(std::vector<CatalogEntry> entries);

  // Built-in catalog plus, when `user_catalog_path` is non-empty, the user
  // file's entries (MergeCrashCatalogs). Errors as LoadCrashCatalogFile and
  // Create. This is what the server calls once at startup.
  [[nodiscard]] static Result<CrashClassifier> Load(const std::string& user_catalog_path);

  // Never fails; total over all inputs (empty, binary, huge).
  Classification Classify(const CrashEvidence& evidence) const;

  size_t entry_count() const;

 private:
  struct Impl;
  explicit CrashClassifier(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace mw
