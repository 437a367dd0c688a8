// Lanes on a fake steady clock, with subscriptions from a loader instead of a store: no sleeps.
#include "delivery/internal/lanes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/testing/fakes.h"

namespace outbound::delivery::internal {
namespace {

using core::DeliveryRowId;
using core::SubscriptionId;
using namespace std::chrono_literals;

constexpr SubscriptionId kA{1};
constexpr SubscriptionId kB{2};

std::shared_ptr<const SubInfo> Info(int max_concurrency,
                                    std::optional<double> rate_per_second = std::nullopt,
                                    bool ordered = false) {
  auto info = std::make_shared<SubInfo>();
  info->usable = true;
  info->url = "https://receiver.example/hook";
  info->scheme = UrlScheme::kHttps;
  info->max_concurrency = max_concurrency;
  info->rate_per_second = rate_per_second;
  info->ordered = ordered;
  return info;
}

store::DeliveryJob Job(std::int64_t id, SubscriptionId sub,
                       std::optional<std::int64_t> target = std::nullopt) {
  store::DeliveryJob job;
  job.id = DeliveryRowId(id);
  job.tenant = core::TenantId(7);
  job.subscription = sub;
  job.event_id = "evt_" + std::to_string(id);
  job.target_id = target;
  return job;
}

class LanesTest : public ::testing::Test {
 protected:
  // The next job's id, or 0 when no lane may send.
  std::int64_t Take() { return TakeFrom(lanes_); }
  std::int64_t TakeFrom(Lanes& lanes) {
    auto next = lanes.TakeNext(steady_.Now(), released_);
    return next ? next->job.id.value : 0;
  }

