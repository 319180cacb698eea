#include "protocol/protocol.h"

#include <errno.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

namespace mw::protocol {
namespace {

using nlohmann::json;

// Deeper nesting than any real message has is refused before parsing, so a
// hostile line cannot make the parser (or the destructor) recurse deeply.
constexpr int kMaxNesting = 16;

bool NestingWithinLimit(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') {
      if (++depth > kMaxNesting) return false;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return true;
}

json DeviceKindJson(DeviceKind kind) { return std::string(DeviceKindName(kind)); }

struct Encoder {
  json operator()(const ProgressMessage& m) const {
    return {{"type", "progress"}, {"progress", m.progress}};
  }
  json operator()(const LoadedMessage& m) const {
    json devices = json::array();
    for (const auto& d : m.devices) {
      devices.push_back({{"name", d.name}, {"kind", DeviceKindJson(d.kind)}, {"memory_used", d.memory_used}});
    }
    json out = {{"type", "loaded"}, {"devices", devices},       {"n_ctx", m.n_ctx},
                {"load_ms", m.load_ms}, {"model_size", m.model_size}, {"n_params", m.n_params}};
    if (!m.socket.empty()) out["socket"] = m.socket;
    if (m.n_layers != 0) {
      out["n_layers"] = m.n_layers;
      out["offloaded_layers"] = m.offloaded_layers;
    }
    return out;
  }
  json operator()(const ErrorMessage& m) const {
    return {{"type", "error"}, {"code", m.code}, {"message", m.message}};
  }
  json operator()(const ProbeMessage& m) const {
    json devices = json::array();
    for (const auto& d : m.devices) {
      devices.push_back({{"name", d.name},
                         {"description", d.description},
                         {"kind", DeviceKindJson(d.kind)},
                         {"memory_free", d.memory_free},
                         {"memory_total", d.memory_total}});
      if (!d.backend.empty()) devices.back()["backend"] = d.backend;
    }
    json backends = json::array();
    for (const auto& b : m.backends) {
      backends.push_back({{"name", b.name}, {"state", b.state}, {"reason", b.reason}, {"devices", b.devices}});
    }
    return {{"type", "probe"}, {"devices", devices}, {"backends", backends}};
  }
  json operator()(const MetadataMessage& m) const {
    return {{"type", "metadata"},
            {"architecture", m.architecture},
            {"name", m.name},
            {"parameter_count", m.parameter_count},
            {"file_type", m.file_type},
            {"quantization", m.quantization},
            {"context_length", m.context_length},
            {"file_size", m.file_size},
            {"tensor_count", m.tensor_count},
            {"block_count", m.block_count},
            {"embedding_length", m.embedding_length},
            {"head_count", m.head_count},
            {"head_count_kv", m.head_count_kv},
            {"key_length", m.key_length},
            {"value_length", m.value_length},
            {"vocab_size", m.vocab_size},
            {"tensor_bytes", m.tensor_bytes}};
  }
  json operator()(const StoppedMessage&) const { return {{"type", "stopped"}}; }
  json operator()(const ReadyMessage& m) const { return {{"type", "ready"}, {"socket", m.socket}}; }
  json operator()(const StandbyMessage&) const { return {{"type", "standby"}}; }
};

// Typed field access that reports the field by name instead of throwing.
class Fields {
 public:
  Fields(const json& object, std::string_view type) : object_(object), type_(type) {}

