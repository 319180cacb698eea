#include "api/v1/openai_codec.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <ctime>
#include <map>

#include "api/errors.h"
#include "api/json_codec.h"
#include "api/json_limits.h"
#include "common/duration.h"

namespace mw::api {
namespace {

using nlohmann::json;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Deep enough for any real request (tool schemas included), shallow enough
// for dump()'s recursion on an HTTP thread (api/json_limits.h).
constexpr int kMaxNesting = 256;

// Parses JSON from a client or an engine; discarded when malformed or too deep.
json ParseLimited(std::string_view text) {
  bool too_deep = false;
  json value = ParseJsonWithDepthLimit(text, kMaxNesting, &too_deep);
  return too_deep ? json(json::value_t::discarded) : value;
}

Status Bad(const std::string& message) { return InvalidArgumentError(message); }

std::string TypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::null: return "null";
    default: return "an unsupported value";
  }
}

bool Present(const json& o, const char* key) { return o.contains(key) && !o.at(key).is_null(); }

Status CheckMessages(const json& o) {
  if (!o.contains("messages")) return Bad("'messages' is required: a non-empty array of {\"role\", \"content\"}");
  const json& messages = o.at("messages");
  if (!messages.is_array() || messages.empty()) {
    return Bad("'messages' must be a non-empty array of {\"role\", \"content\"}, got " + TypeName(messages) +
               (messages.is_array() ? " with no elements" : ""));
  }
  static const char* kRoles[] = {"system", "user", "assistant", "tool", "developer", "function"};
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return Bad(at + " must be an object, got " + TypeName(m));
    if (!m.contains("role") || !m.at("role").is_string()) return Bad(at + ".role must be a string");
    const std::string& role = m.at("role").get_ref<const std::string&>();
    if (std::none_of(std::begin(kRoles), std::end(kRoles), [&](const char* r) { return role == r; })) {
      return Bad(at + ".role '" + role.substr(0, 40) +
                 "' is not one of system, user, assistant, tool, developer, function");
    }
    const bool may_be_empty = role == "assistant" && Present(m, "tool_calls");
    if (!m.contains("content") || m.at("content").is_null()) {
      if (may_be_empty || role == "assistant") continue;
      return Bad(at + ".content is required for role '" + role + "'");
    }
    const json& content = m.at("content");
    if (content.is_string()) continue;
    if (!content.is_array()) return Bad(at + ".content must be a string or an array of parts, got " + TypeName(content));
    for (size_t k = 0; k < content.size(); ++k) {
      const json& part = content[k];
      if (!part.is_object() || !part.contains("type") || !part.at("type").is_string()) {
        return Bad(at + ".content[" + std::to_string(k) + "] must be an object with a string 'type'");
      }
    }
  }
  return Status::Ok();
}

// A prompt or an embeddings input: a string, or a non-empty array of
// strings, token ids or arrays of token ids.
Status CheckTextOrTokens(const json& o, const char* key) {
  const std::string k = key;
  if (!o.contains(key) || o.at(key).is_null()) return Bad("'" + k + "' is required: a string or an array of strings");
  const json& v = o.at(key);
  if (v.is_string()) return Status::Ok();
  if (!v.is_array() || v.empty()) {
    return Bad("'" + k + "' must be a string or a non-empty array, got " + TypeName(v) +
               (v.is_array() ? " with no elements" : ""));
  }
  for (const json& e : v) {
    bool ok = e.is_string() || e.is_number_integer() ||
              (e.is_array() && std::all_of(e.begin(), e.end(), [](const json& t) { return t.is_number_integer(); }));
    if (!ok) return Bad("'" + k + "' elements must be strings, token ids or arrays of token ids, got " + TypeName(e));
  }
  return Status::Ok();
}

