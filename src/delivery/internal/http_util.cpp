#include "delivery/internal/http_util.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>

#include "core/addresses.h"

namespace outbound::delivery::internal {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::optional<core::UnixMs> ParseRetryAfter(std::string_view value, core::UnixMs now_ms) {
  value = Trim(value);
  if (value.empty()) return std::nullopt;
  if (std::isdigit(static_cast<unsigned char>(value.front()))) {
    std::int64_t seconds = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc::result_out_of_range) return std::numeric_limits<core::UnixMs>::max() / 2;
    if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
    if (seconds > std::numeric_limits<core::UnixMs>::max() / 2000) {
      return std::numeric_limits<core::UnixMs>::max() / 2;
    }
    return seconds * 1000;
  }
  const std::string date(value);
  const time_t at = curl_getdate(date.c_str(), nullptr);
  if (at == static_cast<time_t>(-1)) return std::nullopt;
  const core::UnixMs delta = static_cast<core::UnixMs>(at) * 1000 - now_ms;
  return delta > 0 ? delta : 0;
}

bool IsPrivateAddress(const sockaddr* addr) {
  if (addr == nullptr) return true;
  if (addr->sa_family == AF_INET) {
    sockaddr_in in{};
    std::memcpy(&in, addr, sizeof in);
    return core::IsPrivateV4(ntohl(in.sin_addr.s_addr));
  }
  if (addr->sa_family == AF_INET6) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, addr, sizeof in6);
    std::array<unsigned char, 16> b{};
    std::memcpy(b.data(), in6.sin6_addr.s6_addr, b.size());
    return core::IsPrivateV6(b);
  }
  return true;
}

void TruncateUtf8(std::string& s, std::size_t max) {
  if (s.size() <= max) return;
  std::size_t end = max;
  // Step back over continuation bytes to the lead byte of the last sequence, then keep that
  // sequence only if it is complete.
  std::size_t lead = end;
  while (lead > 0 && (static_cast<unsigned char>(s[lead - 1]) & 0xC0) == 0x80 && end - lead < 3) {
    --lead;
  }
  if (lead > 0) {
    const auto c = static_cast<unsigned char>(s[lead - 1]);
    std::size_t need = 1;
    if ((c & 0xE0) == 0xC0) {
      need = 2;
    } else if ((c & 0xF0) == 0xE0) {
      need = 3;
    } else if ((c & 0xF8) == 0xF0) {
      need = 4;
    }
    if (c >= 0x80 && end - (lead - 1) < need) end = lead - 1;
  }
  s.resize(end);
}

UrlScheme SchemeOf(std::string_view url) {
  if (StartsWithIgnoreCase(url, "https://")) return UrlScheme::kHttps;
  if (StartsWithIgnoreCase(url, "http://")) return UrlScheme::kHttp;
  return UrlScheme::kOther;
}

bool IsAllowedStaticHeader(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    const bool token = std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", ch) != nullptr;
    if (!token || ch == '\0') return false;
  }
  for (char ch : value) {
    if (ch == '\r' || ch == '\n' || ch == '\0') return false;
  }
  static constexpr std::string_view kReserved[] = {
      "content-type", "content-length", "content-encoding",   "transfer-encoding", "host",
      "expect",       "connection",     "keep-alive",         "upgrade",           "te",
      "trailer",      "user-agent",     "proxy-authorization"};
  for (std::string_view r : kReserved) {
    if (EqualsIgnoreCase(name, r)) return false;
  }
  return !StartsWithIgnoreCase(name, "webhook-") && !StartsWithIgnoreCase(name, "ordinavo-");
}

}  // namespace outbound::delivery::internal
