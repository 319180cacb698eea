#include "api/errors.h"

namespace mw::api {

ErrorInfo DescribeError(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidRequest: return {400, "invalid_request"};
    case ErrorKind::kInvalidModel: return {400, "invalid_model"};
    case ErrorKind::kUnauthorized: return {401, "unauthorized"};
    case ErrorKind::kRepositoryGated: return {401, "repository_gated"};
    case ErrorKind::kCommandArgvDisabled: return {403, "command_argv_disabled"};
    case ErrorKind::kHostNotAllowed: return {403, "host_not_allowed"};
    case ErrorKind::kOriginNotAllowed: return {403, "origin_not_allowed"};
    case ErrorKind::kNotFound: return {404, "not_found"};
    case ErrorKind::kMethodNotAllowed: return {405, "method_not_allowed"};
    case ErrorKind::kModelNotFound: return {404, "model_not_found"};
    case ErrorKind::kModelExists: return {409, "model_exists"};
    case ErrorKind::kConflict: return {409, "conflict"};
    case ErrorKind::kModelIncompatible: return {409, "model_incompatible"};
    case ErrorKind::kLengthRequired: return {411, "length_required"};
    case ErrorKind::kPayloadTooLarge: return {413, "payload_too_large"};
    case ErrorKind::kHeadersTooLarge: return {431, "headers_too_large"};
    case ErrorKind::kUnsupportedMediaType: return {415, "unsupported_media_type"};
    case ErrorKind::kLoadFailed: return {422, "load_failed"};
    case ErrorKind::kQueueFull: return {429, "queue_full"};
    case ErrorKind::kInternal: return {500, "internal"};
    case ErrorKind::kEngineCrashed: return {502, "engine_crashed"};
    case ErrorKind::kEngineHung: return {502, "engine_hung"};
    case ErrorKind::kEngineError: return {502, "engine_error"};
    case ErrorKind::kResponseTooLarge: return {502, "response_too_large"};
    case ErrorKind::kPeerFailed: return {502, "peer_failed"};
    case ErrorKind::kDataLoss: return {500, "data_loss"};
    case ErrorKind::kUnavailable: return {503, "unavailable"};
    case ErrorKind::kStorageReadOnly: return {503, "storage_read_only"};
    case ErrorKind::kModelsBusy: return {503, "models_busy"};
    case ErrorKind::kTimeout: return {504, "timeout"};
    case ErrorKind::kRequestTimeout: return {504, "request_timeout"};
    case ErrorKind::kInsufficientStorage: return {507, "insufficient_storage"};
    case ErrorKind::kInsufficientMemory: return {507, "insufficient_memory"};
  }
  return {500, "internal"};
}

std::string Echo(std::string_view text) {
  if (text.size() <= kMaxEchoBytes) return std::string(text);
  size_t cut = kMaxEchoBytes;
  // Back off continuation bytes (10xxxxxx) so no character is split.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + "...";
}

ErrorKind ErrorKindForStatus(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument: return ErrorKind::kInvalidRequest;
    case StatusCode::kNotFound: return ErrorKind::kModelNotFound;
    case StatusCode::kAlreadyExists: return ErrorKind::kModelExists;
    case StatusCode::kFailedPrecondition: return ErrorKind::kConflict;
    case StatusCode::kResourceExhausted: return ErrorKind::kInsufficientStorage;
    case StatusCode::kUnavailable: return ErrorKind::kUnavailable;
    case StatusCode::kDeadlineExceeded: return ErrorKind::kTimeout;
    case StatusCode::kAborted: return ErrorKind::kLoadFailed;
    case StatusCode::kDataLoss: return ErrorKind::kDataLoss;
    // Behind the API only the server's own files refuse permission (a command
    // that cannot be executed is a failed attempt): the server's fault, not
    // the caller's, so a 5xx and not 403.
    case StatusCode::kPermissionDenied: return ErrorKind::kStorageReadOnly;
    case StatusCode::kUnauthenticated: return ErrorKind::kUnauthorized;
    // The only server policy behind the API today: programs are chosen in the
    // configuration file, not over HTTP (SPEC §9.1).
    case StatusCode::kForbidden: return ErrorKind::kCommandArgvDisabled;
    case StatusCode::kOk:
    case StatusCode::kInternal: return ErrorKind::kInternal;
  }
  return ErrorKind::kInternal;
}

HttpFallback FallbackForHttpStatus(int http_status, std::string_view method, std::string_view path) {
  switch (http_status) {
    case 404: return {ErrorKind::kNotFound, "no such path: " + std::string(method) + " " + Echo(path)};
    case 413: return {ErrorKind::kPayloadTooLarge, "request body is too large"};
    case 400: return {ErrorKind::kInvalidRequest, kMalformedRequest};
    case 414: return {ErrorKind::kInvalidRequest, "the request target is longer than 8192 bytes", true};
    default:
      return {http_status >= 500 ? ErrorKind::kInternal : ErrorKind::kInvalidRequest, "request failed", true};
  }
}

}  // namespace mw::api
