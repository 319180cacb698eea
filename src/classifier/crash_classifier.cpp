#include "classifier/crash_classifier.h"

#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <charconv>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "classifier/crash_classifier_text.h"

namespace mw {
namespace {

// The end of a log decides; a bigger input is cut to its last 1 MiB.
constexpr size_t kMaxScanBytes = size_t{1} << 20;
// A hit on a line that matches a "demote" entry (a warning before a
// fallback) ranks below every other hit, keeping its order among demoted ones
// (priorities are 0..1000).
constexpr int kDemotePenalty = 1001;
// A context entry refines a decisive hit at most this many lines away.
constexpr int kContextWindow = 5;
constexpr size_t kMaxSummaryBytes = 200;
constexpr size_t kMaxLineBytes = 512;
constexpr size_t kMaxLineInSummary = 120;
// RE2::Set runs one DFA over the whole text; give it room so that it does
// not fall back to the slow path on long logs.
constexpr int64_t kSetMaxMem = int64_t{64} << 20;
// Classifications served by one compiled Set (Impl::TakeSet says why).
constexpr int kSetUses = 256;
// Size of the pieces the Set looks at (extended to a line end).
constexpr size_t kChunkBytes = 4096;

constexpr std::array<std::pair<int, std::string_view>, 15> kSignals = {{
    {1, "SIGHUP"}, {2, "SIGINT"}, {3, "SIGQUIT"}, {4, "SIGILL"}, {5, "SIGTRAP"},
    {6, "SIGABRT"}, {7, "SIGBUS"}, {8, "SIGFPE"}, {9, "SIGKILL"}, {10, "SIGUSR1"},
    {11, "SIGSEGV"}, {12, "SIGUSR2"}, {13, "SIGPIPE"}, {14, "SIGALRM"}, {15, "SIGTERM"},
}};

RE2::Options MatchOptions() {
  RE2::Options options;
  options.set_encoding(RE2::Options::EncodingLatin1);  // any bytes; binary input is fine
  options.set_never_nl(true);                          // a match never spans lines
  options.set_log_errors(false);
  return options;
}

// Lines of one text, with [begin, end) offsets (end excludes '\n' and '\r').
class Lines {
 public:
  explicit Lines(std::string_view text) : text_(text) {
    starts_.push_back(0);
    for (size_t pos = 0; (pos = text.find('\n', pos)) != std::string_view::npos; ++pos) {
      starts_.push_back(pos + 1);
    }
  }
  std::string_view text() const { return text_; }
  int count() const { return static_cast<int>(starts_.size()); }
  int LineOf(size_t offset) const {
    auto it = std::upper_bound(starts_.begin(), starts_.end(), offset);
    return static_cast<int>(it - starts_.begin()) - 1;
  }
  size_t NextLineStart(int line) const {
    return static_cast<size_t>(line) + 1 < starts_.size() ? starts_[line + 1] : text_.size() + 1;
  }
  std::string_view Line(int line) const {
    size_t begin = starts_[line];
    size_t end = static_cast<size_t>(line) + 1 < starts_.size() ? starts_[line + 1] - 1 : text_.size();
    std::string_view view = text_.substr(begin, end - begin);
    if (!view.empty() && view.back() == '\r') view.remove_suffix(1);
    return view;
  }

 private:
  std::string_view text_;
  std::vector<size_t> starts_;
};

struct Hit {
  int entry;
  int line;        // index in its Lines
  bool synthetic;  // from the exit code / signal, not the log
};

// The synthetic evidence lines for the exit status and signal.
std::string SyntheticEvidence(const CrashEvidence& evidence, const std::optional<SignalInfo>& signal) {
  std::string out;
  if (signal) {
    out += "killed by signal " + signal->name;
    if (signal->number > 0) out += " (" + std::to_string(signal->number) + ")";
    out += "\n";
  }
  if (evidence.exit_code) {
    int64_t code = *evidence.exit_code;
    out += "exit status " + std::to_string(code);
    if (code < 0 || code > 255) {
      char hex[24];
      std::snprintf(hex, sizeof(hex), " (0x%08llx)",
                    static_cast<unsigned long long>(static_cast<uint32_t>(code)));  // NOLINT(runtime/int)
      out += hex;
    }
    out += "\n";
    // A shell reports death by signal N as exit status 128+N.
    if (!signal && code > 128 && code < 160) {
      for (const auto& [number, name] : kSignals) {
        if (number == code - 128) out += "killed by signal " + std::string(name) + " (" + std::to_string(number) + ")\n";
      }
    }
  }
  return out;
}

bool IsRefinable(CrashCategory category) {
  return category == CrashCategory::kGpuContext || category == CrashCategory::kAssertion ||
         category == CrashCategory::kAbortedSignal || category == CrashCategory::kOther;
}

}  // namespace

std::optional<int64_t> ParseExitCode(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  const bool negative = !text.empty() && text.front() == '-';
  if (negative || (!text.empty() && text.front() == '+')) text.remove_prefix(1);
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
    base = 16;
  }
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (negative) {
    if (value > (uint64_t{1} << 63)) return std::nullopt;
    return static_cast<int64_t>(uint64_t{0} - value);
  }
  return static_cast<int64_t>(value);  // an unsigned 64-bit code wraps to its signed value
}

