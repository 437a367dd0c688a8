#include "api/input.h"

#include <boost/json/parse.hpp>
#include <charconv>
#include <limits>
#include <system_error>
#include <utility>

#include "api/errors.h"
#include "core/field_names.h"
#include "core/json_text.h"

namespace outbound::api {

namespace json = boost::json;

core::Result<json::value> ParseJson(std::string_view body, json::storage_ptr sp) {
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 64;
  json::value v = json::parse(body, ec, std::move(sp), opts);
  if (ec) {
    return core::Fail(MakeError(core::ErrorKind::kMalformed, "malformed_json",
                                "the body is not valid JSON: " + ec.message()));
  }
  return v;
}

core::Result<json::object> ParseJsonObject(std::string_view body, bool empty_is_object) {
  if (empty_is_object && body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return json::object{};
  }
  auto v = ParseJson(body);
  if (!v) return core::Fail(std::move(v.error()));
  if (!v->is_object()) {
    return core::Fail(
        MakeError(core::ErrorKind::kInvalid, "invalid_body", "the body must be a JSON object"));
  }
  return std::move(v->as_object());
}

core::Status Check(const std::vector<core::FieldError>& errors) {
  if (errors.empty()) return {};
  return core::Fail(core::Error::Validation(errors));
}

core::Status RequireNoFields(std::string_view body) {
  auto object = ParseJsonObject(body, true);
  if (!object) return core::Fail(std::move(object.error()));
  std::vector<core::FieldError> errors;
  ObjectReader(*object, errors).RejectUnknown();
  return Check(errors);
}

namespace {

const char* KindName(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "something else";
}

void TypeError(const json::value& v, const std::string& path, const char* expected,
               std::vector<core::FieldError>& errors) {
  errors.push_back({path, "invalid_type", path + " must be " + expected + ", not " + KindName(v)});
}

}  // namespace

std::optional<std::string> AsString(const json::value& v, const std::string& path,
                                    std::vector<core::FieldError>& errors, std::size_t max_len) {
  if (!v.is_string()) {
    TypeError(v, path, "a string", errors);
    return std::nullopt;
  }
  const auto& s = v.get_string();
  if (s.empty()) {
    errors.push_back({path, "invalid_value", path + " must not be empty"});
    return std::nullopt;
  }
  if (s.size() > max_len) {
    errors.push_back(
        {path, "too_long", path + " must be at most " + std::to_string(max_len) + " bytes"});
    return std::nullopt;
  }
  return std::string(s);
}

std::optional<bool> AsBool(const json::value& v, const std::string& path,
                           std::vector<core::FieldError>& errors) {
  if (!v.is_bool()) {
    TypeError(v, path, "a boolean", errors);
    return std::nullopt;
  }
  return v.get_bool();
}

std::optional<std::int64_t> AsInt(const json::value& v, const std::string& path,
                                  std::vector<core::FieldError>& errors) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    if (v.get_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return static_cast<std::int64_t>(v.get_uint64());
    }
    errors.push_back({path, "invalid_value", path + " is too large"});
    return std::nullopt;
  }
  if (v.is_double()) {
    if (auto n = core::IntegralDouble(v.get_double())) return n;
  }
  TypeError(v, path, "an integer", errors);
  return std::nullopt;
}

std::optional<double> AsNumber(const json::value& v, const std::string& path,
                               std::vector<core::FieldError>& errors) {
  if (v.is_number()) return v.to_number<double>();
  TypeError(v, path, "a number", errors);
  return std::nullopt;
}

