// api/v1/openai_codec.h: the OpenAI-compatible /v1 wire format, at the edge
// (SPEC §10). Pure functions and small stateful parsers; no I/O, no httplib.
//
//   ParseOpenAiRequest   reads what the gate needs (model, stream,
//                        stream_options.include_usage, keep_alive), checks
//                        every field against the endpoint's list (docs/api.md:
//                        unknown fields, wrong types, out-of-range integers
//                        -> 400); builds the body the engine gets.
//   WithModelName        an answer's "model" set to the requested name (the
//                        engine reports its file path)
//   OpenAiErrorJson      {"error": {"message","type","code","param": null}}
//   SanitizeUtf8         invalid UTF-8 -> U+FFFD (engines may emit raw bytes)
//   SseParser            bytes -> complete server-sent events
//   StreamAssembler      chat.completion.chunk / text_completion chunks ->
//                        the one non-streaming answer (see docs/api.md: a
//                        non-streaming request is asked of the engine in its
//                        streaming form, so a generation that ran is never
//                        lost to an encoder error in the engine)
// Nothing here throws; everything is thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/model_api.h"
#include "common/status.h"

namespace mw::api {

enum class OpenAiEndpoint { kChatCompletions, kCompletions, kEmbeddings };
// "/v1/chat/completions", ...
std::string_view OpenAiPath(OpenAiEndpoint endpoint);

// Limits for max_tokens / max_completion_tokens / n_predict.
inline constexpr int64_t kMaxTokensLimit = 16 * 1024 * 1024;
// n_probs, top_logprobs and a text completion's logprobs: alternatives per
// token (OpenAI's own limit for top_logprobs; each costs ~100 bytes per token).
inline constexpr int64_t kMaxProbs = 20;
// A non-streamed answer (the engine's bytes, assembled or not) is refused
// beyond this: 502 response_too_large. Streamed answers are not held.
inline constexpr size_t kMaxAnswerBytes = 8u << 20;

struct OpenAiRequest {
  std::string model;
  bool stream = false;         // the client asked for server-sent events
  bool include_usage = false;  // stream_options.include_usage
  std::optional<int64_t> keep_alive_ms;
  std::optional<int64_t> timeout_ms;  // the request's "timeout" (SPEC §19): 504 past it
  // true: the engine is asked for the streaming form and the answer is
  // assembled here (chat and text completions without stream).
  bool assemble = false;
  std::string upstream_body;  // what the engine gets (keep_alive and timeout removed)
};

// kInvalidArgument with a message naming the field.
[[nodiscard]] Result<OpenAiRequest> ParseOpenAiRequest(OpenAiEndpoint endpoint, std::string_view body);

// A JSON object text with its "model" member (when it has one) set to
// `model`; any other text unchanged.
std::string WithModelName(std::string_view json_text, std::string_view model);

// The OpenAI error type for an HTTP status ("invalid_request_error", ...).
std::string_view OpenAiErrorType(int http_status);
// {"error": {"message", "type", "code", "param": null, ...extra}}; `extra_json`
// is a JSON object text whose members are added to "error", or empty.
std::string OpenAiErrorJson(int http_status, std::string_view code, std::string_view message,
                            std::string_view extra_json = {});
// A refused or failed on-demand load: the message plus the notes or the
// classification (as POST /api/orchestrate/load gives them) in "error".
std::string OpenAiLoadErrorJson(int http_status, std::string_view code, const LoadResult& result);
// The same as one server-sent event: "data: {...}\n\n".
std::string OpenAiErrorEvent(int http_status, std::string_view code, std::string_view message);

// GET /v1/models and GET /v1/models/{name}.
std::string OpenAiModelListJson(const std::vector<ModelView>& models);
std::string OpenAiModelJson(const ModelView& model);
// "2026-12-03T08:11:15.123Z" -> Unix seconds; 0 if unreadable.
int64_t IsoToUnixSeconds(std::string_view iso);

bool IsValidUtf8(std::string_view text);
// Every byte sequence that is not valid UTF-8 becomes U+FFFD.
std::string SanitizeUtf8(std::string_view text);
// A header value: printable ASCII only, at most `max` bytes.
std::string HeaderSafe(std::string_view text, size_t max = 512);

// Splits a byte stream into server-sent events ("...\n\n"; CR ignored).
class SseParser {
 public:
  void Feed(std::string_view bytes);
  // The next complete event (without its blank line), or nullopt.
  std::optional<std::string> Next();
  // Bytes of an event not yet complete.
  size_t pending() const { return buffer_.size() - pos_; }

 private:
  std::string buffer_;
  size_t pos_ = 0;
};
// The data of an event (its data: lines joined by "\n"); nullopt if it has none.
std::optional<std::string> SseData(std::string_view event);

// Builds the non-streaming answer from the chunks of a streamed one.
class StreamAssembler {
 public:
  explicit StreamAssembler(OpenAiEndpoint endpoint) : endpoint_(endpoint) {}
  ~StreamAssembler();
  StreamAssembler(const StreamAssembler&) = delete;
  StreamAssembler& operator=(const StreamAssembler&) = delete;
  // One event's data (a JSON object). kInvalidArgument if it is not one.
  [[nodiscard]] Status Add(std::string_view data_json);
  // The chat.completion / text_completion object; "model" is `model` when not empty.
  std::string Finish(std::string_view model = {}) const;
  size_t chunks() const { return chunks_; }

 private:
  struct State;
  OpenAiEndpoint endpoint_;
  State* state_ = nullptr;  // owned; a pimpl keeps nlohmann out of this header
  size_t chunks_ = 0;
};

// An engine's error answer (any shape) -> our status and OpenAI error body.
// 4xx keep their status; 5xx and anything unreadable become 502 engine_error.
struct OpenAiError {
  int http_status = 502;
  std::string body;
};
OpenAiError EngineErrorToOpenAi(int engine_status, std::string_view engine_body);
// An error body in the /api shape {"error": {"code", "message", ...}} (no
// "type") -> the same error in OpenAI's shape, status kept; nullopt for any
// other body (one already in OpenAI's shape included).
std::optional<OpenAiError> ApiErrorToOpenAi(int http_status, std::string_view body);
// The error inside an event's data ({"error": ...}), as an OpenAiError; nullopt if none.
std::optional<OpenAiError> ErrorInEventData(std::string_view data_json);

}  // namespace mw::api