  std::map<std::int64_t, std::shared_ptr<const SubInfo>> infos_;  // missing: the store fails
  int loads_ = 0;
  SubscriptionCache cache_{[this](core::TenantId, SubscriptionId id) {
    ++loads_;
    auto it = infos_.find(id.value);
    return it == infos_.end() ? nullptr : it->second;
  }};
  Lanes lanes_{cache_, /*max_queued_per_subscription=*/3};
  core::testing::FakeMonotonicClock steady_;
  std::vector<DeliveryRowId> released_;
};

TEST_F(LanesTest, TakesTurnsBetweenSubscriptions) {
  infos_[kA.value] = Info(16);
  infos_[kB.value] = Info(16);
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(lanes_.Enqueue(Job(i, kA), false));
  for (int i = 11; i <= 12; ++i) ASSERT_TRUE(lanes_.Enqueue(Job(i, kB), false));
  EXPECT_EQ(lanes_.queued(), 5u);
  std::vector<std::int64_t> order;
  while (std::int64_t id = Take()) order.push_back(id);
  EXPECT_EQ(order, (std::vector<std::int64_t>{1, 11, 2, 12, 3}));
  EXPECT_EQ(lanes_.queued(), 0u);
  EXPECT_EQ(loads_, 2);  // once per subscription, then cached
}

// After a lost lease the queues are cleared; a lane that was waiting its turn must take work
// again. (Failed when Clear() left the lane marked as in the ring: its jobs were never taken.)
TEST_F(LanesTest, ClearedLanesTakeWorkAgain) {
  infos_[kA.value] = Info(16);
  for (int i = 1; i <= 2; ++i) ASSERT_TRUE(lanes_.Enqueue(Job(i, kA), false));
  EXPECT_EQ(lanes_.Clear().size(), 2u);
  EXPECT_EQ(lanes_.queued(), 0u);
  EXPECT_EQ(Take(), 0);
  ASSERT_TRUE(lanes_.Enqueue(Job(3, kA), false));
  EXPECT_EQ(Take(), 3);
}

TEST_F(LanesTest, ConcurrencyCapHoldsTheLaneUntilOneFinishes) {
  infos_[kA.value] = Info(2);
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(lanes_.Enqueue(Job(i, kA), false));
  EXPECT_EQ(Take(), 1);
  EXPECT_EQ(Take(), 2);
  EXPECT_EQ(Take(), 0);
  lanes_.Finished(kA);
  EXPECT_EQ(Take(), 3);
}

// A lane whose last answered attempt failed sends at most `failing_max_concurrency` at once
// until one succeeds (issue 8: ten fast-failing lanes took the dispatcher from a healthy one);
// an attempt that was never sent says nothing about the endpoint; other lanes keep their limit.
// AnsweringNow (the dispatcher's short deferral of a full lane's overflow): only a lane whose
// endpoint succeeded within the window and has not failed since. A lane that never answered
// (hung: a timeout answers nothing) or whose last answer was a failure is not answering.
TEST_F(LanesTest, AnsweringMeansARecentSuccessAndNoFailureSince) {
  using std::chrono::milliseconds;
  Lanes lanes{cache_, /*max_queued_per_subscription=*/10, /*failing_max_concurrency=*/2};
  infos_[kA.value] = Info(4);
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(lanes.Enqueue(Job(i, kA), false));
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(lanes.TakeNext(steady_.Now(), released_).has_value());
  const auto t = steady_.Now();
  const milliseconds window(1000);
  EXPECT_FALSE(lanes.AnsweringNow(kA, t, window)) << "nothing answered yet";
  lanes.Finished(kA, std::nullopt, t);  // a timeout, or never sent
  EXPECT_FALSE(lanes.AnsweringNow(kA, t, window));
  lanes.Finished(kA, true, t);
  EXPECT_TRUE(lanes.AnsweringNow(kA, t + milliseconds(1000), window));
  EXPECT_FALSE(lanes.AnsweringNow(kA, t + milliseconds(1001), window)) << "too long ago";
  lanes.Finished(kA, false, t + milliseconds(10));
  EXPECT_FALSE(lanes.AnsweringNow(kA, t + milliseconds(20), window)) << "failed since";
  lanes.Finished(kA, true, t + milliseconds(30));
  EXPECT_TRUE(lanes.AnsweringNow(kA, t + milliseconds(40), window));
  EXPECT_FALSE(lanes.AnsweringNow(kB, t, window)) << "no lane";
}

TEST_F(LanesTest, AFailingLaneSendsFewerAtOnceUntilASuccess) {
  Lanes lanes{cache_, /*max_queued_per_subscription=*/10, /*failing_max_concurrency=*/2};
  auto take = [&] { return TakeFrom(lanes); };
  infos_[kA.value] = Info(4);
  infos_[kB.value] = Info(4);
  for (int i = 1; i <= 8; ++i) ASSERT_TRUE(lanes.Enqueue(Job(i, kA), false));
  for (int i = 1; i <= 4; ++i) EXPECT_EQ(take(), i);
  EXPECT_EQ(take(), 0);
  lanes.Finished(kA, false);  // 3 in flight, failing: the limit is now 2
  EXPECT_EQ(take(), 0);
  lanes.Finished(kA, false);
  EXPECT_EQ(take(), 0);
  lanes.Finished(kA);  // never sent: still failing
  EXPECT_EQ(take(), 5);
  EXPECT_EQ(take(), 0);

  // Another subscription keeps its own limit meanwhile.
  for (int i = 11; i <= 14; ++i) ASSERT_TRUE(lanes.Enqueue(Job(i, kB), false));
  for (int i = 11; i <= 14; ++i) EXPECT_EQ(take(), i);
  EXPECT_EQ(take(), 0);

  lanes.Finished(kA, true);  // a success: the full limit again (1 in flight, 3 free)
  EXPECT_EQ(take(), 6);
  EXPECT_EQ(take(), 7);
  EXPECT_EQ(take(), 8);
}

TEST_F(LanesTest, RateLimitParksTheLaneUntilItsTokenIsDue) {
  infos_[kA.value] = Info(16, /*rate_per_second=*/2.0);  // a bucket of 1, one token per 500 ms
  infos_[kB.value] = Info(16);
  for (int i = 1; i <= 2; ++i) ASSERT_TRUE(lanes_.Enqueue(Job(i, kA), false));
  EXPECT_EQ(Take(), 1);
  EXPECT_EQ(Take(), 0);  // out of tokens: parked
  ASSERT_TRUE(lanes_.NextTokenAt().has_value());
  EXPECT_EQ(*lanes_.NextTokenAt() - steady_.Now(), 500ms);

  // Other subscriptions are not held up meanwhile.
  ASSERT_TRUE(lanes_.Enqueue(Job(11, kB), false));
  EXPECT_EQ(Take(), 11);

  steady_.Advance(499ms);
  lanes_.UnparkRateLimited(steady_.Now());
  EXPECT_EQ(Take(), 0);
  steady_.Advance(1ms);
  lanes_.UnparkRateLimited(steady_.Now());
  EXPECT_EQ(Take(), 2);
  EXPECT_FALSE(lanes_.NextTokenAt().has_value());
}

// Every 1-second window holds at most the limit plus one (CONTRACT §12): no burst after an idle
// spell. (A bucket of a second's worth let 2 × the limit through in one second.)
TEST_F(LanesTest, RateLimitNeverBurstsAfterIdling) {
  infos_[kA.value] = Info(16, /*rate_per_second=*/2.0);
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(lanes_.Enqueue(Job(i, kA), false));
  EXPECT_EQ(Take(), 1);
  steady_.Advance(10s);  // idle for long: still one token
  EXPECT_EQ(Take(), 2);
  EXPECT_EQ(Take(), 0);
  steady_.Advance(500ms);
  lanes_.UnparkRateLimited(steady_.Now());
  EXPECT_EQ(Take(), 3);
}

TEST_F(LanesTest, OfferedJobsOfOrderedSubscriptionsAreLeftToTheClaim) {
  infos_[kA.value] = Info(1, std::nullopt, /*ordered=*/true);
  EXPECT_FALSE(lanes_.Enqueue(Job(1, kA, /*target=*/991), /*offered=*/true));
  EXPECT_TRUE(lanes_.Enqueue(Job(2, kA, /*target=*/991), /*offered=*/false));
  EXPECT_TRUE(lanes_.Enqueue(Job(3, kA), /*offered=*/true));  // no target: no order to keep
  EXPECT_EQ(lanes_.queued(), 2u);
}

TEST_F(LanesTest, RefusesWhatCannotBeSentOrDoesNotFit) {
  auto disabled = std::make_shared<SubInfo>();  // usable = false
  infos_[kB.value] = disabled;
  EXPECT_FALSE(lanes_.Enqueue(Job(1, SubscriptionId(99)), false));  // the store failed
  EXPECT_FALSE(lanes_.Enqueue(Job(2, kB), false));
  infos_[kA.value] = Info(1);
  for (int i = 3; i <= 5; ++i) EXPECT_TRUE(lanes_.Enqueue(Job(i, kA), false));
  EXPECT_FALSE(lanes_.Enqueue(Job(6, kA), false));  // max_queued_per_subscription
  EXPECT_EQ(lanes_.queued(), 3u);
}

TEST_F(LanesTest, ReleasesALaneWhoseSubscriptionWasDisabledMeanwhile) {
  infos_[kA.value] = Info(16);
  ASSERT_TRUE(lanes_.Enqueue(Job(1, kA), false));
  ASSERT_TRUE(lanes_.Enqueue(Job(2, kA), false));
  infos_[kA.value] = std::make_shared<SubInfo>();
  cache_.Invalidate(kA);
  EXPECT_EQ(Take(), 0);
  EXPECT_EQ(released_, (std::vector<DeliveryRowId>{DeliveryRowId(1), DeliveryRowId(2)}));
  EXPECT_EQ(lanes_.queued(), 0u);
}

TEST_F(LanesTest, ClearEmptiesEveryLane) {
  infos_[kA.value] = Info(16);
  infos_[kB.value] = Info(16);
  ASSERT_TRUE(lanes_.Enqueue(Job(1, kA), false));
  ASSERT_TRUE(lanes_.Enqueue(Job(2, kB), false));
  std::vector<DeliveryRowId> cleared = lanes_.Clear();
  std::sort(cleared.begin(), cleared.end());
  EXPECT_EQ(cleared, (std::vector<DeliveryRowId>{DeliveryRowId(1), DeliveryRowId(2)}));
  EXPECT_EQ(lanes_.queued(), 0u);
  EXPECT_EQ(Take(), 0);
}

// A lane whose last attempt timed out (a hung endpoint, which holds each slot for the whole
// timeout) keeps its limit while fewer than half of max_in_flight are open, and gets
// failing_max_concurrency at or above it, so that hung endpoints cannot hold every slot of the
// dispatcher (CONTRACT §6: one slow or dead endpoint never delays the others). An answered
// attempt ends it; other lanes keep their limits. Seen failing with timeouts ignored (the hung
// lane took its seventh slot).
TEST_F(LanesTest, ALaneThatTimesOutIsHeldToAFewSlotsOnceHalfAreOpen) {
  Lanes lanes{cache_, /*max_queued_per_subscription=*/10, /*failing_max_concurrency=*/2,
              /*max_in_flight=*/8};
  auto take = [&] { return TakeFrom(lanes); };
  infos_[kA.value] = Info(6);
  infos_[kB.value] = Info(4);
  for (int i = 1; i <= 10; ++i) ASSERT_TRUE(lanes.Enqueue(Job(i, kA), false));
  for (int i = 1; i <= 6; ++i) EXPECT_EQ(take(), i);  // before any timeout: its limit
  lanes.Finished(kA, std::nullopt, steady_.Now(), /*timed_out=*/true);  // 5 open of 8
  EXPECT_EQ(take(), 0) << "half open: the hung lane is held to 2";
  for (int i = 0; i < 3; ++i) lanes.Finished(kA, std::nullopt, steady_.Now(), true);  // 2 open
  EXPECT_EQ(take(), 7) << "room again: its limit";
  EXPECT_EQ(take(), 8);
  EXPECT_EQ(take(), 0) << "half open again";
  // Another lane keeps its limit meanwhile.
  for (int i = 11; i <= 14; ++i) ASSERT_TRUE(lanes.Enqueue(Job(i, kB), false));
  for (int i = 11; i <= 14; ++i) EXPECT_EQ(take(), i);
  // An answer ends it: the full limit again (4 of A's 6 open, so 2 more).
  lanes.Finished(kA, false, steady_.Now());  // a failure: the failing limit, its own rule
  EXPECT_EQ(take(), 0);
  lanes.Finished(kA, true, steady_.Now());
  EXPECT_EQ(take(), 9);
  EXPECT_EQ(take(), 10);
}

// HungFor: from the first of a run of timeouts, not the last; any answer ends the run, and so
// does a gap of more than `hang_gap` since the last timeout, and RestartHang starts it again; a
// lane whose last attempt was answered, or that has none, is not hung (the dispatcher's deferral
// of a hung lane's rows grows with it).
TEST_F(LanesTest, HungForCountsFromTheFirstTimeoutInARow) {
  using std::chrono::milliseconds;
  Lanes lanes{cache_, /*max_queued_per_subscription=*/10, /*failing_max_concurrency=*/2,
              /*max_in_flight=*/0, /*hang_gap=*/60s};
  infos_[kA.value] = Info(8);
  for (int i = 1; i <= 8; ++i) ASSERT_TRUE(lanes.Enqueue(Job(i, kA), false));
  for (int i = 1; i <= 8; ++i) ASSERT_NE(TakeFrom(lanes), 0);
  const auto t = steady_.Now();
  EXPECT_FALSE(lanes.HungFor(kA, t).has_value()) << "nothing came back yet";
  EXPECT_FALSE(lanes.HungFor(kB, t).has_value()) << "no lane";
  lanes.Finished(kA, std::nullopt, t);  // never sent: says nothing
  EXPECT_FALSE(lanes.HungFor(kA, t).has_value());
  lanes.Finished(kA, std::nullopt, t + 10s, /*timed_out=*/true);
  EXPECT_EQ(lanes.HungFor(kA, t + 10s), milliseconds(0));
  lanes.Finished(kA, std::nullopt, t + 40s, /*timed_out=*/true);  // still the same run
  lanes.Finished(kA, std::nullopt, t + 45s);  // never sent: says nothing, the run goes on
  EXPECT_EQ(lanes.HungFor(kA, t + 70s), milliseconds(60'000));
  EXPECT_EQ(lanes.HungFor(kA, t + 100s), milliseconds(90'000)) << "60 s after the last timeout";
  EXPECT_FALSE(lanes.HungFor(kA, t + 101s).has_value()) << "no timeout for more than 60 s";
  lanes.Finished(kA, std::nullopt, t + 110s, /*timed_out=*/true);  // a new run after the gap
  EXPECT_EQ(lanes.HungFor(kA, t + 115s), milliseconds(5'000));
  lanes.RestartHang(kA, t + 120s);  // its subscription changed
  EXPECT_EQ(lanes.HungFor(kA, t + 125s), milliseconds(5'000));
  lanes.Finished(kA, false, t + 130s);  // answered (a failure): the run ends
  EXPECT_FALSE(lanes.HungFor(kA, t + 131s).has_value());
  lanes.Finished(kA, std::nullopt, t + 140s, /*timed_out=*/true);
  EXPECT_EQ(lanes.HungFor(kA, t + 150s), milliseconds(10'000));
  lanes.Finished(kA, true, t + 160s);  // a success ends it too
  EXPECT_FALSE(lanes.HungFor(kA, t + 161s).has_value());
}

// A change drops the lane's subscription from the cache (any change in its tenant does); until
// the next TakeNext loads it again, the lane keeps the limit it had, so a request that ends puts
// it back in the rotation. Seen failing with a limit of 1 while unloaded: the lane sent nothing
// until all its requests had ended.
TEST_F(LanesTest, AChangeDoesNotHoldABusyLaneOutOfTheRotation) {
  infos_[kA.value] = Info(3);
  Lanes lanes{cache_, /*max_queued_per_subscription=*/10};
  for (int i = 1; i <= 6; ++i) ASSERT_TRUE(lanes.Enqueue(Job(i, kA), false));
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(lanes.TakeNext(steady_.Now(), released_)->job.id.value, i);
  cache_.Invalidate(kA);
  lanes.Finished(kA, true, steady_.Now());  // 2 of 3 open
  auto next = lanes.TakeNext(steady_.Now(), released_);
  ASSERT_TRUE(next.has_value()) << "held out of the rotation";
  EXPECT_EQ(next->job.id.value, 4);
}

}  // namespace
}  // namespace outbound::delivery::internal
