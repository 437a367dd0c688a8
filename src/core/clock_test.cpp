#include "core/clock.h"

#include <gtest/gtest.h>

#include "core/testing/fakes.h"

namespace outbound::core {
namespace {

constexpr UnixMs kT = 1782397860000;  // 2026-06-25T14:31:00Z

TEST(ParseRfc3339Test, Utc) {
  auto t = ParseRfc3339("2026-06-25T14:31:00Z");
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(*t, kT);
  EXPECT_EQ(*ParseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseRfc3339("2026-06-25t14:31:00z"), kT);
}

TEST(ParseRfc3339Test, Offsets) {
  EXPECT_EQ(*ParseRfc3339("2026-06-25T16:31:00+02:00"), kT);
  EXPECT_EQ(*ParseRfc3339("2026-06-25T09:01:00-05:30"), kT);
  EXPECT_EQ(*ParseRfc3339("2026-06-25T14:31:00+00:00"), kT);
  EXPECT_EQ(*ParseRfc3339("2026-06-25T14:31:00-00:00"), kT);
  // Crossing a day and a year boundary.
  EXPECT_EQ(*ParseRfc3339("2027-01-01T01:00:00+02:00"), *ParseRfc3339("2026-12-31T23:00:00Z"));
}

// The time in UTC keeps a four-digit year, as FormatUtc writes it: an offset that carries it
// past 9999 or before 0000 is refused, not written out as "10000-..." or "-001-...".
TEST(ParseRfc3339Test, AnOffsetCannotCarryTheYearOutOfFourDigits) {
  for (const char* bad : {"9999-12-31T23:59:59-00:01", "0000-01-01T00:00:00+00:01"}) {
    auto t = ParseRfc3339(bad);
    ASSERT_FALSE(t) << bad;
    EXPECT_EQ(t.error().code, "invalid_time") << bad;
  }
  for (const char* edge : {"9999-12-31T23:59:59.999Z", "0000-01-01T00:00:00Z",
                           "9999-12-31T23:59:59+00:01", "0000-01-01T00:00:00-00:01"}) {
    auto t = ParseRfc3339(edge);
    ASSERT_TRUE(t) << edge;
    EXPECT_EQ(*ParseRfc3339(FormatUtc(*t)), *t) << edge << " -> " << FormatUtc(*t);
  }
}

TEST(ParseRfc3339Test, FractionsTruncatedToMilliseconds) {
  EXPECT_EQ(*ParseRfc3339("2026-06-25T14:31:00.1Z"), kT + 100);
  EXPECT_EQ(*ParseRfc3339("2026-06-25T14:31:00.12Z"), kT + 120);
  EXPECT_EQ(*ParseRfc3339("2026-06-25T14:31:00.123Z"), kT + 123);
  EXPECT_EQ(*ParseRfc3339("2026-06-25T14:31:00.123999999Z"), kT + 123);
}

TEST(ParseRfc3339Test, MissingOffsetRejected) {
  auto t = ParseRfc3339("2026-06-25T14:31:00");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, "invalid_time");
  EXPECT_FALSE(ParseRfc3339("2026-06-25T14:31:00.500"));
}

TEST(ParseRfc3339Test, Garbage) {
  for (const char* s :
       {"", "2026-06-25", "2026-06-25T14:31Z", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
        "2026-06-31T00:00:00Z", "2026-06-25T24:00:00Z", "2026-06-25T14:60:00Z",
        "2026-06-25T14:31:00+2:00", "2026-06-25T14:31:00+0200", "2026-06-25T14:31:00+24:00",
        "2026-06-25T14:31:00.Z", "2026-06-25T14:31:00Zx", "x2026-06-25T14:31:00Z",
        "2026/06/25T14:31:00Z", "1750000000"}) {
    auto t = ParseRfc3339(s);
    EXPECT_FALSE(t) << s;
    if (!t) {
      EXPECT_EQ(t.error().code, "invalid_time") << s;
    }
  }
  EXPECT_TRUE(ParseRfc3339("2024-02-29T00:00:00Z"));  // leap year
}

TEST(FormatUtcTest, MillisecondsOnlyWhenNonZero) {
  EXPECT_EQ(FormatUtc(kT), "2026-06-25T14:31:00Z");
  EXPECT_EQ(FormatUtc(kT + 120), "2026-06-25T14:31:00.120Z");
  EXPECT_EQ(FormatUtc(kT + 5), "2026-06-25T14:31:00.005Z");
  EXPECT_EQ(FormatUtc(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatUtc(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatUtc(951782400000), "2000-02-29T00:00:00Z");
  // Every field at its widest and at its ends; the years outside four digits as printf writes
  // them.
  EXPECT_EQ(FormatUtc(253402300799999), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatUtc(-62167219200000), "0000-01-01T00:00:00Z");
  EXPECT_EQ(FormatUtc(1700000000010), "2023-11-14T22:13:20.010Z");
  EXPECT_EQ(FormatUtc(253402300800000), "10000-01-01T00:00:00Z");
  EXPECT_EQ(FormatUtc(-62167219200001), "-001-12-31T23:59:59.999Z");
}

TEST(FormatUtcTest, RoundTrips) {
  for (UnixMs ms : {UnixMs{0}, kT, kT + 999, UnixMs{253402300799999}, UnixMs{1709164800123}}) {
    EXPECT_EQ(*ParseRfc3339(FormatUtc(ms)), ms) << ms;
  }
}

TEST(ParseDurationTest, Units) {
  EXPECT_EQ(ParseDuration("250ms"), 250);
  EXPECT_EQ(ParseDuration("0s"), 0);
  EXPECT_EQ(ParseDuration("5s"), 5000);
  EXPECT_EQ(ParseDuration("5m"), 300000);
  EXPECT_EQ(ParseDuration("2h"), 7200000);
  EXPECT_EQ(ParseDuration("5d"), 432000000);
  EXPECT_EQ(ParseDuration("1h30m"), 5400000);
  EXPECT_EQ(ParseDuration("0"), 0);
}

TEST(ParseDurationTest, Invalid) {
  for (const char* s : {"", "5", "s", "5x", "-5s", "5 s", "1.5h", "ms", "99999999999999999999d"}) {
    EXPECT_FALSE(ParseDuration(s)) << s;
  }
}

TEST(SystemClockTest, IsNow) {
  SystemClock clock;
  UnixMs now = clock.Now();
  EXPECT_GT(now, 1700000000000);
  EXPECT_LE(now, clock.Now());
}

TEST(SteadyClockTest, NeverGoesBack) {
  SteadyClock clock;
  MonotonicClock::TimePoint last = clock.Now();
  for (int i = 0; i < 1000; ++i) {
    const MonotonicClock::TimePoint now = clock.Now();
    EXPECT_LE(last, now);
    last = now;
  }
}

TEST(FakeClockTest, MovesOnlyWhenTold) {
  testing::FakeClock wall(kT);
  EXPECT_EQ(wall.Now(), kT);
  wall.Advance(250);
  EXPECT_EQ(wall.Now(), kT + 250);
  wall.Set(kT - 1000);  // a wall clock may be set back
  EXPECT_EQ(wall.Now(), kT - 1000);

  testing::FakeMonotonicClock steady;
  const MonotonicClock::TimePoint start = steady.Now();
  EXPECT_GT(start, MonotonicClock::TimePoint{});
  EXPECT_EQ(steady.Now(), start);
  steady.Advance(std::chrono::milliseconds(1500));
  EXPECT_EQ(steady.Now() - start, std::chrono::milliseconds(1500));
  steady.Advance(std::chrono::microseconds(1));
  EXPECT_EQ(steady.Now() - start, std::chrono::microseconds(1'500'001));
}

}  // namespace
}  // namespace outbound::core
