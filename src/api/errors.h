// api/errors.h: the ONE table from error kinds to HTTP statuses and the
// stable `code` strings of {"error": {"code", "message"}}.
//
// Every error answer of the server is built from this table, whether it comes
// from a Status returned by the core (ErrorKindForStatus), from the HTTP edge
// itself (bad JSON, body too large, unknown path, missing API key), or from an
// exception caught by the route wrapper. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace mw::api {

enum class ErrorKind {
  kInvalidRequest,       // 400 malformed JSON, wrong types, bad names/values
  kInvalidModel,         // 400 a model file that is not a GGUF, at registration (SPEC §18)
  kUnauthorized,         // 401 missing or wrong API key
  kRepositoryGated,      // 401 pull: the Hugging Face repository is gated or private (HF_TOKEN)
  kCommandArgvDisabled,  // 403 a program (argv/env of a command model) named over HTTP (SPEC §9.1)
  kHostNotAllowed,       // 403 Host header is not one of the server's names (DNS rebinding)
  kOriginNotAllowed,     // 403 a foreign Origin on a state-changing request or the event stream
  kNotFound,             // 404 unknown path
  kMethodNotAllowed,     // 405 known path, wrong method
  kModelNotFound,        // 404 no such model
  kModelExists,          // 409 duplicate name
  kConflict,             // 409 the model's state forbids it (e.g. delete while testing)
  kModelIncompatible,    // 409 incompatible and not forced (body adds "notes")
  kLengthRequired,       // 411 a body without Content-Length (chunked, or no length at all)
  kPayloadTooLarge,      // 413 request body over the limit
  kHeadersTooLarge,      // 431 the request's header lines together exceed the cap
  kUnsupportedMediaType, // 415 a body that is not Content-Type: application/json
  kLoadFailed,           // 422 the load attempt failed (body adds "classification")
  kQueueFull,            // 429 /v1: the model's request queue is full (max_queue)
  kInternal,             // 500 a bug or unexpected library error
  kEngineCrashed,        // 502 /v1: the model's engine died while serving (message: classified summary)
  kEngineHung,           // 502 /v1: the health watch stopped the model's engine as hung (SPEC §19)
  kEngineError,          // 502 /v1: the engine failed otherwise (5xx, broken connection, bad stream)
  kResponseTooLarge,     // 502 /v1: a non-streamed engine answer over kMaxAnswerBytes
  kPeerFailed,           // 502 /v1 or a load routed to another node (SPEC §21) that failed; the message names it
  kDataLoss,             // 500 corrupt database file
  kUnavailable,          // 503 shutting down, database locked, disk I/O error, too many event streams
  kStorageReadOnly,      // 503 the registry database cannot be written (read-only file or disk)
  kModelsBusy,           // 503 max_loaded_models reached and every loaded model has requests in flight
  kTimeout,              // 504
  kRequestTimeout,       // 504 /v1: the generation ran past the request's timeout (SPEC §19); it was cancelled
  kInsufficientStorage,  // 507 disk full
  kInsufficientMemory,   // 507 a load refused before any attempt: the fit estimate exceeds free memory
};

struct ErrorInfo {
  int http_status;
  std::string_view code;
};

ErrorInfo DescribeError(ErrorKind kind);

// At most this many bytes of what a client sent (a path, a field name, a
// header) are repeated in an error message (SPEC §20).
inline constexpr size_t kMaxEchoBytes = 200;
// httplib's own 400: a request it could not parse, or over its caps.
inline constexpr const char* kMalformedRequest =
    "malformed HTTP request, or over a limit: a request line over 16 KiB, a header line over 8 KiB, "
    "more than 64 header lines (docs/security.md)";
// `text` cut to kMaxEchoBytes at a UTF-8 character boundary, "..." added when cut.
std::string Echo(std::string_view text);
// The kind for a Status returned by the core (never called with OK).
ErrorKind ErrorKindForStatus(StatusCode code);

// The answer to an error httplib produced itself (no route, body too large,
// bad request line: an HTTP status and an empty body). The one fallback of
// both edges: /api answers it in its shape, /v1 in OpenAI's. keep_status: the
// answer keeps the original HTTP status (a status outside the table's kinds).
struct HttpFallback {
  ErrorKind kind;
  std::string message;
  bool keep_status = false;
};
HttpFallback FallbackForHttpStatus(int http_status, std::string_view method, std::string_view path);

}  // namespace mw::api
