// Status and Result<T>: the one error type of modelwarden.
//
// Every fallible call returns Status (no value) or Result<T> (a value or an
// error). Exceptions thrown by third-party libraries (nlohmann, std::filesystem,
// httplib) are caught where those libraries are called and turned into a
// Status; nothing past that edge throws.
//
// The codes are the canonical ones; the HTTP layer maps each to one HTTP
// status in a single table (api/), so choose the code by meaning:
//   kInvalidArgument    bad input from the caller (HTTP 400)
//   kNotFound           no such model / file (404)
//   kAlreadyExists      duplicate name (409)
//   kFailedPrecondition state forbids it, e.g. model incompatible (409)
//   kResourceExhausted  too large / disk full (413 for bodies)
//   kUnavailable        transient: database locked, server busy (503)
//   kDeadlineExceeded   timed out (504 / load timeout)
//   kAborted            a load attempt failed (422 at the API)
//   kDataLoss           a file is corrupt or from a newer version
//   kPermissionDenied   read-only file (503 storage_read_only at the API)
//   kUnauthenticated    missing/wrong API key (401)
//   kForbidden          a server policy refuses it, e.g. a program named over HTTP (403)
//   kInternal           a bug or an unexpected library error (500)
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace mw {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kFailedPrecondition,
  kResourceExhausted,
  kUnavailable,
  kDeadlineExceeded,
  kAborted,
  kDataLoss,
  kPermissionDenied,
  kUnauthenticated,
  kForbidden,
  kInternal,
};

// Stable lower_snake name of a code, e.g. "invalid_argument".
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "not_found: model 'x' is not registered"
  std::string ToString() const;

  // Returns a copy whose message is prefixed with `context + ": "`.
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgumentError(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFoundError(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status AlreadyExistsError(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status FailedPreconditionError(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status ResourceExhaustedError(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status UnavailableError(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status DeadlineExceededError(std::string m) { return {StatusCode::kDeadlineExceeded, std::move(m)}; }
inline Status AbortedError(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
inline Status DataLossError(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status PermissionDeniedError(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
inline Status UnauthenticatedError(std::string m) { return {StatusCode::kUnauthenticated, std::move(m)}; }
inline Status ForbiddenError(std::string m) { return {StatusCode::kForbidden, std::move(m)}; }
inline Status InternalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// A value of type T, or a non-OK Status. Constructing from an OK Status is a
// bug and yields kInternal.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : data_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(data_).ok()) data_ = InternalError("Result constructed from OK status");
  }

  bool ok() const { return std::holds_alternative<T>(data_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(data_);
  }
  // Precondition: ok().
  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace mw

#define MW_CONCAT_INNER(a, b) a##b
#define MW_CONCAT(a, b) MW_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)                 \
  do {                                        \
    ::mw::Status mw_status_ = (expr);         \
    if (!mw_status_.ok()) return mw_status_;  \
  } while (0)

// ASSIGN_OR_RETURN(auto x, F()): declares x from F()'s value, or returns its error.
#define ASSIGN_OR_RETURN(lhs, expr) ASSIGN_OR_RETURN_IMPL(MW_CONCAT(mw_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