  Status String(const char* key, std::string* out, bool required = true) const {
    auto it = object_.find(key);
    if (it == object_.end()) return required ? Missing(key) : Status::Ok();
    if (!it->is_string()) return Wrong(key, "a string");
    *out = it->get<std::string>();
    return Status::Ok();
  }
  Status Unsigned(const char* key, uint64_t* out, bool required = true) const {
    auto it = object_.find(key);
    if (it == object_.end()) return required ? Missing(key) : Status::Ok();
    if (it->is_number_unsigned()) {
      *out = it->get<uint64_t>();
    } else if (it->is_number_integer() && it->get<int64_t>() >= 0) {
      *out = static_cast<uint64_t>(it->get<int64_t>());
    } else {
      return Wrong(key, "a non-negative integer");
    }
    return Status::Ok();
  }
  Status Signed(const char* key, int64_t* out, bool required = true) const {
    auto it = object_.find(key);
    if (it == object_.end()) return required ? Missing(key) : Status::Ok();
    if (it->is_number_integer() && !it->is_number_unsigned()) {
      *out = it->get<int64_t>();
    } else if (it->is_number_unsigned() &&
               it->get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      *out = static_cast<int64_t>(it->get<uint64_t>());
    } else {
      return Wrong(key, "an integer");
    }
    return Status::Ok();
  }
  Status Kind(const char* key, DeviceKind* out) const {
    std::string name;
    RETURN_IF_ERROR(String(key, &name));
    Result<DeviceKind> kind = ParseDeviceKind(name);
    if (!kind.ok()) return kind.status().WithContext(std::string(type_) + " message");
    *out = *kind;
    return Status::Ok();
  }
  Result<const json*> Array(const char* key) const {
    auto it = object_.find(key);
    if (it == object_.end()) return Missing(key);
    if (!it->is_array()) return Wrong(key, "an array");
    return &*it;
  }

