// The worker <-> server pipe protocol (wire format: docs/worker-protocol.md).
//
// Worker -> server: one JSON object per line ('\n'-terminated) on the file
// descriptor named by the environment variable MW_PROTOCOL_FD (default 3),
// never on stdout/stderr (those are the log). Server -> worker: command lines
// on the worker's stdin; "stop" asks it to free the model and exit, EOF on
// stdin means the same.
//
// This header is the only place that knows the wire format. Callers work on
// the native structs below; JSON stays inside protocol.cpp.
//
// Contract:
//   EncodeMessage  never fails; returns exactly one line ending in '\n'.
//   DecodeMessage  never throws and never crashes on any input (garbage,
//                  binary, truncated, huge numbers, wrong types): it returns
//                  kInvalidArgument naming what was wrong, or kResourceExhausted
//                  for a line over kMaxLineBytes. Unknown extra fields are
//                  ignored (forward compatible); an unknown "type" is an error.
//   LineBuffer     splits a byte stream into lines with a bounded buffer.
// All functions are thread-compatible (no shared state); LineBuffer is not
// thread-safe (one reader owns it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"

namespace mw::protocol {

// The longest protocol line accepted (a probe of many devices fits easily).
inline constexpr size_t kMaxLineBytes = 64 * 1024;
// Default fd of the protocol pipe inside the worker; env MW_PROTOCOL_FD overrides.
inline constexpr int kDefaultProtocolFd = 3;
inline constexpr const char* kProtocolFdEnv = "MW_PROTOCOL_FD";
// Server -> worker commands (a line on stdin).
inline constexpr std::string_view kStopCommand = "stop";
// After `ready` (verify "request", SPEC §16): the request's first token
// exists, the load is verified without a decode of its own...
inline constexpr std::string_view kVerifiedCommand = "verified";
// ...or the request ended without one: run the short verification decode now.
inline constexpr std::string_view kVerifyCommand = "verify";
// To a pre-started worker (`load --standby`, after its `standby`): the load,
// as one line "load " + a JSON object {"model","config","verify"}
// (EncodeLoadCommand). Nothing else is read before it; "stop" or EOF instead
// ends the worker.
inline constexpr std::string_view kLoadCommand = "load";
struct LoadCommand {
  std::string model;
  std::string config_json = "{}";
  std::string verify = "decode";
  bool operator==(const LoadCommand&) const = default;
};
// "load {...}\n": one line (JSON escapes any newline in the values).
std::string EncodeLoadCommand(const LoadCommand& command);
// Parses the line (with or without '\n'); kInvalidArgument if it is not one.
Result<LoadCommand> DecodeLoadCommand(std::string_view line);

// Error codes a worker puts in ErrorMessage::code. Stable strings.
inline constexpr const char* kErrInvalidConfig = "invalid_config";       // load_config rejected
inline constexpr const char* kErrInvalidArguments = "invalid_arguments"; // bad worker command line
inline constexpr const char* kErrFileNotFound = "file_not_found";        // model path missing/unreadable
inline constexpr const char* kErrInvalidModel = "invalid_model";         // not a (valid) GGUF
inline constexpr const char* kErrModelLoadFailed = "model_load_failed";  // llama.cpp refused the model
inline constexpr const char* kErrContextFailed = "context_failed";       // model loaded, context not created
inline constexpr const char* kErrInternal = "internal";

enum class DeviceKind { kCpu, kGpu, kIgpu, kAccel };
// "cpu" | "gpu" | "igpu" | "accel"
std::string_view DeviceKindName(DeviceKind kind);
Result<DeviceKind> ParseDeviceKind(std::string_view name);

// Memory a loaded model holds on one device (bytes; best effort).
struct DeviceUsage {
  std::string name;
  DeviceKind kind = DeviceKind::kCpu;
  uint64_t memory_used = 0;
  bool operator==(const DeviceUsage&) const = default;
};

// One device the ggml backends see.
struct DeviceInfo {
  std::string name;         // the engine's device id, e.g. "CPU", "CUDA0", "Vulkan0"
  std::string description;
  DeviceKind kind = DeviceKind::kCpu;
  uint64_t memory_free = 0;
  uint64_t memory_total = 0;
  std::string backend;      // the ggml backend: "CPU", "CUDA", "Vulkan", "ROCm", "Metal"... ("" from an old worker)
  bool operator==(const DeviceInfo&) const = default;
};

// A GPU backend library the worker found (SPEC §15), and what became of it.
// state: "loaded" (devices > 0), "skipped" (its driver or runtime is not on
// this machine, or it sees no device), "failed" (it is there and failed to
// initialise). reason: why not loaded, "" when loaded.
struct BackendInfo {
  std::string name;   // "CUDA", "Vulkan", ...
  std::string state;
  std::string reason;
  int64_t devices = 0;
  bool operator==(const BackendInfo&) const = default;
};

// {"type":"progress","progress":0.42}; progress in [0, 1].
struct ProgressMessage {
  double progress = 0;
  bool operator==(const ProgressMessage&) const = default;
};

// {"type":"loaded","devices":[...],"n_ctx":N,"load_ms":N,"socket":"PATH"}
// Sent once model and context exist (and, with verify "decode", the first
// decode ran); the worker then holds them, serving, until stopped.
struct LoadedMessage {
  std::vector<DeviceUsage> devices;
  int64_t n_ctx = 0;
  int64_t load_ms = 0;
  uint64_t model_size = 0;   // bytes of weights (llama_model_size)
  uint64_t n_params = 0;
  std::string socket = {};   // the Unix socket where the engine answers llama.cpp's HTTP API; empty: none
  int64_t n_layers = 0;          // the model's repeating layers (0: not reported)
  int64_t offloaded_layers = 0;  // of those, how many went to a GPU device (SPEC §15)
  bool operator==(const LoadedMessage&) const = default;
};

// {"type":"ready","socket":"PATH"}: verify "request" only (SPEC §16): the
// engine listens (model and context exist, its task loop runs) but has not
// decoded yet. The server forwards the request that asked for the load; the
// worker then waits for `verified` or `verify` on stdin and sends `loaded`.
struct ReadyMessage {
  std::string socket;
  bool operator==(const ReadyMessage&) const = default;
};
// {"type":"standby"}: a pre-started worker (`load --standby`) has its
// libraries and ggml backends loaded and waits on stdin for its `load` line.
struct StandbyMessage {
  bool operator==(const StandbyMessage&) const = default;
};
// {"type":"error","code":"...","message":"..."}; the worker exits non-zero after it.
struct ErrorMessage {
  std::string code;
  std::string message;
  bool operator==(const ErrorMessage&) const = default;
};

// {"type":"probe","devices":[...],"backends":[...]}
struct ProbeMessage {
  std::vector<DeviceInfo> devices;
  std::vector<BackendInfo> backends;  // GPU backend libraries only (absent from an old worker)
  bool operator==(const ProbeMessage&) const = default;
};

// {"type":"metadata",...}: GGUF header facts, no tensor data read.
struct MetadataMessage {
  std::string architecture;     // general.architecture, e.g. "llama"
  std::string name;             // general.name, may be empty
  uint64_t parameter_count = 0; // sum of tensor element counts
  int64_t file_type = -1;       // general.file_type (llama_ftype), -1 if absent
  std::string quantization;     // readable file type, e.g. "F16", "Q4_K_M"
  int64_t context_length = 0;   // <arch>.context_length, 0 if absent
  uint64_t file_size = 0;       // bytes
  int64_t tensor_count = 0;
  // Shape for the memory estimate (SPEC §12); 0 where the file does not say.
  int64_t block_count = 0;       // <arch>.block_count (layers)
  int64_t embedding_length = 0;  // <arch>.embedding_length
  int64_t head_count = 0;        // <arch>.attention.head_count
  int64_t head_count_kv = 0;     // <arch>.attention.head_count_kv (head_count if absent)
  int64_t key_length = 0;        // <arch>.attention.key_length (embedding_length / head_count if absent)
  int64_t value_length = 0;      // <arch>.attention.value_length (likewise)
  int64_t vocab_size = 0;        // <arch>.vocab_size, else the tokenizer's token count
  uint64_t tensor_bytes = 0;     // sum of the tensors' data sizes (the weights)
  bool operator==(const MetadataMessage&) const = default;
};

// {"type":"stopped"}: the model was freed after a stop request; exit 0 follows.
struct StoppedMessage {
  bool operator==(const StoppedMessage&) const = default;
};

using Message = std::variant<ProgressMessage, LoadedMessage, ErrorMessage, ProbeMessage,
                             MetadataMessage, StoppedMessage, ReadyMessage, StandbyMessage>;

// "progress" | "loaded" | "error" | "probe" | "metadata" | "stopped" | "ready" | "standby"
std::string_view MessageTypeName(const Message& message);

// One JSON object followed by '\n'. Strings are escaped; invalid UTF-8 in
// strings is replaced, never an error.
std::string EncodeMessage(const Message& message);

// Parses one line (with or without the trailing '\n' / "\r\n").
Result<Message> DecodeMessage(std::string_view line);

// Writes EncodeMessage(message) to fd completely (retrying EINTR / short
// writes). kUnavailable if the pipe is closed (EPIPE), kInternal otherwise.
Status WriteMessage(int fd, const Message& message);

// Splits a byte stream into lines. A line longer than kMaxLineBytes (or
// max_line_bytes) is dropped whole and reported once as kResourceExhausted,
// so a misbehaving writer cannot grow the buffer without bound.
class LineBuffer {
 public:
  explicit LineBuffer(size_t max_line_bytes = kMaxLineBytes) : max_line_bytes_(max_line_bytes) {}

  // Feeds bytes just read.
  void Append(std::string_view bytes);
  // Next complete line (without '\n'), an error for an overlong line, or
  // nullopt when no complete line is buffered.
  std::optional<Result<std::string>> Next();
  // At EOF: the unterminated tail, if any (then the buffer is empty).
  std::optional<std::string> TakeRemainder();

 private:
  size_t max_line_bytes_;
  std::string partial_;
  bool discarding_ = false;  // inside an overlong line: drop until '\n'
  std::deque<Result<std::string>> ready_;
};

}  // namespace mw::protocol
