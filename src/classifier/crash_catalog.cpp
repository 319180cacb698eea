#include "classifier/crash_catalog.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <toml++/toml.h>
#include <utility>

namespace mw {
namespace internal {
extern const std::string_view kBuiltinCrashCatalog;  // builtin_crash_catalog.cpp (generated)
}  // namespace internal

namespace {

struct CategoryInfo {
  CrashCategory category;
  std::string_view name;
  int priority;
};
constexpr std::array<CategoryInfo, 9> kCategories = {{
    {CrashCategory::kFlashAttention, "flash_attention", 90},
    {CrashCategory::kGpuContext, "gpu_context", 60},
    {CrashCategory::kDeviceUnavailable, "device_unavailable", 62},
    {CrashCategory::kOutOfMemory, "out_of_memory", 80},
    {CrashCategory::kAssertion, "assertion", 50},
    {CrashCategory::kAbortedSignal, "aborted_signal", 30},
    {CrashCategory::kUnsupportedModel, "unsupported_model", 70},
    {CrashCategory::kTimeout, "timeout", 40},
    {CrashCategory::kOther, "other", 20},
}};

constexpr int kMaxPriority = 1000;

std::string EntryContext(std::string_view origin, std::string_view id, size_t index) {
  std::ostringstream out;
  out << "crash pattern catalog " << origin << ": entry ";
  if (id.empty()) {
    out << "#" << index + 1;
  } else {
    out << "'" << id << "'";
  }
  return out.str();
}

Result<std::vector<ConfigSetting>> ParseSuggest(const toml::node& node, const std::string& where) {
  const toml::table* table = node.as_table();
  if (table == nullptr) return InvalidArgumentError(where + ": 'suggest' must be a table");
  std::vector<ConfigSetting> settings;
  for (const auto& [key, value] : *table) {
    ConfigSetting setting{std::string(key.str()), false};
    if (auto b = value.value_exact<bool>()) {
      setting.value = *b;
    } else if (auto i = value.value_exact<int64_t>()) {
      setting.value = *i;
    } else if (auto d = value.value_exact<double>()) {
      setting.value = *d;
    } else if (auto s = value.value_exact<std::string>()) {
      setting.value = *s;
    } else {
      return InvalidArgumentError(where + ": suggest." + setting.key +
                                  " must be a boolean, integer, float or string");
    }
    settings.push_back(std::move(setting));
  }
  return settings;
}

Result<std::string> RequiredString(const toml::table& table, std::string_view key, const std::string& where) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return InvalidArgumentError(where + ": missing '" + std::string(key) + "'");
  auto value = node->value_exact<std::string>();
  if (!value) return InvalidArgumentError(where + ": '" + std::string(key) + "' must be a string");
  return *value;
}

Result<CatalogEntry> ParseEntry(const toml::table& table, std::string_view origin, size_t index) {
  std::string where = EntryContext(origin, "", index);
  if (auto id = table.get("id"); id != nullptr && id->is_string()) {
    where = EntryContext(origin, *id->value_exact<std::string>(), index);
  }
  static const std::set<std::string_view> kKnownKeys = {"id",      "category", "regex", "summary",
                                                        "priority", "scope",   "suggest"};
  for (const auto& [key, value] : table) {
    if (kKnownKeys.count(key.str()) == 0) {
      return InvalidArgumentError(where + ": unknown key '" + std::string(key.str()) +
                                  "' (known: id, category, regex, summary, priority, scope, suggest)");
    }
  }
  CatalogEntry entry;
  entry.origin = std::string(origin);
  ASSIGN_OR_RETURN(entry.id, RequiredString(table, "id", where));
  if (entry.id.empty()) return InvalidArgumentError(where + ": 'id' is empty");
  ASSIGN_OR_RETURN(std::string category, RequiredString(table, "category", where));
  std::optional<CrashCategory> parsed = ParseCrashCategory(category);
  if (!parsed) {
    return InvalidArgumentError(where + ": unknown category '" + category +
                                "' (known: flash_attention, gpu_context, device_unavailable, out_of_memory, assertion, "
                                "aborted_signal, unsupported_model, timeout, other)");
  }
  entry.category = *parsed;
  ASSIGN_OR_RETURN(entry.pattern, RequiredString(table, "regex", where));
  ASSIGN_OR_RETURN(entry.summary, RequiredString(table, "summary", where));
  entry.priority = DefaultCrashPriority(entry.category);
  if (const toml::node* priority = table.get("priority")) {
    auto value = priority->value_exact<int64_t>();
    if (!value || *value < 0 || *value > kMaxPriority) {
      return InvalidArgumentError(where + ": 'priority' must be an integer in 0..1000");
    }
    entry.priority = static_cast<int>(*value);
  }
  if (const toml::node* scope = table.get("scope")) {
    auto value = scope->value_exact<std::string>();
    if (value && *value == "line") {
      entry.scope = PatternScope::kLine;
    } else if (value && *value == "context") {
      entry.scope = PatternScope::kContext;
    } else if (value && *value == "demote") {
      entry.scope = PatternScope::kDemote;
    } else {
      return InvalidArgumentError(where + ": 'scope' must be \"line\", \"context\" or \"demote\"");
    }
  }
  if (const toml::node* suggest = table.get("suggest")) {
    ASSIGN_OR_RETURN(entry.suggest, ParseSuggest(*suggest, where));
  }
  return entry;
}

}  // namespace