Status CheckMaxTokens(const json& o, const char* key) {
  if (!Present(o, key)) return Status::Ok();
  const json& v = o.at(key);
  const std::string range = "an integer in [1, " + std::to_string(kMaxTokensLimit) + "]";
  if (!v.is_number_integer()) return Bad("'" + std::string(key) + "' must be " + range + ", got " + TypeName(v));
  bool in_range = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(kMaxTokensLimit)
                                         : v.get<int64_t>() >= 1 && v.get<int64_t>() <= kMaxTokensLimit;
  if (!in_range || (v.is_number_unsigned() && v.get<uint64_t>() < 1)) {
    return Bad("'" + std::string(key) + "' must be " + range + ", got " + Dump(v));
  }
  return Status::Ok();
}

Status CheckN(const json& o) {
  if (!Present(o, "n")) return Status::Ok();
  const json& v = o.at("n");
  if (!v.is_number_integer()) return Bad("'n' must be an integer, got " + TypeName(v));
  int64_t n = v.is_number_unsigned() && v.get<uint64_t>() > 1000 ? 1001 : v.get<int64_t>();
  if (n < 1) return Bad("'n' must be at least 1, got " + Dump(v));
  if (n > 1) return Bad("'n' > 1 is not supported: ask for one choice per request (got " + Dump(v) + ")");
  return Status::Ok();
}

// --- the fields the engine may receive (docs/api.md, SPEC §20) ---

enum class FieldType { kChecked, kBool, kNumber, kInteger, kString, kStop, kObject, kArray, kObjectOrArray };

struct FieldRule {
  std::string_view name;
  FieldType type;
  int64_t min = 0;  // kInteger only
  int64_t max = 0;
};

constexpr int64_t kAnyInt = INT64_MAX;  // as `max`: no range (min is ignored)

// Fields of every endpoint; kChecked: read and checked by ParseOpenAiRequest itself.
constexpr FieldRule kCommonFields[] = {
    {"model", FieldType::kChecked}, {"keep_alive", FieldType::kChecked}, {"timeout", FieldType::kChecked},
    {"user", FieldType::kString},
};
// Chat and text completions (OpenAI's fields, then llama.cpp's sampling ones).
constexpr FieldRule kGenerationFields[] = {
    {"stream", FieldType::kChecked},
    {"stream_options", FieldType::kChecked},
    {"max_tokens", FieldType::kChecked},
    {"max_completion_tokens", FieldType::kChecked},
    {"n", FieldType::kChecked},
    {"n_predict", FieldType::kChecked},
    {"n_probs", FieldType::kInteger, 0, kMaxProbs},
    {"temperature", FieldType::kNumber},
    {"top_p", FieldType::kNumber},
    {"top_k", FieldType::kInteger, 0, 1 << 20},
    {"min_p", FieldType::kNumber},
    {"typical_p", FieldType::kNumber},
    {"top_n_sigma", FieldType::kNumber},
    {"min_keep", FieldType::kInteger, 0, 1 << 20},
    {"stop", FieldType::kStop},
    {"seed", FieldType::kInteger, 0, kAnyInt},
    {"presence_penalty", FieldType::kNumber},
    {"frequency_penalty", FieldType::kNumber},
    {"repeat_penalty", FieldType::kNumber},
    {"repeat_last_n", FieldType::kInteger, -1, 1 << 20},
    {"logit_bias", FieldType::kObjectOrArray},
    {"mirostat", FieldType::kInteger, 0, 2},
    {"mirostat_tau", FieldType::kNumber},
    {"mirostat_eta", FieldType::kNumber},
    {"dynatemp_range", FieldType::kNumber},
    {"dynatemp_exponent", FieldType::kNumber},
    {"xtc_probability", FieldType::kNumber},
    {"xtc_threshold", FieldType::kNumber},
    {"dry_multiplier", FieldType::kNumber},
    {"dry_base", FieldType::kNumber},
    {"dry_allowed_length", FieldType::kInteger, 0, 1 << 20},
    {"dry_penalty_last_n", FieldType::kInteger, -1, 1 << 20},
    {"dry_sequence_breakers", FieldType::kArray},
    {"samplers", FieldType::kArray},
    {"ignore_eos", FieldType::kBool},
    {"grammar", FieldType::kString},
    {"json_schema", FieldType::kObject},
    {"response_format", FieldType::kObject},
    {"cache_prompt", FieldType::kBool},
    {"n_keep", FieldType::kInteger, -1, kMaxTokensLimit},
    {"t_max_predict_ms", FieldType::kInteger, 0, 24LL * 3600 * 1000},
    {"timings_per_token", FieldType::kBool},
    {"post_sampling_probs", FieldType::kBool},
    {"return_tokens", FieldType::kBool},
};
constexpr FieldRule kChatFields[] = {
    {"messages", FieldType::kChecked},
    {"logprobs", FieldType::kBool},
    {"top_logprobs", FieldType::kInteger, 0, kMaxProbs},
    {"tools", FieldType::kArray},
    {"tool_choice", FieldType::kObjectOrArray},  // or a string: see CheckField
    {"parallel_tool_calls", FieldType::kBool},
    {"chat_template_kwargs", FieldType::kObject},
    {"reasoning_format", FieldType::kString},
};
constexpr FieldRule kCompletionFields[] = {
    {"prompt", FieldType::kChecked},
    {"logprobs", FieldType::kInteger, 0, kMaxProbs},  // the number of alternatives, in text completions
    {"suffix", FieldType::kString},
    {"n_indent", FieldType::kInteger, 0, 1 << 20},
};
constexpr FieldRule kEmbeddingFields[] = {
    {"input", FieldType::kChecked},
    {"encoding_format", FieldType::kString},
    {"dimensions", FieldType::kInteger, 1, 1 << 20},
};

