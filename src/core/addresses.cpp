// The SSRF guard's address lists (addresses.h).
#include "core/addresses.h"

#include <algorithm>
#include <cstddef>

namespace outbound::core {

bool IsPrivateV4(std::uint32_t a) {
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
         || in(0xC0000200, 24)  // 192.0.2/24 TEST-NET-1 (documentation, never routed)
         || in(0xC0A80000, 16)  // 192.168/16
         || in(0xC6120000, 15)  // 198.18/15 benchmarking
         || in(0xC6336400, 24)  // 198.51.100/24 TEST-NET-2
         || in(0xCB007100, 24)  // 203.0.113/24 TEST-NET-3
         || in(0xE0000000, 4)   // multicast
         || in(0xF0000000, 4);  // reserved and broadcast
}

bool IsPrivateV6(const std::array<unsigned char, 16>& b) {
  // The IPv4 address in 4 bytes of b from `at`.
  const auto v4_at = [&b](std::size_t at) {
    return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) |
           (std::uint32_t{b[at + 2]} << 8) | std::uint32_t{b[at + 3]};
  };
  const auto zero = [&b](std::size_t from, std::size_t to) {
    return std::all_of(b.begin() + static_cast<std::ptrdiff_t>(from),
                       b.begin() + static_cast<std::ptrdiff_t>(to),
                       [](unsigned char c) { return c == 0; });
  };
  if (zero(0, 12)) return true;  // ::, ::1 and the deprecated IPv4-compatible form (::a.b.c.d)
  if (zero(0, 10) && b[10] == 0xff && b[11] == 0xff) return IsPrivateV4(v4_at(12));  // mapped
  if (zero(0, 8) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0) {
    return IsPrivateV4(v4_at(12));  // ::ffff:0:a.b.c.d, IPv4-translated (RFC 2765)
  }
  if ((b[0] & 0xfe) == 0xfc) return true;                  // fc00::/7 unique local
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return true;  // fe80::/10 link-local
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return true;  // fec0::/10 site-local (old)
  if (b[0] == 0xff) return true;                           // multicast
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) {
    // 64:ff9b:1::/48 local-use NAT64 (RFC 8215): the operator's own translator, whose prefix
    // length (and so where the IPv4 address sits) is its choice: private.
    if (b[4] == 0x00 && b[5] == 0x01) return true;
    return IsPrivateV4(v4_at(12));  // 64:ff9b::/96 well-known NAT64: its IPv4 address
  }
  if (b[0] == 0x20 && b[1] == 0x02) return IsPrivateV4(v4_at(2));  // 2002::/16 6to4
  return false;
}

}  // namespace outbound::core
