#include "loadconfig/loadconfig.h"

#include <re2/re2.h>

#include <algorithm>

#include "loadconfig/json_reader.h"

namespace mw::loadconfig {
namespace internal {

using nlohmann::json;

const std::vector<std::string> kCommandKeys = {"argv", "env", "health_path", "preset", "ready_pattern"};

namespace {
constexpr size_t kMaxArgs = 4096;
constexpr size_t kMaxStringBytes = 16 * 1024;
}  // namespace

std::string DescribeValue(const json& v) {
  std::string shown = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (shown.size() > 80) shown = shown.substr(0, 77) + "...";
  switch (v.type()) {
    case json::value_t::string: return "the string " + shown;
    case json::value_t::boolean: return "the boolean " + shown;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "the number " + shown;
    case json::value_t::array: return "a list";
    case json::value_t::object: return "an object";
    case json::value_t::null: return "null";
    default: return "an unsupported value";
  }
}

Status KeyError(std::string_view key, std::string_view expected, const json& got) {
  return InvalidArgumentError("load_config key '" + std::string(key) + "' must be " + std::string(expected) +
                              ", got " + DescribeValue(got));
}

Result<int64_t> ReadInt(std::string_view key, const json& v, int64_t min, int64_t max) {
  std::string expected = "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  int64_t n = 0;
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > static_cast<uint64_t>(max)) return KeyError(key, expected, v);
    n = static_cast<int64_t>(v.get<uint64_t>());
  } else if (v.is_number_integer()) {
    n = v.get<int64_t>();
  } else {
    return KeyError(key, expected, v);
  }
  if (n < min || n > max) return KeyError(key, expected, v);
  return n;
}

Result<bool> ReadBool(std::string_view key, const json& v) {
  if (!v.is_boolean()) return KeyError(key, "true or false", v);
  return v.get<bool>();
}

Result<std::string> ReadString(std::string_view key, const json& v) {
  if (!v.is_string()) return KeyError(key, "a string", v);
  const std::string& s = v.get_ref<const std::string&>();
  if (s.size() > kMaxStringBytes) return KeyError(key, "a string of at most 16 KiB", v);
  if (s.find('\0') != std::string::npos) return KeyError(key, "a string without NUL bytes", v);
  return s;
}

Result<CommandConfig> ParseCommandConfig(const json& o) {
  CommandConfig c;
  auto argv = o.find("argv");
  auto preset = o.find("preset");
  if (argv == o.end() && preset == o.end()) {
    return InvalidArgumentError("load_config for the command engine needs 'preset' (the name of an [engines.NAME] "
                                "in the server's configuration file)");
  }
  if (argv != o.end() && preset != o.end()) {
    return InvalidArgumentError("load_config for the command engine takes 'preset' or 'argv', not both");
  }
  if (preset != o.end()) {
    ASSIGN_OR_RETURN(std::string name, ReadString("preset", *preset));
    if (name.empty() || name.size() > 64) return KeyError("preset", "the name of an [engines.NAME] preset", *preset);
    c.preset = std::move(name);
  } else {
    if (!argv->is_array() || argv->empty() || argv->size() > kMaxArgs) {
      return KeyError("argv", "a non-empty list of strings", *argv);
    }
    for (const json& a : *argv) {
      if (!a.is_string()) return KeyError("argv", "a list of strings only", a);
      ASSIGN_OR_RETURN(std::string s, ReadString("argv", a));
      c.argv.push_back(std::move(s));
    }
    if (c.argv.front().empty()) return InvalidArgumentError("load_config key 'argv': the program (argv[0]) is empty");
  }
  if (auto it = o.find("ready_pattern"); it != o.end()) {
    ASSIGN_OR_RETURN(std::string pattern, ReadString("ready_pattern", *it));
    RE2::Options options;
    options.set_log_errors(false);
    RE2 re(pattern, options);
    if (!re.ok()) {
      return InvalidArgumentError("load_config key 'ready_pattern' is not a valid RE2 pattern: " + re.error());
    }
    c.ready_pattern = std::move(pattern);
  }
  if (auto it = o.find("health_path"); it != o.end()) {
    ASSIGN_OR_RETURN(std::string path, ReadString("health_path", *it));
    bool clean = std::none_of(path.begin(), path.end(),
                              [](char ch) { return static_cast<unsigned char>(ch) <= ' ' || ch == 0x7f; });
    if (path.empty() || path[0] != '/' || !clean) {
      return KeyError("health_path", "a URL path starting with '/' without spaces or control characters", *it);
    }
    c.health_path = std::move(path);
  }
  if (auto it = o.find("env"); it != o.end()) {
    if (!it->is_object()) return KeyError("env", "an object of string values", *it);
    for (const auto& [name, value] : it->items()) {
      bool valid_name = !name.empty() && name.find('=') == std::string::npos && name.find('\0') == std::string::npos;
      if (!valid_name) return InvalidArgumentError("load_config key 'env': invalid variable name '" + name + "'");
      ASSIGN_OR_RETURN(std::string s, ReadString("env." + name, value));
      c.env.emplace(name, std::move(s));
    }
  }
  return c;
}

}  // namespace internal

