// Reading request input strictly: JSON bodies and query strings. Every problem is collected as a
// core::FieldError naming the field ("options.includeBillingDetails", "eventTypes[2]"), so one
// answer lists every invalid field; unknown fields and parameters are errors, not ignored.
// Not thread-safe (one reader per request).
#pragma once

#include <array>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/object.hpp>
#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "api/request.h"
#include "core/clock.h"
#include "core/model.h"
#include "core/result.h"
#include "store/model.h"

namespace outbound::api {

// Parses a request body. Malformed JSON → kMalformed "malformed_json". The value's memory comes
// from `sp` (a request's BodyArena, say: the value must not outlive it, and nothing copy- or
// move-constructed from it may either).
core::Result<boost::json::value> ParseJson(std::string_view body, boost::json::storage_ptr sp = {});
// The arena of a request's parsed body (ParseJson's `sp`), for the routes whose bodies are big or
// many: publishes and imports (issue 8). The tree is allocated by bumping a pointer and dropped
// without visiting a node or freeing one: Boost.JSON skips that walk when the resource's
// deallocate does nothing. Freeing a batch's tree node by node was a fifth of its handler
// thread's samples (docs/PERFORMANCE.md). Safe when the service only reads the tree: what it
// keeps is built in Boost.JSON containers of the default resource, and Boost.JSON copies what
// goes into one of its containers (inserted or assigned) into that container's resource; a copy
// or move *construction* (into a std::vector<json::value>, say) would keep the arena's. The tree
// must not outlive the arena: declare the arena before the parsed value. A typical single
// publish's tree fits in the first block, inside this object (on the stack); a bigger one takes
// more blocks from the heap.
class BodyArena {
 public:
  BodyArena() = default;
  BodyArena(const BodyArena&) = delete;
  BodyArena& operator=(const BodyArena&) = delete;
  boost::json::storage_ptr storage() { return &resource_; }

 private:
  // What the skipped walk rests on: storage_ptr keeps this trait of the resource's type.
  static_assert(boost::json::is_deallocate_trivial<boost::json::monotonic_resource>::value);
  std::array<unsigned char, 4096> first_block_;  // not zeroed: the resource writes before reading
  boost::json::monotonic_resource resource_{first_block_.data(), first_block_.size()};
};

// As ParseJson, and the value must be an object (else kInvalid "invalid_body"). An empty body is
// `{}` when `empty_is_object`.
core::Result<boost::json::object> ParseJsonObject(std::string_view body, bool empty_is_object);

// All collected field errors as one error (nothing when there are none).
core::Status Check(const std::vector<core::FieldError>& errors);

// The body of a route that takes no fields: empty or `{}` (any field → kValidation, unknown).
core::Status RequireNoFields(std::string_view body);

enum class Need { kOptional, kRequired };

class ObjectReader {
 public:
  // `errors` must outlive the reader. `prefix` is prepended to field names ("options.").
  ObjectReader(const boost::json::object& object, std::vector<core::FieldError>& errors,
               std::string prefix = "");

  // Present, even as null. Marks the field as known.
  bool Has(std::string_view name);
  // The raw value (nullptr when absent). Marks the field as known.
  const boost::json::value* Get(std::string_view name);

  // Absent or null → nullopt (an error when required). Wrong type or bad value → an error and
  // nullopt. Strings must be non-empty and at most `max_len` bytes.
  std::optional<std::string> String(std::string_view name, Need need, std::size_t max_len = 1000);
  std::optional<bool> Bool(std::string_view name, Need need);
  // Integers; also a double with an integral value.
  std::optional<std::int64_t> Int(std::string_view name, Need need);
  std::optional<double> Number(std::string_view name, Need need);

  // {sourceSystem: id}; keys must be valid source system names, values non-empty strings.
  std::optional<core::ExternalIds> ExternalIds(std::string_view name, Need need);

  // Records an error for `name` (prefixed).
  void Fail(std::string_view name, std::string code, std::string message);
  std::string Path(std::string_view name) const;
  // unknown_field for every key not asked about.
  void RejectUnknown();

 private:
  const boost::json::object& object_;
  std::vector<core::FieldError>& errors_;
  std::string prefix_;
  std::set<std::string, std::less<>> seen_;
};

// Value conversions used by the reader and for array items; `path` names the value in errors.
std::optional<std::string> AsString(const boost::json::value& v, const std::string& path,
                                    std::vector<core::FieldError>& errors,
                                    std::size_t max_len = 1000);
std::optional<bool> AsBool(const boost::json::value& v, const std::string& path,
                           std::vector<core::FieldError>& errors);
std::optional<std::int64_t> AsInt(const boost::json::value& v, const std::string& path,
                                  std::vector<core::FieldError>& errors);
std::optional<double> AsNumber(const boost::json::value& v, const std::string& path,
                               std::vector<core::FieldError>& errors);

// ^[a-z0-9][a-z0-9_.-]{0,63}$
bool IsValidSourceSystem(std::string_view s);

// Query parameters, read the same way.
class QueryReader {
 public:
  QueryReader(const Query& query, std::vector<core::FieldError>& errors);
  // nullopt when absent; an empty value counts as absent.
  std::optional<std::string> String(std::string_view name);
  std::optional<std::int64_t> PositiveInt(std::string_view name);
  // RFC 3339 with an offset (invalid_time otherwise).
  std::optional<core::UnixMs> Time(std::string_view name);
  // limit (default 50, 1..250, else invalid_limit) and cursor.
  store::Page Page();
  void RejectUnknown();  // unknown_parameter

 private:
  const Query& query_;
  std::vector<core::FieldError>& errors_;
  std::set<std::string, std::less<>> seen_;
};

inline constexpr int kDefaultLimit = 50;
inline constexpr int kMaxLimit = 250;

}  // namespace outbound::api