template <size_t N>
const FieldRule* FindRule(const FieldRule (&rules)[N], std::string_view name) {
  for (const FieldRule& r : rules) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

const FieldRule* RuleFor(OpenAiEndpoint endpoint, std::string_view name) {
  if (const FieldRule* r = FindRule(kCommonFields, name)) return r;
  switch (endpoint) {
    case OpenAiEndpoint::kChatCompletions:
      if (const FieldRule* r = FindRule(kChatFields, name)) return r;
      return FindRule(kGenerationFields, name);
    case OpenAiEndpoint::kCompletions:
      if (const FieldRule* r = FindRule(kCompletionFields, name)) return r;
      return FindRule(kGenerationFields, name);
    case OpenAiEndpoint::kEmbeddings: return FindRule(kEmbeddingFields, name);
  }
  return nullptr;
}

Status CheckInteger(const std::string& name, const json& v, int64_t min, int64_t max) {
  if (max == kAnyInt) {
    if (v.is_number_integer()) return Status::Ok();
    return Bad("'" + name + "' must be an integer, got " + TypeName(v));
  }
  const std::string range = "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  if (!v.is_number_integer()) return Bad("'" + name + "' must be " + range + ", got " + TypeName(v));
  const bool in_range = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(max) && max >= 0 &&
                                                     (min <= 0 || v.get<uint64_t>() >= static_cast<uint64_t>(min))
                                               : v.get<int64_t>() >= min && v.get<int64_t>() <= max;
  if (!in_range) return Bad("'" + name + "' must be " + range + ", got " + Dump(v));
  return Status::Ok();
}

Status CheckField(OpenAiEndpoint endpoint, const std::string& name, const json& v) {
  const FieldRule* rule = RuleFor(endpoint, name);
  if (rule == nullptr) {
    return Bad("unknown field '" + Echo(name) + "' for " + std::string(OpenAiPath(endpoint)) +
               " (docs/api.md lists the fields passed to the engine)");
  }
  if (v.is_null() || rule->type == FieldType::kChecked) return Status::Ok();
  bool ok = true;
  const char* want = "";
  switch (rule->type) {
    case FieldType::kChecked: break;
    case FieldType::kBool: ok = v.is_boolean(); want = "a boolean"; break;
    case FieldType::kNumber: ok = v.is_number(); want = "a number"; break;
    case FieldType::kInteger: return CheckInteger(name, v, rule->min, rule->max);
    case FieldType::kString: ok = v.is_string(); want = "a string"; break;
    case FieldType::kStop:
      ok = v.is_string() || (v.is_array() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_string(); }));
      want = "a string or an array of strings";
      break;
    case FieldType::kObject: ok = v.is_object(); want = "an object"; break;
    case FieldType::kArray: ok = v.is_array(); want = "an array"; break;
    case FieldType::kObjectOrArray:
      ok = v.is_object() || v.is_array() || (name == "tool_choice" && v.is_string());
      want = name == "tool_choice" ? "a string or an object" : "an object or an array";
      break;
  }
  if (!ok) return Bad("'" + name + "' must be " + want + ", got " + TypeName(v));
  return Status::Ok();
}

}  // namespace

