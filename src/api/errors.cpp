#include "api/errors.h"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace outbound::api {

namespace json = boost::json;

int HttpStatus(core::ErrorKind kind) {
  switch (kind) {
    case core::ErrorKind::kInvalid:
      return 422;
    case core::ErrorKind::kMalformed:
      return 400;
    case core::ErrorKind::kNotFound:
      return 404;
    case core::ErrorKind::kConflict:
      return 409;
    case core::ErrorKind::kTooLarge:
      return 413;
    case core::ErrorKind::kUnauthorized:
      return 401;
    case core::ErrorKind::kForbidden:
      return 403;
    case core::ErrorKind::kUnavailable:
    case core::ErrorKind::kAborted:
      return 503;
    case core::ErrorKind::kInternal:
      return 500;
  }
  return 500;
}

json::object ErrorJson(const core::Error& error) {
  json::object e;
  if (error.kind == core::ErrorKind::kInternal) {
    // Store and library messages may name tables or paths; people get a generic sentence.
    e["code"] = error.code.empty() ? "internal" : error.code;
    e["message"] = "internal error";
    return e;
  }
  e["code"] = error.code;
  e["message"] = error.message;
  if (!error.field.empty()) e["field"] = error.field;
  if (!error.details.empty()) {
    json::array details;
    for (const auto& d : error.details) {
      details.push_back(json::object{{"field", d.field}, {"code", d.code}, {"message", d.message}});
    }
    e["details"] = std::move(details);
  }
  return e;
}

std::string ErrorBody(const core::Error& error) {
  return json::serialize(json::object{{"error", ErrorJson(error)}});
}

std::string ErrorBody(std::string_view code, std::string_view message) {
  json::object e{{"code", code}, {"message", message}};
  return json::serialize(json::object{{"error", std::move(e)}});
}

Response ErrorResponse(const core::Error& error) {
  Response r;
  r.status = HttpStatus(error.kind);
  r.body = ErrorBody(error);
  if (error.kind == core::ErrorKind::kUnavailable || error.kind == core::ErrorKind::kAborted) {
    r.headers.emplace_back("Retry-After", "1");
  }
  if (error.kind == core::ErrorKind::kUnauthorized) {
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
  }
  return r;
}

Response ErrorResponse(int status, std::string_view code, std::string_view message) {
  Response r;
  r.status = status;
  r.body = ErrorBody(code, message);
  return r;
}

core::Error MakeError(core::ErrorKind kind, std::string code, std::string message) {
  core::Error e;
  e.kind = kind;
  e.code = std::move(code);
  e.message = std::move(message);
  return e;
}

}  // namespace outbound::api