std::string_view CrashCategoryName(CrashCategory category) {
  for (const CategoryInfo& info : kCategories) {
    if (info.category == category) return info.name;
  }
  return "other";
}

std::optional<CrashCategory> ParseCrashCategory(std::string_view name) {
  for (const CategoryInfo& info : kCategories) {
    if (info.name == name) return info.category;
  }
  return std::nullopt;
}

int DefaultCrashPriority(CrashCategory category) {
  for (const CategoryInfo& info : kCategories) {
    if (info.category == category) return info.priority;
  }
  return 20;
}

bool IsDeviceLevelCategory(std::string_view name) {
  return name == "gpu_context" || name == "device_unavailable";
}

Result<std::vector<CatalogEntry>> ParseCrashCatalog(std::string_view toml_text, std::string_view origin) {
  toml::table root;
#if TOML_EXCEPTIONS
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream out;
    out << "crash pattern catalog " << origin << ":" << e.source().begin.line << ":"
        << e.source().begin.column << ": " << e.description();
    return InvalidArgumentError(out.str());
  }
#else
  toml::parse_result parsed = toml::parse(toml_text, origin);
  if (!parsed) {
    std::ostringstream out;
    out << "crash pattern catalog " << origin << ":" << parsed.error().source().begin.line << ":"
        << parsed.error().source().begin.column << ": " << parsed.error().description();
    return InvalidArgumentError(out.str());
  }
  root = std::move(parsed).table();
#endif
  for (const auto& [key, value] : root) {
    if (key.str() != "pattern") {
      return InvalidArgumentError("crash pattern catalog " + std::string(origin) + ": unknown top-level key '" +
                                  std::string(key.str()) + "' (entries are [[pattern]] tables)");
    }
  }
  std::vector<CatalogEntry> entries;
  const toml::node* patterns = root.get("pattern");
  if (patterns == nullptr) return entries;  // an empty catalog is valid
  const toml::array* array = patterns->as_array();
  if (array == nullptr) {
    return InvalidArgumentError("crash pattern catalog " + std::string(origin) +
                                ": 'pattern' must be an array of tables ([[pattern]])");
  }
  std::set<std::string> ids;
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::table* table = array->get(i)->as_table();
    if (table == nullptr) {
      return InvalidArgumentError(EntryContext(origin, "", i) + ": must be a table");
    }
    ASSIGN_OR_RETURN(CatalogEntry entry, ParseEntry(*table, origin, i));
    if (!ids.insert(entry.id).second) {
      return InvalidArgumentError(EntryContext(origin, entry.id, i) + ": duplicate id");
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

Result<std::vector<CatalogEntry>> LoadCrashCatalogFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    std::string message = "crash pattern catalog " + path + ": cannot open: " + std::strerror(err);
    if (err == ENOENT) return NotFoundError(message);
    if (err == EACCES) return PermissionDeniedError(message);
    return UnavailableError(message);
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return UnavailableError("crash pattern catalog " + path + ": read error");
  return ParseCrashCatalog(content.str(), path);
}

std::string_view BuiltinCrashCatalogText() { return internal::kBuiltinCrashCatalog; }

Result<std::vector<CatalogEntry>> BuiltinCrashCatalog() {
  Result<std::vector<CatalogEntry>> entries = ParseCrashCatalog(BuiltinCrashCatalogText(), "built-in");
  if (!entries.ok()) return InternalError(entries.status().message());
  return entries;
}

std::vector<CatalogEntry> MergeCrashCatalogs(std::vector<CatalogEntry> user, std::vector<CatalogEntry> builtin) {
  std::vector<CatalogEntry> merged;
  merged.reserve(user.size() + builtin.size());
  for (CatalogEntry& entry : user) {
    bool replaces_builtin = false;
    for (CatalogEntry& original : builtin) {
      if (original.id == entry.id) {
        original = std::move(entry);  // keeps the built-in's place in the order
        replaces_builtin = true;
        break;
      }
    }
    if (!replaces_builtin) merged.push_back(std::move(entry));
  }
  for (CatalogEntry& entry : builtin) merged.push_back(std::move(entry));
  return merged;
}

}  // namespace mw