std::string_view OpenAiPath(OpenAiEndpoint endpoint) {
  switch (endpoint) {
    case OpenAiEndpoint::kChatCompletions: return "/v1/chat/completions";
    case OpenAiEndpoint::kCompletions: return "/v1/completions";
    case OpenAiEndpoint::kEmbeddings: return "/v1/embeddings";
  }
  return "/v1/chat/completions";
}

Result<OpenAiRequest> ParseOpenAiRequest(OpenAiEndpoint endpoint, std::string_view body) {
  try {
    bool too_deep = false;
    json o = ParseJsonWithDepthLimit(body, kMaxNesting, &too_deep);
    if (too_deep) return Bad("the request body is nested too deeply (more than " + std::to_string(kMaxNesting) + " levels)");
    if (o.is_discarded()) return Bad("the request body is not valid JSON");
    if (!o.is_object()) return Bad("the request body must be a JSON object, got " + TypeName(o));
    OpenAiRequest r;
    if (!o.contains("model") || !o.at("model").is_string() || o.at("model").get_ref<const std::string&>().empty()) {
      return Bad("'model' is required: the name of a registered model (GET /v1/models lists them)");
    }
    r.model = o.at("model").get<std::string>();
    if (Present(o, "stream")) {
      if (!o.at("stream").is_boolean()) return Bad("'stream' must be a boolean, got " + TypeName(o.at("stream")));
      r.stream = o.at("stream").get<bool>();
    }
    if (Present(o, "stream_options")) {
      const json& so = o.at("stream_options");
      if (!so.is_object()) return Bad("'stream_options' must be an object, got " + TypeName(so));
      if (Present(so, "include_usage")) {
        if (!so.at("include_usage").is_boolean()) return Bad("'stream_options.include_usage' must be a boolean");
        r.include_usage = so.at("include_usage").get<bool>();
      }
    }
    if (Present(o, "keep_alive")) {
      const json& k = o.at("keep_alive");
      Result<int64_t> ms = k.is_string()   ? ParseDurationMs(k.get_ref<const std::string&>())
                           : k.is_number() ? DurationFromSeconds(k.get<double>())
                                           : Result<int64_t>(Bad("a string like \"5m\" or a number of seconds"));
      if (!ms.ok()) return Bad("'keep_alive': " + ms.status().message());
      r.keep_alive_ms = *ms;
    }
    if (Present(o, "timeout")) {  // SPEC §19: ours, like keep_alive
      const json& t = o.at("timeout");
      Result<int64_t> ms = t.is_string()   ? ParseDurationMs(t.get_ref<const std::string&>())
                           : t.is_number() ? DurationFromSeconds(t.get<double>())
                                           : Result<int64_t>(Bad("a string like \"30s\" or a number of seconds"));
      if (!ms.ok()) return Bad("'timeout': " + ms.status().message());
      if (*ms <= 0) return Bad("'timeout' must be more than 0 seconds");
      r.timeout_ms = *ms;
    }
    for (const auto& [key, value] : o.items()) RETURN_IF_ERROR(CheckField(endpoint, key, value));
    o.erase("keep_alive");  // ours, not the engine's
    o.erase("timeout");
    switch (endpoint) {
      case OpenAiEndpoint::kChatCompletions: RETURN_IF_ERROR(CheckMessages(o)); break;
      case OpenAiEndpoint::kCompletions: RETURN_IF_ERROR(CheckTextOrTokens(o, "prompt")); break;
      case OpenAiEndpoint::kEmbeddings:
        RETURN_IF_ERROR(CheckTextOrTokens(o, "input"));
        if (r.stream) return Bad("'stream' is not supported for embeddings");
        break;
    }
    if (endpoint != OpenAiEndpoint::kEmbeddings) {
      RETURN_IF_ERROR(CheckMaxTokens(o, "max_tokens"));
      RETURN_IF_ERROR(CheckMaxTokens(o, "max_completion_tokens"));
      RETURN_IF_ERROR(CheckMaxTokens(o, "n_predict"));  // llama.cpp's name for max_tokens
      RETURN_IF_ERROR(CheckN(o));
      if (!r.stream) {
        // Asked of the engine as a stream and assembled here.
        r.assemble = true;
        o["stream"] = true;
        o["stream_options"] = json{{"include_usage", true}};
      }
    }
    r.upstream_body = Dump(o);
    return r;
  } catch (const std::exception& e) {  // nlohmann type errors: never past this edge
    return Bad(std::string("invalid request: ") + e.what());
  }
}