std::optional<SignalInfo> ParseSignal(std::string_view text) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
  };
  text = trim(text);
  if (text.empty()) return std::nullopt;
  std::string upper;
  for (char c : text) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string_view key = upper;
  if (key.substr(0, 7) == "SIGNAL ") key = trim(key.substr(7));
  if (key.substr(0, 3) == "SIG") key.remove_prefix(3);
  int number = 0;
  auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), number);
  bool numeric = ec == std::errc() && end == key.data() + key.size();
  for (const auto& [n, name] : kSignals) {
    if ((numeric && n == number) || (!numeric && name.substr(3) == key)) return SignalInfo{std::string(name), n};
  }
  if (numeric) return SignalInfo{"signal " + std::to_string(number), number};
  return SignalInfo{SanitizeUtf8Line(text, 40), 0};
}

struct CrashClassifier::Impl {
  std::vector<CatalogEntry> entries;
  std::vector<std::unique_ptr<RE2>> regexes;
  std::vector<std::string> set_patterns;  // empty if the Set did not compile: every entry is scanned

  // The RE2::Set of every entry, compiled again after every kSetUses
  // classifications. Why not once: a Set's DFA keeps every state it builds,
  // up to kSetMaxMem, for the Set's life; kept for the server's life it grew
  // with every new kind of log classified (~270 KB in the first 12 minutes of
  // the soak, and on, with no bound short of tens of MB). Why not per call: the
  // DFA built again for each 64 KiB log costs ~9 ms against ~0.2 ms warm
  // (bench/classifier_bench). Why 256 and not fewer, and the Set alone: each
  // compilation allocates the program again (~350 KB in small pieces), and
  // in the soak, compiling every entry's regex too every 32 classifications
  // (~25 s there) left the server's RSS ~5 MB higher by minute 10 (what the
  // regexes' own DFAs kept was ~33 KB in 12 minutes).
  mutable std::mutex set_mu;
  mutable std::shared_ptr<const RE2::Set> current_set;  // guarded by set_mu
  mutable int set_uses = 0;                     // guarded by set_mu

  std::shared_ptr<const RE2::Set> TakeSet() const {
    std::lock_guard<std::mutex> lock(set_mu);
    if (++set_uses > kSetUses) {
      current_set = CompileSet();
      set_uses = 1;
    }
    return current_set;
  }

  std::unique_ptr<RE2::Set> CompileSet() const {
    if (set_patterns.empty()) return nullptr;
    RE2::Options options = MatchOptions();
    options.set_max_mem(kSetMaxMem);
    auto set = std::make_unique<RE2::Set>(options, RE2::UNANCHORED);
    for (const std::string& pattern : set_patterns) {
      if (set->Add(pattern, nullptr) < 0) return nullptr;
    }
    return set->Compile() ? std::move(set) : nullptr;
  }

