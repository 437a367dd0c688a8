// The dispatcher's small HTTP helpers (http_util.h).
#include "delivery/internal/http_util.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

namespace outbound::delivery {
namespace {

TEST(HttpUtilTest, ParsesRetryAfter) {
  using internal::ParseRetryAfter;
  EXPECT_EQ(ParseRetryAfter("120", 0), 120000);
  EXPECT_EQ(ParseRetryAfter(" 0 ", 0), 0);
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", 784111777000 - 5000), 5000);
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", 784111777000 + 5000), 0);
  EXPECT_FALSE(ParseRetryAfter("soon", 0).has_value());
  EXPECT_FALSE(ParseRetryAfter("12abc", 0).has_value());
  EXPECT_FALSE(ParseRetryAfter("", 0).has_value());
}

sockaddr_storage V4(const char* text) {
  sockaddr_storage ss{};
  auto* in = reinterpret_cast<sockaddr_in*>(&ss);
  in->sin_family = AF_INET;
  inet_pton(AF_INET, text, &in->sin_addr);
  return ss;
}
sockaddr_storage V6(const char* text) {
  sockaddr_storage ss{};
  auto* in = reinterpret_cast<sockaddr_in6*>(&ss);
  in->sin6_family = AF_INET6;
  inet_pton(AF_INET6, text, &in->sin6_addr);
  return ss;
}

TEST(HttpUtilTest, RecognisesPrivateAddresses) {
  auto priv = [](sockaddr_storage ss) {
    return internal::IsPrivateAddress(reinterpret_cast<sockaddr*>(&ss));
  };
  for (const char* a : {"127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
                        "169.254.169.254", "0.0.0.0", "100.64.0.1", "224.0.0.1"}) {
    EXPECT_TRUE(priv(V4(a))) << a;
  }
  for (const char* a : {"8.8.8.8", "172.32.0.1", "93.184.216.34", "100.128.0.1"}) {
    EXPECT_FALSE(priv(V4(a))) << a;
  }
  for (const char* a : {"::1", "::", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1"}) {
    EXPECT_TRUE(priv(V6(a))) << a;
  }
  for (const char* a : {"2606:4700::1111", "::ffff:8.8.8.8"}) EXPECT_FALSE(priv(V6(a))) << a;
  // Private IPv4 addresses inside IPv6 forms (found by an audit, 7 Dec): NAT64 (the well-known
  // prefix judged by its address, the local-use one always), IPv4-translated, 6to4; and the
  // IPv4 documentation networks.
  for (const char* a :
       {"64:ff9b::a9fe:a9fe", "64:ff9b:1::8.8.8.8", "64:ff9b:1:ffff::1", "::ffff:0:169.254.169.254",
        "::ffff:0:10.0.0.1", "2002:7f00:1::1", "2002:a9fe:a9fe::1"}) {
    EXPECT_TRUE(priv(V6(a))) << a;
  }
  for (const char* a : {"64:ff9b::8.8.8.8", "::ffff:0:8.8.8.8", "2002:808:808::1"}) {
    EXPECT_FALSE(priv(V6(a))) << a;
  }
  for (const char* a : {"192.0.2.1", "198.51.100.7", "203.0.113.9"}) EXPECT_TRUE(priv(V4(a))) << a;
}

TEST(HttpUtilTest, TruncatesOnUtf8Boundaries) {
  std::string s = "ab\xC3\xA9";  // "abé"
  internal::TruncateUtf8(s, 3);
  EXPECT_EQ(s, "ab");
  s = "ab\xE2\x82\xAC";  // "ab€"
  internal::TruncateUtf8(s, 4);
  EXPECT_EQ(s, "ab");
  s = "ab\xE2\x82\xAC";
  internal::TruncateUtf8(s, 5);
  EXPECT_EQ(s, "ab\xE2\x82\xAC");
  s = "abcdef";
  internal::TruncateUtf8(s, 4);
  EXPECT_EQ(s, "abcd");
}

TEST(HttpUtilTest, FiltersStaticHeaders) {
  EXPECT_TRUE(internal::IsAllowedStaticHeader("Authorization", "Bearer x"));
  EXPECT_TRUE(internal::IsAllowedStaticHeader("X-Api-Key", "k"));
  EXPECT_FALSE(internal::IsAllowedStaticHeader("webhook-signature", "v1,forged"));
  EXPECT_FALSE(internal::IsAllowedStaticHeader("Ordinavo-Attempt", "9"));
  EXPECT_FALSE(internal::IsAllowedStaticHeader("Content-Length", "1"));
  EXPECT_FALSE(internal::IsAllowedStaticHeader("X-Bad", "a\r\nX-Injected: 1"));
  EXPECT_FALSE(internal::IsAllowedStaticHeader("Bad Name", "v"));
}

}  // namespace
}  // namespace outbound::delivery
