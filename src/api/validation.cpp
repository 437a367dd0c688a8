#include "api/validation.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <boost/url/parse.hpp>
#include <cctype>
#include <cstdint>

#include "core/addresses.h"

namespace outbound::api {

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

UrlCheck Refuse(std::string code, std::string message) {
  return UrlCheck{false, std::move(code), std::move(message)};
}

}  // namespace

UrlCheck CheckSubscriptionUrl(std::string_view url, bool allow_private_networks) {
  if (url.size() > 2048) return Refuse("invalid_url", "url must be at most 2048 characters");
  auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed) return Refuse("invalid_url", "url is not a valid absolute URL");
  const auto& u = *parsed;
  std::string scheme = Lower(u.scheme());
  if (scheme != "https" && !(scheme == "http" && allow_private_networks)) {
    return Refuse("url_not_allowed",
                  allow_private_networks ? "url must use https or http" : "url must use https");
  }
  if (!u.has_authority() || u.encoded_host().empty()) {
    return Refuse("invalid_url", "url must have a host");
  }
  if (u.has_userinfo()) {
    return Refuse("url_not_allowed",
                  "url must not contain credentials; send them with the subscription's headers");
  }
  if (allow_private_networks) return {};

  const char* kPrivate =
      "url points to a loopback, private or link-local address (allowed only with "
      "--allow-private-networks)";
  switch (u.host_type()) {
    case boost::urls::host_type::ipv4:
      if (core::IsPrivateV4(u.host_ipv4_address().to_uint()))
        return Refuse("url_not_allowed", kPrivate);
      break;
    case boost::urls::host_type::ipv6: {
      auto bytes = u.host_ipv6_address().to_bytes();
      std::array<unsigned char, 16> b{};
      std::copy(bytes.begin(), bytes.end(), b.begin());
      if (core::IsPrivateV6(b)) return Refuse("url_not_allowed", kPrivate);
      break;
    }
    case boost::urls::host_type::name: {
      std::string host = Lower(u.host());
      while (!host.empty() && host.back() == '.') host.pop_back();
      if (host == "localhost" || (host.size() > 10 && host.ends_with(".localhost"))) {
        return Refuse("url_not_allowed", kPrivate);
      }
      // Resolvers read "127.1", "0x7f.1" and "2130706433" as IPv4 literals.
      in_addr addr{};
      if (!host.empty() && host.find_first_not_of("0123456789abcdefx.") == std::string::npos &&
          inet_aton(host.c_str(), &addr) != 0 && core::IsPrivateV4(ntohl(addr.s_addr))) {
        return Refuse("url_not_allowed", kPrivate);
      }
      break;
    }
    default:
      return Refuse("invalid_url", "url has an unsupported host");
  }
  return {};
}

bool IsHeaderName(std::string_view name) {
  if (name.empty() || name.size() > 100) return false;
  static constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
           kSpecials.find(c) != std::string_view::npos;
  });
}

bool IsReservedHeader(std::string_view name) {
  std::string n = Lower(name);
  static constexpr std::string_view kReserved[] = {
      "host",       "content-length",   "content-type",    "user-agent", "transfer-encoding",
      "connection", "keep-alive",       "upgrade",         "te",         "trailer",
      "expect",     "proxy-connection", "content-encoding"};
  for (auto r : kReserved) {
    if (n == r) return true;
  }
  return n.starts_with("webhook-") || n.starts_with("ordinavo-");
}

bool IsHeaderValue(std::string_view value) {
  if (value.size() > 4096) return false;
  return std::none_of(value.begin(), value.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && u != '\t') || u == 0x7f;
  });
}

}  // namespace outbound::api