bool IsValidSourceSystem(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_or_digit(s[0])) return false;
  for (char c : s.substr(1)) {
    if (!lower_or_digit(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

ObjectReader::ObjectReader(const json::object& object, std::vector<core::FieldError>& errors,
                           std::string prefix)
    : object_(object), errors_(errors), prefix_(std::move(prefix)) {}

std::string ObjectReader::Path(std::string_view name) const { return prefix_ + std::string(name); }

bool ObjectReader::Has(std::string_view name) { return Get(name) != nullptr; }

const json::value* ObjectReader::Get(std::string_view name) {
  seen_.emplace(name);
  return object_.if_contains(name);
}

void ObjectReader::Fail(std::string_view name, std::string code, std::string message) {
  errors_.push_back({Path(name), std::move(code), std::move(message)});
}

namespace {

// Absent or null: nullopt, with a "required" error when needed. Otherwise the value.
template <class F>
auto ReadField(ObjectReader& r, std::vector<core::FieldError>& errors, std::string_view name,
               Need need, F&& convert)
    -> decltype(convert(std::declval<const json::value&>(), std::string())) {
  const json::value* v = r.Get(name);
  if (v == nullptr || v->is_null()) {
    if (need == Need::kRequired) {
      errors.push_back({r.Path(name), "required", r.Path(name) + " is required"});
    }
    return std::nullopt;
  }
  return convert(*v, r.Path(name));
}

// Only ASCII digits, the whole string, no sign, no overflow.
bool ParseDecimal(std::string_view s, std::int64_t& out) {
  if (s.empty() || s.front() < '0' || s.front() > '9') return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::optional<std::string> ObjectReader::String(std::string_view name, Need need,
                                                std::size_t max_len) {
  return ReadField(*this, errors_, name, need, [&](const json::value& v, const std::string& p) {
    return AsString(v, p, errors_, max_len);
  });
}

std::optional<bool> ObjectReader::Bool(std::string_view name, Need need) {
  return ReadField(*this, errors_, name, need, [&](const json::value& v, const std::string& p) {
    return AsBool(v, p, errors_);
  });
}

std::optional<std::int64_t> ObjectReader::Int(std::string_view name, Need need) {
  return ReadField(*this, errors_, name, need, [&](const json::value& v, const std::string& p) {
    return AsInt(v, p, errors_);
  });
}

std::optional<double> ObjectReader::Number(std::string_view name, Need need) {
  return ReadField(*this, errors_, name, need, [&](const json::value& v, const std::string& p) {
    return AsNumber(v, p, errors_);
  });
}

std::optional<core::ExternalIds> ObjectReader::ExternalIds(std::string_view name, Need need) {
  return ReadField(
      *this, errors_, name, need,
      [&](const json::value& v, const std::string& p) -> std::optional<core::ExternalIds> {
        if (!v.is_object()) {
          TypeError(v, p, "an object of {sourceSystem: id}", errors_);
          return std::nullopt;
        }
        core::ExternalIds ids;
        bool ok = true;
        for (const auto& kv : v.get_object()) {
          std::string key(kv.key());
          std::string path = p;
          path += '.';
          path += key;
          if (!IsValidSourceSystem(key)) {
            errors_.push_back({path, "invalid_source_system",
                               "source system names match ^[a-z0-9][a-z0-9_.-]{0,63}$"});
            ok = false;
            continue;
          }
          auto id = AsString(kv.value(), path, errors_, 255);
          if (!id) {
            ok = false;
            continue;
          }
          ids.emplace(std::move(key), std::move(*id));
        }
        if (!ok) return std::nullopt;
        return ids;
      });
}

void ObjectReader::RejectUnknown() {
  for (const auto& kv : object_) {
    if (seen_.find(std::string_view(kv.key())) == seen_.end()) {
      std::string path = Path(kv.key());
      errors_.push_back(
          {path, "unknown_field", "unknown field " + path + core::DidYouMean(kv.key(), seen_)});
    }
  }
}

QueryReader::QueryReader(const Query& query, std::vector<core::FieldError>& errors)
    : query_(query), errors_(errors) {}

std::optional<std::string> QueryReader::String(std::string_view name) {
  seen_.emplace(name);
  auto it = query_.find(name);
  if (it == query_.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

std::optional<std::int64_t> QueryReader::PositiveInt(std::string_view name) {
  auto s = String(name);
  if (!s) return std::nullopt;
  std::int64_t v = 0;
  if (!ParseDecimal(*s, v) || v <= 0) {
    errors_.push_back(
        {std::string(name), "invalid_value", std::string(name) + " must be a positive integer"});
    return std::nullopt;
  }
  return v;
}

std::optional<core::UnixMs> QueryReader::Time(std::string_view name) {
  auto s = String(name);
  if (!s) return std::nullopt;
  auto t = core::ParseRfc3339(*s);
  if (!t && s->size() > 6 && (*s)[s->size() - 6] == ' ') {
    // "…T16:31:00+02:00" written into a URL as it is: a query's "+" reads as a space (form
    // encoding), which no RFC 3339 time has there. Taken as the "+" it was.
    std::string plus = *s;
    plus[plus.size() - 6] = '+';
    t = core::ParseRfc3339(plus);
  }
  if (!t) {
    errors_.push_back({std::string(name), "invalid_time",
                       std::string(name) + " must be an RFC 3339 time with an offset, e.g. "
                                           "2026-06-25T14:31:00Z"});
    return std::nullopt;
  }
  return *t;
}

store::Page QueryReader::Page() {
  store::Page page;
  page.limit = kDefaultLimit;
  if (auto s = String("limit")) {
    std::int64_t v = 0;
    if (!ParseDecimal(*s, v) || v < 1 || v > kMaxLimit) {
      errors_.push_back({"limit", "invalid_limit",
                         "limit must be an integer from 1 to " + std::to_string(kMaxLimit)});
    } else {
      page.limit = static_cast<int>(v);
    }
  }
  if (auto c = String("cursor")) {
    if (c->size() > 512) {
      errors_.push_back({"cursor", "invalid_cursor", "cursor is not one this API gave out"});
    } else {
      page.after = std::move(*c);
    }
  }
  return page;
}

void QueryReader::RejectUnknown() {
  for (const auto& kv : query_) {
    if (seen_.find(std::string_view(kv.first)) == seen_.end()) {
      errors_.push_back(
          {kv.first, "unknown_parameter",
           "unknown query parameter " + kv.first + core::DidYouMean(kv.first, seen_)});
    }
  }
}

}  // namespace outbound::api
