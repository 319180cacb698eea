// Internal to loadconfig/: typed, range-checked reads of one JSON object's
// keys, each failure an InvalidArgument naming the key. Not a public header.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "loadconfig/loadconfig.h"

namespace mw::loadconfig::internal {

// "a JSON string" / "the number 3" / ... for messages.
std::string DescribeValue(const nlohmann::json& v);

// Each getter: kInvalidArgument "load_config key 'K' must be ..., got ...".
Status KeyError(std::string_view key, std::string_view expected, const nlohmann::json& got);

Result<int64_t> ReadInt(std::string_view key, const nlohmann::json& v, int64_t min, int64_t max);
Result<bool> ReadBool(std::string_view key, const nlohmann::json& v);
Result<std::string> ReadString(std::string_view key, const nlohmann::json& v);

// A string that must be one of `choices` (case-sensitive); the message lists them.
template <typename E>
Result<E> ReadChoice(std::string_view key, const nlohmann::json& v,
                     std::initializer_list<std::pair<std::string_view, E>> choices) {
  std::string names;
  for (const auto& [name, value] : choices) {
    if (v.is_string() && v.get_ref<const std::string&>() == name) return value;
    if (!names.empty()) names += ", ";
    names += "\"" + std::string(name) + "\"";
  }
  return KeyError(key, "one of " + names, v);
}

// The per-engine parsers; `object` is a JSON object whose keys have all been
// checked against the engine's known keys. load_timeout_s is read by the caller.
Result<LlamaConfig> ParseLlamaConfig(const nlohmann::json& object);
Result<CommandConfig> ParseCommandConfig(const nlohmann::json& object);

// Keys of each engine, sorted, without the common load_timeout_s.
extern const std::vector<std::string> kLlamaKeys;
extern const std::vector<std::string> kCommandKeys;

}  // namespace mw::loadconfig::internal
