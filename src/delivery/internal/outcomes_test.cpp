// Outcomes and retry with hand-set randomness.
#include "delivery/internal/outcomes.h"

#include <gtest/gtest.h>

#include <string>

#include "core/testing/fakes.h"

namespace outbound::delivery::internal {
namespace {

using core::UnixMs;

constexpr UnixMs kT = 1'800'000'000'000;

// Counts the draws, so that a test can say when randomness was (not) used.
class CountingRandom final : public core::Random {
 public:
  explicit CountingRandom(double value) : value_(value) {}
  double Unit() override {
    ++draws;
    return value_;
  }
  int draws = 0;

 private:
  double value_;
};

core::RetryPolicy Policy(const char* schedule, double jitter) {
  auto p = core::RetryPolicy::Parse(schedule, jitter);
  EXPECT_TRUE(p.has_value());
  return *p;
}

store::DeliveryJob Job(int attempts, int cycle_attempts) {
  store::DeliveryJob job;
  job.id = core::DeliveryRowId(5);
  job.tenant = core::TenantId(7);
  job.subscription = core::SubscriptionId(9);
  job.event_id = "evt_1";
  job.event_type = "appointment.completed";
  job.attempts = attempts;
  job.cycle_attempts = cycle_attempts;
  return job;
}

store::AttemptRecord Record(int attempt) {
  store::AttemptRecord r;
  r.delivery_id = "del_1";
  r.attempt = attempt;
  return r;
}

TEST(ConcludeTest, SuccessNeedsNoRandomness) {
  CountingRandom random(0.5);
  store::Outcome o =
      Conclude(Job(0, 0), Record(1), true, std::nullopt, Policy("0s,10s", 0.2), random, kT);
  EXPECT_EQ(o.new_status, store::DeliveryStatus::kSucceeded);
  EXPECT_FALSE(o.next_attempt_at.has_value());
  EXPECT_EQ(o.delivery.value, 5);
  EXPECT_EQ(o.subscription.value, 9);
  EXPECT_EQ(o.event_type, "appointment.completed");
  EXPECT_EQ(o.attempt.delivery_id, "del_1");
  EXPECT_EQ(random.draws, 0);
}

TEST(ConcludeTest, FailureSchedulesTheNextAttemptWithJitterFromRandom) {
  const core::RetryPolicy policy = Policy("0s,10s,5m", 0.2);
  CountingRandom high(0.75);  // +10 %
  store::Outcome o = Conclude(Job(0, 0), Record(1), false, std::nullopt, policy, high, kT);
  EXPECT_EQ(o.new_status, store::DeliveryStatus::kFailed);
  EXPECT_EQ(o.next_attempt_at, kT + 11'000);
  EXPECT_EQ(high.draws, 1);

  core::testing::FakeRandom low(0.0);  // -20 %; the second attempt of the cycle waits 5 min
  o = Conclude(Job(4, 1), Record(5), false, std::nullopt, policy, low, kT);
  EXPECT_EQ(o.next_attempt_at, kT + 240'000);
}

TEST(ConcludeTest, RetryAfterRaisesTheDelayUpToTheLongest) {
  const core::RetryPolicy policy = Policy("0s,1s,5s", 0.0);
  core::testing::FakeRandom random;
  store::Outcome o = Conclude(Job(0, 0), Record(1), false, 3'000, policy, random, kT);
  EXPECT_EQ(o.next_attempt_at, kT + 3'000);
  o = Conclude(Job(0, 0), Record(1), false, 3'600'000, policy, random, kT);
  EXPECT_EQ(o.next_attempt_at, kT + 5'000);
  o = Conclude(Job(0, 0), Record(1), false, 10, policy, random, kT);
  EXPECT_EQ(o.next_attempt_at, kT + 1'000);  // never below the schedule
}

TEST(ConcludeTest, AnExhaustedCycleIsDead) {
  core::testing::FakeRandom random;
  store::Outcome o =
      Conclude(Job(2, 2), Record(3), false, std::nullopt, Policy("0s,1s,1s", 0.2), random, kT);
  EXPECT_EQ(o.new_status, store::DeliveryStatus::kDead);
  EXPECT_FALSE(o.next_attempt_at.has_value());
}

// A test webhook (CONTRACT §13) has one attempt: a failure is final at once, whatever the
// schedule still allows, and the outcome says it is a test (nothing may count it).
TEST(ConcludeTest, ATestDeliveryIsNeverRetried) {
  CountingRandom random(0.5);
  store::DeliveryJob job = Job(0, 0);
  job.test = true;
  store::Outcome o = Conclude(job, Record(1), false, 1000, Policy("0s,1s,1s", 0.2), random, kT);
  EXPECT_EQ(o.new_status, store::DeliveryStatus::kDead);
  EXPECT_FALSE(o.next_attempt_at.has_value());
  EXPECT_TRUE(o.test);
  EXPECT_EQ(random.draws, 0);
  o = Conclude(job, Record(1), true, std::nullopt, Policy("0s,1s,1s", 0.2), random, kT);
  EXPECT_EQ(o.new_status, store::DeliveryStatus::kSucceeded);
  EXPECT_TRUE(o.test);
  EXPECT_FALSE(
      Conclude(Job(0, 0), Record(1), true, std::nullopt, Policy("0s", 0), random, kT).test);
}

Response Answer(int status, std::string body = "", std::string retry_after = "") {
  Response r;
  r.attempt.job = Job(2, 0);
  r.attempt.delivery_id = "del_2";
  r.attempt.attempted_at = kT - 500;
  r.http_status = status;
  r.body = std::move(body);
  r.retry_after = std::move(retry_after);
  return r;
}

TEST(ReadResponseTest, TheStatusLineDecides) {
  AttemptResult ok = ReadResponse(Answer(204, "fine"), 42, kT, 4096);
  EXPECT_TRUE(ok.success);
  EXPECT_EQ(ok.record.delivery_id, "del_2");
  EXPECT_EQ(ok.record.attempt, 3);
  EXPECT_EQ(ok.record.attempted_at, kT - 500);
  EXPECT_EQ(ok.record.duration_ms, 42);
  EXPECT_EQ(ok.record.http_status, 204);
  EXPECT_FALSE(ok.record.error.has_value());
  EXPECT_EQ(ok.record.response_snippet, "fine");

  AttemptResult bad = ReadResponse(Answer(500), 1, kT, 4096);
  EXPECT_FALSE(bad.success);
  EXPECT_EQ(bad.record.http_status, 500);
  EXPECT_EQ(bad.record.error, "http_status");
  EXPECT_FALSE(bad.record.response_snippet.has_value());
}

TEST(ReadResponseTest, RetryAfterCountsOnlyFor429And503) {
  EXPECT_EQ(ReadResponse(Answer(429, "", "7"), 0, kT, 4096).retry_after, 7'000);
  EXPECT_EQ(ReadResponse(Answer(503, "", "7"), 0, kT, 4096).retry_after, 7'000);
  EXPECT_FALSE(ReadResponse(Answer(500, "", "7"), 0, kT, 4096).retry_after.has_value());
  EXPECT_FALSE(ReadResponse(Answer(429, "", "soon"), 0, kT, 4096).retry_after.has_value());
}

TEST(ReadResponseTest, NoStatusLineKeepsTheTransportError) {
  Response r = Answer(0);
  r.error = "timeout";
  AttemptResult result = ReadResponse(r, 5000, kT, 4096);
  EXPECT_FALSE(result.success);
  EXPECT_FALSE(result.record.http_status.has_value());
  EXPECT_EQ(result.record.error, "timeout");
}

TEST(ReadResponseTest, TheStoredBodyIsTextCutOnACharacterBoundary) {
  EXPECT_EQ(ReadResponse(Answer(500, "ab\xE2\x82\xAC"), 0, kT, 4).record.response_snippet, "ab");
  EXPECT_EQ(ReadResponse(Answer(500, "a\xff"), 0, kT, 4096).record.response_snippet,
            "a\xEF\xBF\xBD");
  const std::string long_body(5000, 'x');
  EXPECT_EQ(ReadResponse(Answer(500, long_body), 0, kT, 8192).record.response_snippet->size(),
            4096u);  // never more than 4 KB, whatever the store limit
}

TEST(UnsentAttemptTest, RecordsWhyNothingWasSent) {
  store::AttemptRecord r = UnsentAttempt(Job(4, 0), "del_3", kT, "insecure_url");
  EXPECT_EQ(r.delivery_id, "del_3");
  EXPECT_EQ(r.attempt, 5);
  EXPECT_EQ(r.attempted_at, kT);
  EXPECT_EQ(r.error, "insecure_url");
  EXPECT_FALSE(r.http_status.has_value());
}

}  // namespace
}  // namespace outbound::delivery::internal
