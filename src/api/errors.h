// The one mapping from core::Error to HTTP: status codes and the JSON error body
//   {"error": {"code", "message", "field"?, "details"?: [{"field", "code", "message"}]}}
// (`field` and `details` are omitted when empty). Codes are stable; docs/API.md lists them.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

#include "api/request.h"
#include "core/result.h"

namespace outbound::api {

// 422 invalid, 400 malformed, 404, 409, 413, 401, 403, 503 unavailable, 500 internal.
int HttpStatus(core::ErrorKind kind);

// The JSON error body. Internal errors are rendered with a generic message (the real one is
// for the log only).
std::string ErrorBody(const core::Error& error);
std::string ErrorBody(std::string_view code, std::string_view message);
// The object inside {"error": ...} (also an item's `error` in a batch answer).
boost::json::object ErrorJson(const core::Error& error);

// A complete error response: status, body, and Retry-After for 503, WWW-Authenticate for 401.
Response ErrorResponse(const core::Error& error);
// For statuses without an ErrorKind (405, 431, 501).
Response ErrorResponse(int status, std::string_view code, std::string_view message);

// An error of the given kind without a field.
core::Error MakeError(core::ErrorKind kind, std::string code, std::string message);

}  // namespace outbound::api
