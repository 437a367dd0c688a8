// Checks on subscription input that deserve their own tests: the receiver URL and the static
// headers. Pure and thread-safe. DNS-based checks (a public name resolving to a private address)
// are the dispatcher's, at connect time.
#pragma once

#include <string>
#include <string_view>

namespace outbound::api {

// ok, or why not: code "invalid_url" or "url_not_allowed" and a message.
struct UrlCheck {
  bool ok = true;
  std::string code;
  std::string message;
};

// An absolute https URL with a host (http too when allow_private_networks). Unless
// allow_private_networks: no literal loopback, private, link-local, CGNAT, multicast or
// unspecified IP (also in the shorthand forms a resolver accepts, like "127.1" or a decimal
// number), no "localhost" or "*.localhost". Credentials in the URL are refused (use headers).
UrlCheck CheckSubscriptionUrl(std::string_view url, bool allow_private_networks);

// RFC 9110 token characters, 1..100 long.
bool IsHeaderName(std::string_view name);
// Headers Outbound sets itself or that would break the request: Host, Content-Length,
// Content-Type, User-Agent, Transfer-Encoding, Connection, webhook-*, ordinavo-*, ...
bool IsReservedHeader(std::string_view name);
// No control characters (CR, LF, NUL, ...), at most 4096 bytes.
bool IsHeaderValue(std::string_view value);

}  // namespace outbound::api
