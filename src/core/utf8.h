// UTF-8 checks for text that reaches a JSON answer from outside a JSON parser: decoded query
// parameters, a receiver's response body. Boost.JSON serialises strings byte for byte, so
// invalid UTF-8 would make the answer invalid JSON. Pure and thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace outbound::core {

// Well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool IsValidUtf8(std::string_view s);
// `s` with every ill-formed or truncated sequence replaced by U+FFFD.
std::string ScrubUtf8(std::string_view s);

}  // namespace outbound::core