using nlohmann::json;

std::string_view EngineName(Engine engine) { return engine == Engine::kCommand ? "command" : "llama.cpp"; }

Result<Engine> ParseEngine(std::string_view name) {
  if (name == "llama.cpp" || name == "llama_cpp" || name == "llamacpp") return Engine::kLlamaCpp;
  if (name == "command") return Engine::kCommand;
  return InvalidArgumentError("unknown engine '" + std::string(name.substr(0, 64)) +
                              "' (known engines: llama.cpp, command)");
}

std::string_view FlashAttnName(FlashAttn v) {
  switch (v) {
    case FlashAttn::kAuto: return "auto";
    case FlashAttn::kOn: return "on";
    case FlashAttn::kOff: return "off";
  }
  return "auto";
}

std::string_view SplitModeName(SplitMode v) {
  switch (v) {
    case SplitMode::kNone: return "none";
    case SplitMode::kLayer: return "layer";
    case SplitMode::kRow: return "row";
    case SplitMode::kTensor: return "tensor";
  }
  return "layer";
}

std::string_view PoolingName(Pooling v) {
  switch (v) {
    case Pooling::kNone: return "none";
    case Pooling::kMean: return "mean";
    case Pooling::kCls: return "cls";
    case Pooling::kLast: return "last";
    case Pooling::kRank: return "rank";
  }
  return "none";
}

std::string_view CacheTypeName(CacheType v) {
  switch (v) {
    case CacheType::kF32: return "f32";
    case CacheType::kF16: return "f16";
    case CacheType::kBF16: return "bf16";
    case CacheType::kQ8_0: return "q8_0";
    case CacheType::kQ4_0: return "q4_0";
    case CacheType::kQ4_1: return "q4_1";
    case CacheType::kIQ4_NL: return "iq4_nl";
    case CacheType::kQ5_0: return "q5_0";
    case CacheType::kQ5_1: return "q5_1";
  }
  return "f16";
}

bool IsQuantized(CacheType v) { return v != CacheType::kF32 && v != CacheType::kF16 && v != CacheType::kBF16; }

const std::vector<std::string>& KnownKeys(Engine engine) {
  static const std::vector<std::string> llama_keys = [] {
    // n_parallel and embeddings are read both as the engine's flags
    // (LlamaConfig) and as serving limits (LoadConfig): listed once.
    std::vector<std::string> keys = internal::kLlamaKeys;
    keys.push_back("load_timeout_s");
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return keys;
  }();
  static const std::vector<std::string> command_keys = [] {
    std::vector<std::string> keys = internal::kCommandKeys;
    keys.push_back("load_timeout_s");
    keys.push_back("n_parallel");
    keys.push_back("embeddings");
    std::sort(keys.begin(), keys.end());
    return keys;
  }();
  return engine == Engine::kCommand ? command_keys : llama_keys;
}

