// Which IP addresses a webhook must not go to without --allow-private-networks (the SSRF guard):
// one list for the API's check of a subscription URL (api/validation.cpp) and the senders' check
// at connect time (delivery/internal/http_util.cpp).
#pragma once

#include <array>
#include <cstdint>

namespace outbound::core {

// `a` in host byte order: "this network", 10/8, CGNAT, loopback, link-local (cloud metadata),
// 172.16/12, 192.0.0/24, the documentation networks, 192.168/16, benchmarking, multicast,
// reserved and broadcast.
bool IsPrivateV4(std::uint32_t a);

// `b` in network order: the whole of ::/96 (::, ::1 and the deprecated IPv4-compatible form,
// whatever its address), unique local, link-local, site-local, multicast, local-use NAT64
// (64:ff9b:1::/48); and the forms that carry an IPv4 address, judged by it: mapped, well-known
// NAT64, IPv4-translated, 6to4.
bool IsPrivateV6(const std::array<unsigned char, 16>& b);

}  // namespace outbound::core
