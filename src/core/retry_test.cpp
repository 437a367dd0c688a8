#include "core/retry.h"

#include <gtest/gtest.h>

namespace outbound::core {
namespace {

constexpr UnixMs kS = 1000, kM = 60 * kS, kH = 60 * kM;

TEST(RetryPolicyTest, DefaultSchedule) {
  RetryPolicy p = RetryPolicy::Default();
  EXPECT_EQ(p.delays,
            (std::vector<UnixMs>{0, 5 * kS, 5 * kM, 30 * kM, 2 * kH, 5 * kH, 10 * kH, 10 * kH}));
  EXPECT_DOUBLE_EQ(p.jitter, 0.2);
  EXPECT_EQ(p.MaxAttempts(), 8);
  EXPECT_EQ(p.LongestDelay(), 10 * kH);
}

TEST(RetryPolicyTest, ParseMatchesDefault) {
  auto p = RetryPolicy::Parse("0s,5s,5m,30m,2h,5h,10h,10h", 0.2);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->delays, RetryPolicy::Default().delays);
  auto q = RetryPolicy::Parse(" 0s, 250ms ,1s", 0);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->delays, (std::vector<UnixMs>{0, 250, 1000}));
}

TEST(RetryPolicyTest, ParseRejects) {
  for (const char* s : {"", "0s,,5s", "0s,5", "5x", "0s,"}) {
    auto p = RetryPolicy::Parse(s, 0.2);
    EXPECT_FALSE(p) << s;
    if (!p) {
      EXPECT_EQ(p.error().code, "invalid_retry_schedule");
    }
  }
  // Attempt 1 goes out at once: a schedule whose first delay is not 0 would be read wrong.
  for (const char* s : {"30s,5s", "1ms", "5s,5m,30m"}) {
    auto p = RetryPolicy::Parse(s, 0.2);
    ASSERT_FALSE(p) << s;
    EXPECT_EQ(p.error().code, "invalid_retry_schedule");
    EXPECT_NE(p.error().message.find(std::string("0s,") + s), std::string::npos)
        << p.error().message;
  }
  EXPECT_FALSE(RetryPolicy::Parse("0s", -0.1));
  EXPECT_FALSE(RetryPolicy::Parse("0s", 1.5));
}

TEST(RetryPolicyTest, WithoutJitter) {
  RetryPolicy p = RetryPolicy::Default();
  p.jitter = 0;
  EXPECT_EQ(p.DelayBefore(1, 0.9), 0);
  EXPECT_EQ(p.DelayBefore(2, 0.9), 5 * kS);
  EXPECT_EQ(p.DelayBefore(8, 0.1), 10 * kH);
  EXPECT_EQ(p.DelayBefore(9, 0.5), std::nullopt);
  EXPECT_EQ(p.DelayBefore(0, 0.5), std::nullopt);
}

TEST(RetryPolicyTest, JitterBounds) {
  RetryPolicy p = RetryPolicy::Default();
  EXPECT_EQ(p.DelayBefore(2, 0.0), 4 * kS);       // -20 %
  EXPECT_EQ(p.DelayBefore(2, 0.5), 5 * kS);       // centre
  EXPECT_EQ(p.DelayBefore(2, 0.75), 5500);        // +10 %
  EXPECT_EQ(p.DelayBefore(3, 0.999999), 360000);  // just under +20 %, rounded
  EXPECT_EQ(p.DelayBefore(1, 0.0), 0);            // no jitter on an immediate attempt
}

TEST(RetryPolicyTest, RetryAfterRaisesUpToLongest) {
  RetryPolicy p = RetryPolicy::Default();
  p.jitter = 0;
  // Header longer than the schedule's delay: it wins.
  EXPECT_EQ(p.DelayBefore(2, 0.5, 60 * kS), 60 * kS);
  // Shorter: the schedule wins.
  EXPECT_EQ(p.DelayBefore(3, 0.5, 10 * kS), 5 * kM);
  // Capped at the longest delay of the schedule.
  EXPECT_EQ(p.DelayBefore(2, 0.5, 48 * kH), 10 * kH);
  // Negative header values are ignored.
  EXPECT_EQ(p.DelayBefore(2, 0.5, -5), 5 * kS);
  // Still nullopt once the cycle is exhausted.
  EXPECT_EQ(p.DelayBefore(9, 0.5, 60 * kS), std::nullopt);
}

TEST(RetryPolicyTest, RetryAfterWithJitter) {
  RetryPolicy p = RetryPolicy::Default();
  EXPECT_EQ(p.DelayBefore(2, 1.0 - 1e-12, 1 * kS), 6 * kS);  // jittered schedule wins
  EXPECT_EQ(p.DelayBefore(2, 0.0, 30 * kS), 30 * kS);
}

}  // namespace
}  // namespace outbound::core