  // Appends the hits of every entry in `lines`, at most one per entry and
  // line. The RE2::Set runs over line-aligned chunks, so each candidate entry
  // is then searched only inside the chunks where the Set saw it: one DFA
  // pass over the text plus a little, however many entries match somewhere.
  void FindHits(const Lines& lines, bool synthetic, const RE2::Set* set, std::vector<Hit>* hits) const {
    std::string_view text = lines.text();
    std::vector<int> candidates;
    for (size_t begin = 0; begin < text.size();) {
      size_t newline = text.find('\n', std::min(text.size(), begin + kChunkBytes) - 1);
      size_t end = newline == std::string_view::npos ? text.size() : newline + 1;
      candidates.clear();
      bool prefiltered = false;
      if (set != nullptr) {
        RE2::Set::ErrorInfo error;
        prefiltered = set->Match(text.substr(begin, end - begin), &candidates, &error) ||
                      error.kind == RE2::Set::kNoError;
      }
      if (!prefiltered) {  // the Set's DFA ran out of memory: try every entry
        candidates.resize(entries.size());
        for (size_t i = 0; i < entries.size(); ++i) candidates[i] = static_cast<int>(i);
      }
      for (int index : candidates) {
        const RE2& re = *regexes[index];
        size_t pos = begin;
        re2::StringPiece match;
        while (pos < end && re.Match(text, pos, end, RE2::UNANCHORED, &match, 1)) {
          int line = lines.LineOf(static_cast<size_t>(match.data() - text.data()));
          hits->push_back(Hit{index, line, synthetic});
          pos = lines.NextLineStart(line);
        }
      }
      begin = end;
    }
  }

  // Expands $0..$9, $line and {cause} in the entry's summary template.
  std::string Summarize(int index, std::string_view line, std::string_view cause) const {
    const RE2& re = *regexes[index];
    std::array<re2::StringPiece, 10> groups;
    int n = std::min(re.NumberOfCapturingGroups() + 1, static_cast<int>(groups.size()));
    if (!re.Match(line, 0, line.size(), RE2::UNANCHORED, groups.data(), n)) n = 0;
    const std::string& tmpl = entries[index].summary;
    std::string out;
    for (size_t i = 0; i < tmpl.size(); ++i) {
      if (tmpl[i] == '$' && i + 1 < tmpl.size() && std::isdigit(static_cast<unsigned char>(tmpl[i + 1]))) {
        int group = tmpl[i + 1] - '0';
        if (group < n) out.append(groups[group].data(), groups[group].size());
        ++i;
      } else if (tmpl.compare(i, 5, "$line") == 0) {
        out += SanitizeUtf8Line(line, kMaxLineInSummary);
        i += 4;
      } else if (tmpl.compare(i, 7, "{cause}") == 0) {
        out += cause;
        i += 6;
      } else {
        out += tmpl[i];
      }
    }
    // Empty capture groups leave "()" or doubled spaces behind.
    for (size_t at; (at = out.find(" ()")) != std::string::npos;) out.erase(at, 3);
    for (size_t at; (at = out.find("()")) != std::string::npos;) out.erase(at, 2);
    return SanitizeUtf8Line(out, kMaxSummaryBytes);
  }
};

Result<CrashClassifier> CrashClassifier::Create(std::vector<CatalogEntry> entries) {
  auto impl = std::make_shared<Impl>();
  RE2::Options options = MatchOptions();
  for (const CatalogEntry& entry : entries) {
    // (?m): ^ and $ are line bounds, as a per-line reading of the log implies.
    std::string pattern = "(?m)" + entry.pattern;
    auto re = std::make_unique<RE2>(pattern, options);
    if (!re->ok()) {
      return InvalidArgumentError("crash pattern catalog " + entry.origin + ": entry '" + entry.id +
                                  "': invalid RE2 pattern: " + re->error());
    }
    impl->set_patterns.push_back(std::move(pattern));
    impl->regexes.push_back(std::move(re));
  }
  impl->current_set = impl->CompileSet();  // the one the first classifications use
  if (impl->current_set == nullptr) impl->set_patterns.clear();  // it would never compile
  impl->entries = std::move(entries);
  return CrashClassifier(std::move(impl));
}

Result<CrashClassifier> CrashClassifier::Load(const std::string& user_catalog_path) {
  ASSIGN_OR_RETURN(std::vector<CatalogEntry> builtin, BuiltinCrashCatalog());
  std::vector<CatalogEntry> user;
  if (!user_catalog_path.empty()) {
    ASSIGN_OR_RETURN(user, LoadCrashCatalogFile(user_catalog_path));
  }
  return Create(MergeCrashCatalogs(std::move(user), std::move(builtin)));
}

size_t CrashClassifier::entry_count() const { return impl_->entries.size(); }