std::string WithModelName(std::string_view json_text, std::string_view model) {
  if (json_text.find("\"model\"") == std::string_view::npos) return std::string(json_text);
  json value = ParseLimited(json_text);
  if (!value.is_object() || !value.contains("model")) return std::string(json_text);
  value["model"] = std::string(model);
  return Dump(value);
}

std::string_view OpenAiErrorType(int http_status) {
  if (http_status == 401) return "authentication_error";
  if (http_status == 403) return "permission_error";
  if (http_status == 429) return "rate_limit_error";
  if (http_status >= 500) return "server_error";
  return "invalid_request_error";
}

std::string OpenAiErrorJson(int http_status, std::string_view code, std::string_view message,
                            std::string_view extra_json) {
  json error = {{"message", std::string(message)},
                {"type", std::string(OpenAiErrorType(http_status))},
                {"code", std::string(code)},
                {"param", nullptr}};
  if (!extra_json.empty()) {
    json extra = ParseLimited(extra_json);
    if (extra.is_object()) {
      for (auto& [k, v] : extra.items()) error[k] = v;
    }
  }
  return Dump(json{{"error", std::move(error)}});
}

std::string OpenAiLoadErrorJson(int http_status, std::string_view code, const LoadResult& result) {
  json api = json::parse(LoadResultToJson(result, code), nullptr, false);
  json extra = api.is_object() && api.contains("error") ? api["error"] : json::object();
  extra.erase("code");
  extra.erase("message");
  return OpenAiErrorJson(http_status, code, result.message, Dump(extra));
}

std::string OpenAiErrorEvent(int http_status, std::string_view code, std::string_view message) {
  return "data: " + OpenAiErrorJson(http_status, code, message) + "\n\n";
}

int64_t IsoToUnixSeconds(std::string_view iso) {
  std::tm tm{};
  std::string s(iso.substr(0, 19));
  if (s.size() < 19 || ::strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return 0;
  return static_cast<int64_t>(::timegm(&tm));
}

namespace {
json ModelObject(const ModelView& m) {
  return {{"id", m.model_name},
          {"object", "model"},
          {"created", IsoToUnixSeconds(m.created_at)},
          {"owned_by", "modelwarden"},
          {"compatibility_status", m.compatibility_status},
          {"loaded", m.loaded}};
}
}  // namespace

std::string OpenAiModelListJson(const std::vector<ModelView>& models) {
  json data = json::array();
  for (const auto& m : models) data.push_back(ModelObject(m));
  return Dump(json{{"object", "list"}, {"data", std::move(data)}});
}

std::string OpenAiModelJson(const ModelView& model) { return Dump(ModelObject(model)); }

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string SanitizeUtf8(std::string_view s) {
  if (IsValidUtf8(s)) return std::string(s);
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(s.size() + 16);
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len != 0 && i + len <= s.size() && IsValidUtf8(s.substr(i, len))) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append(kReplacement);
      ++i;
    }
  }
  return out;
}

std::string HeaderSafe(std::string_view text, size_t max) {
  std::string out;
  for (char ch : text) {
    if (out.size() >= max) break;
    out.push_back(ch >= 0x20 && ch < 0x7f ? ch : ' ');
  }
  return out;
}