 private:
  Status Missing(const char* key) const {
    return InvalidArgumentError(std::string(type_) + " message: missing field '" + key + "'");
  }
  Status Wrong(const char* key, const char* what) const {
    return InvalidArgumentError(std::string(type_) + " message: field '" + key + "' must be " + what);
  }
  const json& object_;
  std::string_view type_;
};

Result<Message> DecodeObject(const json& j) {
  auto type_it = j.find("type");
  if (type_it == j.end() || !type_it->is_string()) {
    return InvalidArgumentError("protocol line has no string field 'type'");
  }
  const std::string type = type_it->get<std::string>();
  Fields f(j, type);
  if (type == "progress") {
    auto it = j.find("progress");
    if (it == j.end() || !it->is_number()) return InvalidArgumentError("progress message: field 'progress' must be a number");
    double p = it->get<double>();
    if (!std::isfinite(p) || p < 0 || p > 1) {
      return InvalidArgumentError("progress message: 'progress' must be within [0, 1]");
    }
    return Message(ProgressMessage{p});
  }
  if (type == "loaded") {
    LoadedMessage m;
    ASSIGN_OR_RETURN(const json* devices, f.Array("devices"));
    for (const json& d : *devices) {
      if (!d.is_object()) return InvalidArgumentError("loaded message: each device must be an object");
      Fields df(d, "loaded device");
      DeviceUsage u;
      RETURN_IF_ERROR(df.String("name", &u.name));
      RETURN_IF_ERROR(df.Kind("kind", &u.kind));
      RETURN_IF_ERROR(df.Unsigned("memory_used", &u.memory_used));
      m.devices.push_back(std::move(u));
    }
    RETURN_IF_ERROR(f.Signed("n_ctx", &m.n_ctx));
    RETURN_IF_ERROR(f.Signed("load_ms", &m.load_ms));
    RETURN_IF_ERROR(f.Unsigned("model_size", &m.model_size, /*required=*/false));
    RETURN_IF_ERROR(f.Unsigned("n_params", &m.n_params, /*required=*/false));
    RETURN_IF_ERROR(f.String("socket", &m.socket, /*required=*/false));
    RETURN_IF_ERROR(f.Signed("n_layers", &m.n_layers, /*required=*/false));
    RETURN_IF_ERROR(f.Signed("offloaded_layers", &m.offloaded_layers, /*required=*/false));
    return Message(std::move(m));
  }
  if (type == "error") {
    ErrorMessage m;
    RETURN_IF_ERROR(f.String("code", &m.code));
    RETURN_IF_ERROR(f.String("message", &m.message));
    return Message(std::move(m));
  }
  if (type == "probe") {
    ProbeMessage m;
    ASSIGN_OR_RETURN(const json* devices, f.Array("devices"));
    for (const json& d : *devices) {
      if (!d.is_object()) return InvalidArgumentError("probe message: each device must be an object");
      Fields df(d, "probe device");
      DeviceInfo info;
      RETURN_IF_ERROR(df.String("name", &info.name));
      RETURN_IF_ERROR(df.String("description", &info.description, /*required=*/false));
      RETURN_IF_ERROR(df.Kind("kind", &info.kind));
      RETURN_IF_ERROR(df.Unsigned("memory_free", &info.memory_free));
      RETURN_IF_ERROR(df.Unsigned("memory_total", &info.memory_total));
      RETURN_IF_ERROR(df.String("backend", &info.backend, /*required=*/false));
      m.devices.push_back(std::move(info));
    }
    if (j.contains("backends")) {
      ASSIGN_OR_RETURN(const json* backends, f.Array("backends"));
      for (const json& b : *backends) {
        if (!b.is_object()) return InvalidArgumentError("probe message: each backend must be an object");
        Fields bf(b, "probe backend");
        BackendInfo info;
        RETURN_IF_ERROR(bf.String("name", &info.name));
        RETURN_IF_ERROR(bf.String("state", &info.state));
        RETURN_IF_ERROR(bf.String("reason", &info.reason, /*required=*/false));
        RETURN_IF_ERROR(bf.Signed("devices", &info.devices, /*required=*/false));
        m.backends.push_back(std::move(info));
      }
    }
    return Message(std::move(m));
  }
  if (type == "metadata") {
    MetadataMessage m;
    RETURN_IF_ERROR(f.String("architecture", &m.architecture));
    RETURN_IF_ERROR(f.String("name", &m.name, /*required=*/false));
    RETURN_IF_ERROR(f.Unsigned("parameter_count", &m.parameter_count));
    RETURN_IF_ERROR(f.Signed("file_type", &m.file_type, /*required=*/false));
    RETURN_IF_ERROR(f.String("quantization", &m.quantization, /*required=*/false));
    RETURN_IF_ERROR(f.Signed("context_length", &m.context_length, /*required=*/false));
    RETURN_IF_ERROR(f.Unsigned("file_size", &m.file_size));
    RETURN_IF_ERROR(f.Signed("tensor_count", &m.tensor_count, /*required=*/false));
    RETURN_IF_ERROR(f.Signed("block_count", &m.block_count, /*required=*/false));
    RETURN_IF_ERROR(f.Signed("embedding_length", &m.embedding_length, /*required=*/false));
    RETURN_IF_ERROR(f.Signed("head_count", &m.head_count, /*required=*/false));
    RETURN_IF_ERROR(f.Signed("head_count_kv", &m.head_count_kv, /*required=*/false));
    RETURN_IF_ERROR(f.Signed("key_length", &m.key_length, /*required=*/false));
    RETURN_IF_ERROR(f.Signed("value_length", &m.value_length, /*required=*/false));
    RETURN_IF_ERROR(f.Signed("vocab_size", &m.vocab_size, /*required=*/false));
    RETURN_IF_ERROR(f.Unsigned("tensor_bytes", &m.tensor_bytes, /*required=*/false));
    return Message(std::move(m));
  }
  if (type == "stopped") return Message(StoppedMessage{});
  if (type == "standby") return Message(StandbyMessage{});
  if (type == "ready") {
    ReadyMessage m;
    RETURN_IF_ERROR(f.String("socket", &m.socket));
    return Message(std::move(m));
  }
  std::string shown = type.substr(0, 64);
  return InvalidArgumentError("unknown protocol message type '" + shown + "'");
}

}  // namespace

std::string_view DeviceKindName(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::kCpu: return "cpu";
    case DeviceKind::kGpu: return "gpu";
    case DeviceKind::kIgpu: return "igpu";
    case DeviceKind::kAccel: return "accel";
  }
  return "cpu";
}

Result<DeviceKind> ParseDeviceKind(std::string_view name) {
  if (name == "cpu") return DeviceKind::kCpu;
  if (name == "gpu") return DeviceKind::kGpu;
  if (name == "igpu") return DeviceKind::kIgpu;
  if (name == "accel") return DeviceKind::kAccel;
  return InvalidArgumentError("unknown device kind '" + std::string(name.substr(0, 32)) +
                              "' (expected cpu, gpu, igpu or accel)");
}