Classification CrashClassifier::Classify(const CrashEvidence& evidence) const {
  const Impl& impl = *impl_;
  std::string_view output = evidence.output;
  if (output.size() > kMaxScanBytes) {
    output = output.substr(output.size() - kMaxScanBytes);
    size_t newline = output.find('\n');
    if (newline != std::string_view::npos) output.remove_prefix(newline + 1);
  }
  std::optional<SignalInfo> signal = evidence.signal ? ParseSignal(*evidence.signal) : std::nullopt;
  std::string synthetic_text = SyntheticEvidence(evidence, signal);
  Lines log(output);
  Lines synthetic(synthetic_text);

  std::vector<Hit> hits;
  const std::shared_ptr<const RE2::Set> set = impl.TakeSet();
  impl.FindHits(log, false, set.get(), &hits);
  if (!synthetic_text.empty()) impl.FindHits(synthetic, true, set.get(), &hits);

  std::vector<bool> demoted(static_cast<size_t>(log.count()), false);
  for (const Hit& hit : hits) {
    if (!hit.synthetic && impl.entries[hit.entry].scope == PatternScope::kDemote) demoted[hit.line] = true;
  }
  // Decisive hit: highest priority, then latest line (synthetic lines come
  // before the log), then the entry listed first.
  const Hit* best = nullptr;
  int best_priority = 0;
  int best_position = 0;
  for (const Hit& hit : hits) {
    const CatalogEntry& entry = impl.entries[hit.entry];
    if (entry.scope != PatternScope::kLine) continue;
    int priority = entry.priority - (!hit.synthetic && demoted[hit.line] ? kDemotePenalty : 0);
    int position = hit.synthetic ? -1 : hit.line;
    if (best == nullptr || priority > best_priority ||
        (priority == best_priority &&
         (position > best_position || (position == best_position && hit.entry < best->entry)))) {
      best = &hit;
      best_priority = priority;
      best_position = position;
    }
  }

  Classification result;
  if (best != nullptr) {
    const CatalogEntry& entry = impl.entries[best->entry];
    std::string_view line = best->synthetic ? synthetic.Line(best->line) : log.Line(best->line);
    result.category = entry.category;
    result.pattern_id = entry.id;
    result.summary = impl.Summarize(best->entry, line, "");
    result.matched_line = best->synthetic ? "" : SanitizeUtf8Line(line, kMaxLineBytes);
    result.suggested_load_config = entry.suggest;
    if (IsRefinable(entry.category)) {
      // A synthetic (exit/signal) cause sits at the end of the log.
      int anchor = best->synthetic ? log.count() - 1 : best->line;
      const Hit* context = nullptr;
      for (const Hit& hit : hits) {
        if (hit.synthetic || impl.entries[hit.entry].scope != PatternScope::kContext) continue;
        if (std::abs(hit.line - anchor) > kContextWindow) continue;
        if (context == nullptr || std::abs(hit.line - anchor) < std::abs(context->line - anchor)) context = &hit;
      }
      if (context != nullptr) {
        const CatalogEntry& refined = impl.entries[context->entry];
        result.category = refined.category;
        result.pattern_id = refined.id;
        result.summary = impl.Summarize(context->entry, log.Line(context->line), result.summary);
        result.suggested_load_config = refined.suggest;
      }
    }
  } else {
    result.pattern_id = "unmatched";
    for (int i = log.count() - 1; i >= 0; --i) {
      std::string cleaned = SanitizeUtf8Line(log.Line(i), kMaxLineBytes);
      if (!cleaned.empty() && cleaned != "...") {
        result.matched_line = std::move(cleaned);
        break;
      }
    }
    if (signal) {
      result.category = CrashCategory::kAbortedSignal;
      result.summary = "killed by signal " + signal->name;
    } else if (evidence.exit_code) {
      result.summary = "exited with status " + std::to_string(*evidence.exit_code);
    } else {
      result.summary = "load failed; no known error in the output";
    }
  }

  if (evidence.timed_out && result.category != CrashCategory::kTimeout) {
    // The supervisor killed a hung load: the hang ended the run. Keep the
    // last error seen, it is often why it hung.
    std::string cause = best != nullptr ? "; last error: " + result.summary : "";
    result.category = CrashCategory::kTimeout;
    result.pattern_id = "timeout.load";
    result.summary = SanitizeUtf8Line("load timed out (no progress before the load timeout)" + cause,
                                      kMaxSummaryBytes);
    if (best == nullptr) result.suggested_load_config.clear();
  }
  return result;
}

}  // namespace mw