void SseParser::Feed(std::string_view bytes) {
  if (pos_ > 0 && pos_ == buffer_.size()) {
    buffer_.clear();
    pos_ = 0;
  } else if (pos_ > 65536) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  for (char ch : bytes) {
    if (ch != '\r') buffer_.push_back(ch);
  }
}

std::optional<std::string> SseParser::Next() {
  size_t end = buffer_.find("\n\n", pos_);
  if (end == std::string::npos) return std::nullopt;
  std::string event = buffer_.substr(pos_, end - pos_);
  pos_ = end + 2;
  return event;
}

std::optional<std::string> SseData(std::string_view event) {
  std::optional<std::string> data;
  size_t start = 0;
  while (start <= event.size()) {
    size_t end = event.find('\n', start);
    if (end == std::string_view::npos) end = event.size();
    std::string_view line = event.substr(start, end - start);
    if (line.substr(0, 5) == "data:") {
      std::string_view value = line.substr(5);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (data) {
        *data += '\n';
        *data += value;
      } else {
        data = std::string(value);
      }
    }
    start = end + 1;
  }
  return data;
}

// --- StreamAssembler ---

struct StreamAssembler::State {
  json top = json::object();
  std::map<int64_t, json> choices;  // by index
  json usage;                       // null until a chunk carries it
};

namespace {

bool Concatenates(const std::string& key) {
  return key == "content" || key == "reasoning_content" || key == "refusal" || key == "arguments" || key == "text";
}

void Merge(json& dst, const json& src);

// Arrays of objects with an "index" (tool_calls) merge element by element;
// other arrays (logprobs content) append.
void MergeArray(json& dst, const json& src) {
  bool indexed = !src.empty() && std::all_of(src.begin(), src.end(), [](const json& e) {
    return e.is_object() && e.contains("index") && e.at("index").is_number_integer();
  });
  if (!indexed) {
    for (const auto& e : src) dst.push_back(e);
    return;
  }
  for (const auto& e : src) {
    auto it = std::find_if(dst.begin(), dst.end(), [&](const json& d) {
      return d.is_object() && d.contains("index") && d.at("index") == e.at("index");
    });
    if (it == dst.end()) {
      dst.push_back(e);
    } else {
      Merge(*it, e);
    }
  }
}

void Merge(json& dst, const json& src) {
  for (auto it = src.begin(); it != src.end(); ++it) {
    const std::string& key = it.key();
    const json& value = it.value();
    if (!dst.contains(key) || dst[key].is_null()) {
      dst[key] = value;
    } else if (value.is_null()) {
      continue;
    } else if (value.is_string() && dst[key].is_string() && Concatenates(key)) {
      dst[key] = dst[key].get<std::string>() + value.get<std::string>();
    } else if (value.is_object() && dst[key].is_object()) {
      Merge(dst[key], value);
    } else if (value.is_array() && dst[key].is_array()) {
      MergeArray(dst[key], value);
    } else {
      dst[key] = value;
    }
  }
}

}  // namespace

StreamAssembler::~StreamAssembler() { delete state_; }

Status StreamAssembler::Add(std::string_view data_json) {
  json chunk = ParseLimited(data_json);
  if (chunk.is_discarded() || !chunk.is_object()) return Bad("an event of the engine's stream is not a JSON object");
  if (state_ == nullptr) state_ = new State();
  ++chunks_;
  try {
    for (auto it = chunk.begin(); it != chunk.end(); ++it) {
      if (it.key() == "choices") {
        if (!it.value().is_array()) continue;
        for (const json& c : it.value()) {
          if (!c.is_object()) continue;
          int64_t index = c.contains("index") && c.at("index").is_number_integer() ? c.at("index").get<int64_t>() : 0;
          json& merged = state_->choices[index];
          if (merged.is_null()) merged = json{{"index", index}};
          for (auto f = c.begin(); f != c.end(); ++f) {
            if (f.key() == "index") continue;
            if (f.key() == "delta") {
              if (!merged.contains("message")) merged["message"] = json::object();
              if (f.value().is_object()) Merge(merged["message"], f.value());
            } else {
              json one = json::object();
              one[f.key()] = f.value();
              Merge(merged, one);
            }
          }
        }
      } else if (it.key() == "usage") {
        if (!it.value().is_null()) state_->usage = it.value();
      } else {
        state_->top[it.key()] = it.value();
      }
    }
  } catch (const std::exception& e) {
    return Bad(std::string("an event of the engine's stream could not be merged: ") + e.what());
  }
  return Status::Ok();
}

