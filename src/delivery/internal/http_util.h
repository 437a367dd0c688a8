// Small pure helpers of the dispatcher, kept apart so that tests can reach them. Not part of the
// delivery layer's contract: only dispatcher.cpp and the tests use them. Thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"

struct sockaddr;

namespace outbound::delivery::internal {

// A Retry-After value (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, as milliseconds from
// `now_ms` (never negative). nullopt when it is neither.
std::optional<core::UnixMs> ParseRetryAfter(std::string_view value, core::UnixMs now_ms);

// True for addresses a webhook must not reach unless private networks are allowed: loopback,
// RFC 1918, link-local, CGNAT, unspecified, multicast/broadcast, IPv6 ULA/link-local and
// IPv4-mapped forms of all of these. Unknown address families count as private.
bool IsPrivateAddress(const sockaddr* addr);

// Cuts `s` to at most `max` bytes without leaving a partial UTF-8 sequence at its end.
void TruncateUtf8(std::string& s, std::size_t max);

// ASCII case-insensitive equality (header names, URL schemes).
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

enum class UrlScheme { kHttps, kHttp, kOther };
UrlScheme SchemeOf(std::string_view url);

// True when a subscription's static header may be sent: a valid token name that does not
// collide with the headers the dispatcher sets itself, and a value without CR, LF or NUL.
bool IsAllowedStaticHeader(std::string_view name, std::string_view value);

}  // namespace outbound::delivery::internal
