// Error values shared by every layer. An Error carries a stable machine code (see
// docs/API.md, "Error codes"), a human message, the offending field if any and, when several
// fields are invalid, one detail per field. The api/ layer maps codes to HTTP statuses in one
// place (api/errors.cpp); nothing below api/ knows about HTTP.
#pragma once

#include <string>
#include <tl/expected.hpp>
#include <utility>
#include <vector>

namespace outbound::core {

enum class ErrorKind {
  kInvalid,       // 422: well-formed but not acceptable
  kMalformed,     // 400: cannot be parsed
  kNotFound,      // 404: missing or outside the caller's scope
  kConflict,      // 409
  kTooLarge,      // 413
  kUnauthorized,  // 401
  kForbidden,     // 403
  kUnavailable,   // 503: retrying later helps
  kAborted,       // 503: a transaction lost a race with another and its retries did too
  kInternal,      // 500: a bug or an unexpected store failure
};

struct FieldError {
  std::string field;
  std::string code;
  std::string message;
};

struct Error {
  ErrorKind kind = ErrorKind::kInternal;
  std::string code;     // stable, snake_case, e.g. "validation_failed"
  std::string message;  // for people
  std::string field;    // optional
  std::vector<FieldError> details;

  static Error Invalid(std::string field, std::string code, std::string message) {
    Error e{ErrorKind::kInvalid, std::move(code), std::move(message), std::move(field), {}};
    e.details.push_back({e.field, e.code, e.message});
    return e;
  }
  static Error NotFound(std::string what) {
    return {ErrorKind::kNotFound, "not_found", std::move(what) + " not found", {}, {}};
  }
  static Error Conflict(std::string code, std::string message) {
    return {ErrorKind::kConflict, std::move(code), std::move(message), {}, {}};
  }
  static Error Internal(std::string message) {
    return {ErrorKind::kInternal, "internal", std::move(message), {}, {}};
  }
  static Error Malformed(std::string message) {
    return {ErrorKind::kMalformed, "malformed_request", std::move(message), {}, {}};
  }
  static Error Unavailable(std::string message) {
    return {ErrorKind::kUnavailable, "unavailable", std::move(message), {}, {}};
  }
  // Several invalid fields at once: code "validation_failed", one detail each.
  static Error Validation(std::vector<FieldError> fields) {
    Error e{ErrorKind::kInvalid, "validation_failed", "", "", std::move(fields)};
    if (!e.details.empty()) {
      e.field = e.details.front().field;
      e.message = e.details.size() == 1 ? e.details.front().message
                                        : std::to_string(e.details.size()) + " fields are invalid";
      if (e.details.size() == 1) e.code = e.details.front().code;
    }
    return e;
  }
};

template <class T>
using Result = tl::expected<T, Error>;
using Status = tl::expected<void, Error>;

inline tl::unexpected<Error> Fail(Error e) { return tl::unexpected<Error>(std::move(e)); }

}  // namespace outbound::core
