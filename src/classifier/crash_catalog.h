// Crash pattern catalog: the data the crash classifier decides with (SPEC §2).
//
// A catalog is an ordered list of entries, each an RE2 pattern with an id, a
// category, a one-line summary template, a priority and an optional
// suggested load_config. The built-in entries live in data/crash_patterns.toml
// (embedded into the binary at build time, so the program works from any
// directory); users add entries in a file of the same TOML format, named in
// the configuration. The format and the decision rules are documented at the
// top of data/crash_patterns.toml.
//
// Parsing checks the structure (ids, categories, scopes, priorities); RE2
// compilation happens when a CrashClassifier is created from the entries, so
// both kinds of error surface at startup with the file name and entry id.
// Everything here is pure logic except LoadCrashCatalogFile, which reads one
// file. All functions are thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"

namespace mw {

// What went wrong, from the most specific cause to the least. Names are the
// wire names of SPEC §2 (see CrashCategoryName).
enum class CrashCategory {
  kFlashAttention,    // "flash_attention": a flash-attention kernel/extension failed
  kGpuContext,        // "gpu_context": GPU context or runtime error (the model's load failed on it)
  kDeviceUnavailable,  // "device_unavailable": no usable device, driver/runtime init failed, device
                       // lost: the environment's failure, never the model's (SPEC §11)
  kOutOfMemory,       // "out_of_memory": device or host memory exhausted (incl. OOM killer)
  kAssertion,         // "assertion": GGML_ASSERT / assert() / CHECK failed
  kAbortedSignal,     // "aborted_signal": died by a signal or crash code, cause unknown
  kUnsupportedModel,  // "unsupported_model": unknown architecture, corrupt or mismatched file
  kTimeout,           // "timeout": the load hung past its timeout
  kOther,             // "other": anything else (missing library, cancelled, unknown)
};

// "flash_attention", "gpu_context", ... (the SPEC §2 and §11 names).
std::string_view CrashCategoryName(CrashCategory category);
// Inverse of CrashCategoryName; nullopt for an unknown name.
std::optional<CrashCategory> ParseCrashCategory(std::string_view name);
// Default priority of an entry of this category when the entry sets none:
// flash_attention 90, out_of_memory 80, unsupported_model 70,
// device_unavailable 62, gpu_context 60,
// assertion 50, timeout 40, aborted_signal 30, other 20.
int DefaultCrashPriority(CrashCategory category);
// gpu_context or device_unavailable: a failure at the device level, the
// evidence of a system-wide failure (SPEC §11).
bool IsDeviceLevelCategory(std::string_view name);

// A load_config value as a native type (rendered as JSON by the API/CLI).
using ConfigValue = std::variant<bool, int64_t, double, std::string>;
struct ConfigSetting {
  std::string key;  // a load_config key (SPEC §5), e.g. "flash_attn"
  ConfigValue value;
  bool operator==(const ConfigSetting&) const = default;
};

// How an entry takes part in a decision (see data/crash_patterns.toml).
enum class PatternScope {
  kLine,     // "line": a cause; competes by priority, then by recency
  kContext,  // "context": refines a nearby generic cause, never decides alone
  kDemote,   // "demote": a matching line is a warning before a fallback; its hits rank last
};

struct CatalogEntry {
  std::string id;       // unique in a catalog, e.g. "oom.device_alloc"
  CrashCategory category = CrashCategory::kOther;
  std::string pattern;  // RE2 syntax, matched against one output line at a time
  std::string summary;  // template: $0..$9 captures, $line the whole line, {cause} (context)
  int priority = 0;     // higher = more specific cause
  PatternScope scope = PatternScope::kLine;
  std::vector<ConfigSetting> suggest;  // suggested load_config, may be empty
  std::string origin;   // where it came from: "built-in" or the user file path
};

// Parses a catalog in TOML (`[[pattern]]` tables). `origin` names the source
// in error messages and in CatalogEntry::origin. kInvalidArgument, naming the
// origin and entry, on a TOML syntax error, a missing/ill-typed field, an
// unknown category or scope, a priority outside 0..1000 or a duplicate id.
// Patterns are not compiled here.
[[nodiscard]] Result<std::vector<CatalogEntry>> ParseCrashCatalog(std::string_view toml_text,
                                                                  std::string_view origin);

// Reads and parses a user catalog file. kNotFound if it does not exist,
// kPermissionDenied/kUnavailable if it cannot be read, else as ParseCrashCatalog.
[[nodiscard]] Result<std::vector<CatalogEntry>> LoadCrashCatalogFile(const std::string& path);

// The text of data/crash_patterns.toml as embedded at build time.
std::string_view BuiltinCrashCatalogText();
// The built-in entries, parsed (origin "built-in"). Never fails in a
// correctly built binary (the unit tests parse and compile it); an error here
// is kInternal.
[[nodiscard]] Result<std::vector<CatalogEntry>> BuiltinCrashCatalog();

// Combines user entries with the built-ins. User entries take precedence:
// a user entry whose id equals a built-in id replaces that built-in, and the
// other user entries are placed before all built-ins, so on the same line and
// at equal priority a user entry wins. To outrank built-ins on other lines,
// give the user entry a higher `priority`.
std::vector<CatalogEntry> MergeCrashCatalogs(std::vector<CatalogEntry> user,
                                             std::vector<CatalogEntry> builtin);

}  // namespace mw
