#include "core/ids.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <thread>
#include <vector>

namespace outbound::core {
namespace {

TEST(UlidTest, FormatIs26CrockfordCharacters) {
  UlidGenerator gen;
  std::string id = gen.Next(1750000000000);
  EXPECT_EQ(id.size(), 26u);
  EXPECT_TRUE(IsUlid(id));
  EXPECT_EQ(id.find_first_not_of("0123456789ABCDEFGHJKMNPQRSTVWXYZ"), std::string::npos);
  EXPECT_EQ(UlidTime(id), 1750000000000);
}

TEST(UlidTest, EventIdsAreUpperCaseUlidsAfterEvt) {
  UlidGenerator ids;
  EXPECT_TRUE(IsEventId("evt_" + ids.Next(1'750'000'000'000)));
  EXPECT_TRUE(IsEventId("evt_01JD5Z8Q2W3E4R5T6Y7V8X9Z0A"));
  for (const char* bad : {"evt_01jd5z8q2w3e4r5t6y7v8x9z0a", "evt_01JD5Z8Q2W3E4R5T6Y7V8X9Z0", "abc",
                          "del_01JD5Z8Q2W3E4R5T6Y7V8X9Z0A", "evt_81JD5Z8Q2W3E4R5T6Y7V8X9Z0A"}) {
    EXPECT_FALSE(IsEventId(bad)) << bad;
  }
}

TEST(UlidTest, EncodesTimeLikeTheSpec) {
  // The ULID spec's example: 1469918176385 → "01ARYZ6S41".
  UlidGenerator gen([](unsigned char* p, std::size_t n) { std::memset(p, 0, n); });
  EXPECT_EQ(gen.Next(1469918176385), "01ARYZ6S410000000000000000");
  EXPECT_EQ(UlidTime("01ARYZ6S41TSV4RRFFQ69G5FAV"), 1469918176385);
}

TEST(UlidTest, RandomPartUsesAllEightyBits) {
  UlidGenerator gen([](unsigned char* p, std::size_t n) { std::memset(p, 0xff, n); });
  EXPECT_EQ(gen.Next(0), "0000000000ZZZZZZZZZZZZZZZZ");
}

TEST(UlidTest, OrderedAcrossMilliseconds) {
  UlidGenerator gen;
  std::string a = gen.Next(1000);
  std::string b = gen.Next(1001);
  std::string c = gen.Next(2000000000000);
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
}

TEST(UlidTest, MonotonicWithinOneMillisecond) {
  UlidGenerator gen;
  std::string prev = gen.Next(1750000000000);
  for (int i = 0; i < 1000; ++i) {
    std::string next = gen.Next(1750000000000);
    ASSERT_LT(prev, next);
    ASSERT_EQ(UlidTime(next), 1750000000000);
    prev = next;
  }
}

TEST(UlidTest, IncrementCarriesIntoHigherBytes) {
  UlidGenerator gen([](unsigned char* p, std::size_t n) {
    std::memset(p, 0, n);
    p[n - 1] = 0xff;
  });
  std::string a = gen.Next(5);
  std::string b = gen.Next(5);
  EXPECT_LT(a, b);
  EXPECT_EQ(b, "00000000050000000000000080");
}

TEST(UlidTest, ClockSteppingBackStaysMonotonic) {
  UlidGenerator gen;
  std::string a = gen.Next(5000);
  std::string b = gen.Next(4000);
  EXPECT_LT(a, b);
}

TEST(UlidTest, UniqueAcrossThreads) {
  UlidGenerator gen;
  std::vector<std::vector<std::string>> per(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) per[t].push_back(gen.Next(42));
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (auto& v : per) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), 2000u);
}

TEST(UlidTest, IsUlidRejectsBadInput) {
  EXPECT_FALSE(IsUlid(""));
  EXPECT_FALSE(IsUlid("01ARYZ6S41TSV4RRFFQ69G5FA"));    // 25
  EXPECT_FALSE(IsUlid("01ARYZ6S41TSV4RRFFQ69G5FAVX"));  // 27
  EXPECT_FALSE(IsUlid("01ARYZ6S41TSV4RRFFQ69G5FAU"));   // U is not Crockford
  EXPECT_FALSE(IsUlid("81ARYZ6S41TSV4RRFFQ69G5FAV"));   // overflows 128 bits
  EXPECT_TRUE(IsUlid("01ARYZ6S41TSV4RRFFQ69G5FAV"));
  EXPECT_TRUE(IsUlid("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
}

TEST(RandomBytesTest, FillsBuffer) {
  unsigned char a[32] = {}, b[32] = {};
  RandomBytes(a, sizeof a);
  RandomBytes(b, sizeof b);
  EXPECT_NE(std::memcmp(a, b, sizeof a), 0);
}

TEST(StrongIdTest, ComparesAndHashes) {
  TenantId a(1), b(2);
  EXPECT_LT(a, b);
  EXPECT_EQ(a, TenantId(1));
  EXPECT_EQ(std::hash<TenantId>()(a), std::hash<std::int64_t>()(1));
}

}  // namespace
}  // namespace outbound::core
