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

bool IsPrivateV4(std::uint32_t a) {  // host byte order
  const auto in = [a](std::uint32_t net, int bits) {
    const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
    return (a & mask) == net;
  };
  return in(0x00000000, 8)      // 0.0.0.0/8 "this network"
         || in(0x0A000000, 8)   // 10/8
         || in(0x64400000, 10)  // 100.64/10 CGNAT
         || in(0x7F000000, 8)   // loopback
         || in(0xA9FE0000, 16)  // link-local (cloud metadata lives here)
         || in(0xAC100000, 12)  // 172.16/12
         || in(0xC0000000, 24)  // 192.0.0/24 IETF protocol assignments
         || in(0xC0A80000, 16)  // 192.168/16
         || in(0xC6120000, 15)  // 198.18/15 benchmarking
         || in(0xE0000000, 4)   // multicast
         || in(0xF0000000, 4);  // reserved and broadcast
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
    return IsPrivateV4(ntohl(in.sin_addr.s_addr));
  }
  if (addr->sa_family == AF_INET6) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, addr, sizeof in6);
    const unsigned char* b = in6.sin6_addr.s6_addr;
    static constexpr std::array<unsigned char, 12> kMapped = {0, 0, 0, 0, 0,    0,
                                                              0, 0, 0, 0, 0xff, 0xff};
    static constexpr std::array<unsigned char, 12> kZero = {};
    if (std::memcmp(b, kMapped.data(), 12) == 0 || std::memcmp(b, kZero.data(), 12) == 0) {
      // IPv4-mapped (::ffff:a.b.c.d) and the deprecated IPv4-compatible form, which also
      // covers :: and ::1.
      const std::uint32_t v4 = (std::uint32_t{b[12]} << 24) | (std::uint32_t{b[13]} << 16) |
                               (std::uint32_t{b[14]} << 8) | std::uint32_t{b[15]};
      return IsPrivateV4(v4) || std::memcmp(b, kZero.data(), 12) == 0;
    }
    if ((b[0] & 0xfe) == 0xfc) return true;                  // fc00::/7 unique local
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return true;  // fe80::/10 link-local
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return true;  // fec0::/10 site-local (old)
    if (b[0] == 0xff) return true;                           // multicast
    if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) {
      // 64:ff9b::/96 NAT64: judge the embedded IPv4 address.
      const std::uint32_t v4 = (std::uint32_t{b[12]} << 24) | (std::uint32_t{b[13]} << 16) |
                               (std::uint32_t{b[14]} << 8) | std::uint32_t{b[15]};
      return IsPrivateV4(v4);
    }
    return false;
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
