// JSON whose numbers keep their text (CONTRACT.md §10: billing values pass through exactly as
// published, `149.50` stays `149.50`, `1e2` stays `1e2`). Boost.JSON 1.81 turns every number into
// an int64, uint64 or double and prints doubles its own way, and it has no raw-number mode, so:
//   - ExactJson reads a member of a JSON text through boost::json::basic_parser, whose handler
//     sees each number's text, and writes it compactly with every number byte for byte;
//   - RawJson wraps such a text in a boost::json::value that core::ToJson (render.h) writes back
//     verbatim, so it can sit inside an object that is otherwise built and serialised normally.
// Pure and thread-safe.
#pragma once

#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace outbound::core {

// The member at `path` (object keys from the root; empty: the whole text) of the JSON text
// `json_text`, written compactly: no whitespace, strings escaped as AppendJsonString does,
// numbers exactly as in the input. A key given twice counts as its last occurrence, as
// boost::json::parse does. nullopt when the text is not valid JSON (parsed as api::ParseJson
// does, at most 64 levels deep) or has no such member.
std::optional<std::string> ExactJson(std::string_view json_text,
                                     std::initializer_list<std::string_view> path = {});

// A value that core::ToJson writes as `json_text` itself, byte for byte; `json_text` must be valid
// compact JSON (what ExactJson returns). It is a one-member object whose key is not valid UTF-8,
// so no parsed input can ever look like one. Serialise values that may hold one with core::ToJson,
// never boost::json::serialize (which would write the wrapper).
boost::json::value RawJson(std::string_view json_text);
// The text of a RawJson value; nullptr for any other value.
const boost::json::string* IfRawJson(const boost::json::value& v);
const boost::json::string* IfRawJson(const boost::json::object& o);

// An integer field's value when JSON wrote it with a fraction (`441.0`; Boost.JSON reads it as a
// double): the integer, if `d` is integral and below 9e15 in magnitude (exact in a double).
// nullopt otherwise (`5.5`, NaN, too large). Every integer the API reads takes this form.
std::optional<std::int64_t> IntegralDouble(double d);

}  // namespace outbound::core