std::string StreamAssembler::Finish(std::string_view model) const {
  State empty;
  const State& s = state_ != nullptr ? *state_ : empty;
  json out = s.top;
  if (!model.empty()) out["model"] = std::string(model);
  const bool chat = endpoint_ == OpenAiEndpoint::kChatCompletions;
  out["object"] = chat ? "chat.completion" : "text_completion";
  json choices = json::array();
  for (const auto& [index, merged] : s.choices) {
    json c = merged;
    if (chat) {
      if (!c.contains("message")) c["message"] = json::object();
      json& message = c["message"];
      if (!message.contains("role") || message["role"].is_null()) message["role"] = "assistant";
      if (!message.contains("content")) message["content"] = nullptr;
    } else {
      if (!c.contains("text")) c["text"] = "";
    }
    if (!c.contains("finish_reason")) c["finish_reason"] = nullptr;
    if (!c.contains("logprobs")) c["logprobs"] = nullptr;
    choices.push_back(std::move(c));
  }
  out["choices"] = std::move(choices);
  if (!s.usage.is_null()) out["usage"] = s.usage;
  return Dump(out);
}

// --- engine errors ---

OpenAiError EngineErrorToOpenAi(int engine_status, std::string_view engine_body) {
  const int status = engine_status >= 400 && engine_status < 500 ? engine_status : 502;
  json body = ParseLimited(engine_body);
  std::string message;
  std::string code;
  if (body.is_object() && body.contains("error")) {
    const json& e = body.at("error");
    if (e.is_object()) {
      if (e.contains("message") && e.at("message").is_string()) message = e.at("message").get<std::string>();
      if (e.contains("code") && e.at("code").is_string()) code = e.at("code").get<std::string>();
    } else if (e.is_string()) {
      message = e.get<std::string>();
    }
  }
  if (message.empty()) {
    std::string text = SanitizeUtf8(engine_body.substr(0, 500));
    message = text.empty() ? "the engine answered HTTP " + std::to_string(engine_status) + " with no message"
                           : "the engine answered HTTP " + std::to_string(engine_status) + ": " + text;
  }
  if (status == 502) {
    code = "engine_error";
    message = "the model's engine failed (HTTP " + std::to_string(engine_status) + "): " + message;
  } else if (code.empty()) {
    code = status == 400 ? "invalid_request" : status == 404 ? "not_found" : "engine_error";
  }
  return {status, OpenAiErrorJson(status, code, message)};
}

std::optional<OpenAiError> ApiErrorToOpenAi(int http_status, std::string_view body) {
  json j = ParseLimited(body);
  if (!j.is_object() || !j.contains("error") || !j.at("error").is_object()) return std::nullopt;
  const json& e = j.at("error");
  if (e.contains("type") || !e.contains("code") || !e.at("code").is_string()) return std::nullopt;
  json extra = e;
  extra.erase("code");
  extra.erase("message");
  std::string message = e.contains("message") && e.at("message").is_string() ? e.at("message").get<std::string>() : "";
  return OpenAiError{http_status, OpenAiErrorJson(http_status, e.at("code").get<std::string>(), message, Dump(extra))};
}

std::optional<OpenAiError> ErrorInEventData(std::string_view data_json) {
  if (data_json.find("\"error\"") == std::string_view::npos) return std::nullopt;
  json data = ParseLimited(data_json);
  if (!data.is_object() || !data.contains("error") || data.at("error").is_null()) return std::nullopt;
  int status = 500;
  if (data.at("error").is_object() && data.at("error").contains("code") && data.at("error").at("code").is_number_integer()) {
    status = data.at("error").at("code").get<int>();
  }
  return EngineErrorToOpenAi(status, data_json);
}

}  // namespace mw::api