Result<LoadConfig> ValidateLoadConfig(Engine engine, std::string_view json_text) {
  if (json_text.size() > kMaxLoadConfigBytes) {
    return ResourceExhaustedError("load_config is " + std::to_string(json_text.size()) + " bytes; the limit is " +
                                  std::to_string(kMaxLoadConfigBytes));
  }
  if (json_text.find_first_not_of(" \t\r\n") == std::string_view::npos) json_text = "{}";
  try {
    json o = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
    if (o.is_discarded()) return InvalidArgumentError("load_config is not valid JSON");
    if (!o.is_object()) return InvalidArgumentError("load_config must be a JSON object, got " + internal::DescribeValue(o));

    const std::vector<std::string>& known = KnownKeys(engine);
    for (const auto& item : o.items()) {
      if (!std::binary_search(known.begin(), known.end(), item.key())) {
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        std::string shown = item.key().substr(0, 64);
        return InvalidArgumentError("unknown load_config key '" + shown + "' for engine " +
                                    std::string(EngineName(engine)) + "; known keys: " + list);
      }
    }
    std::optional<int64_t> timeout;
    if (auto it = o.find("load_timeout_s"); it != o.end()) {
      ASSIGN_OR_RETURN(timeout, internal::ReadInt("load_timeout_s", *it, 1, kMaxLoadTimeoutSeconds));
    }
    std::optional<int64_t> n_parallel;
    if (auto it = o.find("n_parallel"); it != o.end()) {
      ASSIGN_OR_RETURN(n_parallel, internal::ReadInt("n_parallel", *it, 1, kMaxParallel));
    }
    std::optional<bool> embeddings;
    if (auto it = o.find("embeddings"); it != o.end()) {
      ASSIGN_OR_RETURN(embeddings, internal::ReadBool("embeddings", *it));
    }
    std::string normalized = o.dump(-1, ' ', false, json::error_handler_t::replace);
    LoadConfig config;
    config.engine = engine;
    config.load_timeout_s = timeout;
    config.n_parallel = n_parallel;
    config.embeddings = embeddings;
    config.normalized_json = std::move(normalized);
    if (engine == Engine::kLlamaCpp) {
      ASSIGN_OR_RETURN(LlamaConfig llama, internal::ParseLlamaConfig(o));
      config.settings = std::move(llama);
      return config;
    }
    ASSIGN_OR_RETURN(CommandConfig command, internal::ParseCommandConfig(o));
    config.settings = std::move(command);
    return config;
  } catch (const std::exception& e) {  // nlohmann type errors, bad_alloc: never past this edge
    return InvalidArgumentError(std::string("load_config rejected: ") + e.what());
  }
}

Status CheckPlacement(const LlamaConfig& c, const std::vector<PresentDevice>& present) {
  std::string here;
  size_t gpus = 0;
  for (const PresentDevice& d : present) {
    here += (here.empty() ? "" : ", ") + d.id;
    if (d.gpu) ++gpus;
  }
  const std::string devices_here = " (devices here: " + (here.empty() ? std::string("none") : here) + ")";
  for (const std::string& id : c.devices) {
    bool found = false;
    for (const PresentDevice& d : present) found = found || d.id == id;
    if (!found) {
      return InvalidArgumentError("load_config key 'devices' names " + id + ", which this machine does not have" +
                                  devices_here);
    }
  }
  // main_gpu and tensor_split index the GPU devices in use: those of
  // `devices` when it is set.
  size_t usable = gpus;
  if (!c.devices.empty()) {
    usable = 0;
    for (const std::string& id : c.devices) {
      for (const PresentDevice& d : present) usable += (d.id == id && d.gpu) ? 1 : 0;
    }
  }
  if (c.main_gpu && *c.main_gpu > 0 && static_cast<size_t>(*c.main_gpu) >= usable) {
    return InvalidArgumentError("load_config key 'main_gpu' is " + std::to_string(*c.main_gpu) + ", but there are " +
                                std::to_string(usable) + " GPU device(s) to choose from" + devices_here);
  }
  for (size_t i = usable; i < c.tensor_split.size(); ++i) {
    if (c.tensor_split[i] > 0) {
      return InvalidArgumentError("load_config key 'tensor_split' gives a share to GPU " + std::to_string(i) +
                                  ", but there are " + std::to_string(usable) + " GPU device(s)" + devices_here);
    }
  }
  return Status::Ok();
}

Result<LoadConfig> ValidateLoadConfig(std::string_view engine, std::string_view json_text) {
  ASSIGN_OR_RETURN(Engine e, ParseEngine(engine));
  return ValidateLoadConfig(e, json_text);
}

}  // namespace mw::loadconfig