std::string_view MessageTypeName(const Message& message) {
  static constexpr std::string_view kNames[] = {"progress", "loaded",   "error",
                                                "probe",    "metadata", "stopped", "ready", "standby"};
  return kNames[message.index()];
}

std::string EncodeMessage(const Message& message) {
  json j = std::visit(Encoder{}, message);
  std::string line = j.dump(-1, ' ', false, json::error_handler_t::replace);
  line.push_back('\n');
  return line;
}

namespace {

// One line of the protocol (a message, or the `load` command after its
// prefix) as a JSON object, within the line and nesting limits. `what`
// names the line in the errors ("protocol line", "'load' line").
Result<json> ParseObjectLine(std::string_view line, const std::string& what) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > kMaxLineBytes) {
    return ResourceExhaustedError(what + " of " + std::to_string(line.size()) + " bytes exceeds the limit of " +
                                  std::to_string(kMaxLineBytes));
  }
  if (!NestingWithinLimit(line)) return InvalidArgumentError(what + " is nested too deeply");
  json j = json::parse(line.begin(), line.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgumentError(what + " is not valid JSON");
  if (!j.is_object()) return InvalidArgumentError(what + " is not a JSON object");
  return j;
}

}  // namespace

Result<Message> DecodeMessage(std::string_view line) {
  try {
    ASSIGN_OR_RETURN(const json j, ParseObjectLine(line, "protocol line"));
    return DecodeObject(j);
  } catch (const std::exception& e) {  // get<> on odd values; bad_alloc
    return InvalidArgumentError(std::string("protocol line rejected: ") + e.what());
  }
}

std::string EncodeLoadCommand(const LoadCommand& command) {
  const json j = {{"model", command.model}, {"config", command.config_json}, {"verify", command.verify}};
  return std::string(kLoadCommand) + " " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<LoadCommand> DecodeLoadCommand(std::string_view line) {
  const std::string prefix = std::string(kLoadCommand) + " ";
  if (line.substr(0, prefix.size()) != prefix) return InvalidArgumentError("not a 'load' command line");
  line.remove_prefix(prefix.size());
  try {
    ASSIGN_OR_RETURN(const json j, ParseObjectLine(line, "'load' line"));
    Fields f(j, "load");
    LoadCommand command;
    RETURN_IF_ERROR(f.String("model", &command.model));
    RETURN_IF_ERROR(f.String("config", &command.config_json));
    RETURN_IF_ERROR(f.String("verify", &command.verify));
    return command;
  } catch (const std::exception& e) {
    return InvalidArgumentError(std::string("'load' line rejected: ") + e.what());
  }
}

Status WriteMessage(int fd, const Message& message) {
  const std::string line = EncodeMessage(message);
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd, line.data() + done, line.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE) return UnavailableError("protocol pipe closed by the reader");
      return InternalError(std::string("write to protocol fd failed: ") + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

void LineBuffer::Append(std::string_view bytes) {
  while (!bytes.empty()) {
    size_t nl = bytes.find('\n');
    std::string_view chunk = nl == std::string_view::npos ? bytes : bytes.substr(0, nl);
    if (!discarding_) {
      if (partial_.size() + chunk.size() > max_line_bytes_) {
        discarding_ = true;
        partial_.clear();
        ready_.push_back(ResourceExhaustedError("protocol line exceeds " + std::to_string(max_line_bytes_) +
                                                " bytes; dropped"));
      } else {
        partial_.append(chunk);
      }
    }
    if (nl == std::string_view::npos) break;
    if (!discarding_) {
      if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
      ready_.push_back(std::move(partial_));
    }
    partial_.clear();
    discarding_ = false;
    bytes.remove_prefix(nl + 1);
  }
}

std::optional<Result<std::string>> LineBuffer::Next() {
  if (ready_.empty()) return std::nullopt;
  Result<std::string> line = std::move(ready_.front());
  ready_.pop_front();
  return line;
}

std::optional<std::string> LineBuffer::TakeRemainder() {
  bool had = !partial_.empty() && !discarding_;
  std::string rest = std::move(partial_);
  partial_.clear();
  discarding_ = false;
  if (!had) return std::nullopt;
  return rest;
}

}  // namespace mw::protocol
