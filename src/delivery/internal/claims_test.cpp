// Claim pacing on a fake steady clock and a hand-set wall time: no sleeps.
#include "delivery/internal/claims.h"

#include <gtest/gtest.h>

#include <chrono>

#include "core/testing/fakes.h"

namespace outbound::delivery::internal {
namespace {

using core::UnixMs;
using namespace std::chrono_literals;

constexpr UnixMs kT = 1'800'000'000'000;

class ClaimPacerTest : public ::testing::Test {
 protected:
  // max_queued 100, batches of 40, a poll every 200 ms.
  ClaimPacer pacer_{100, 40, 200};
  core::testing::FakeMonotonicClock steady_;
  UnixMs now_ = kT;

  std::optional<int> Next(std::size_t held = 0) { return pacer_.Next(held, steady_.Now(), now_); }
  std::chrono::milliseconds Wait(std::size_t held = 0) {
    return pacer_.LimitWait(1000ms, held, steady_.Now(), now_);
  }
};

TEST_F(ClaimPacerTest, ClaimsAtStartThenEveryInterval) {
  pacer_.Start(steady_.Now());
  EXPECT_EQ(Wait(), 0ms);
  EXPECT_EQ(Next(), 40);
  EXPECT_EQ(Next(), std::nullopt);  // one claim at a time
  pacer_.Claimed(steady_.Now(), 40, 0, 0);
  EXPECT_EQ(Next(), std::nullopt);
  EXPECT_EQ(Wait(), 200ms);
  steady_.Advance(199ms);
  EXPECT_EQ(Next(), std::nullopt);
  steady_.Advance(1ms);
  EXPECT_EQ(Next(), 40);
}

TEST_F(ClaimPacerTest, AFullBatchAsksForMoreAtOnce) {
  pacer_.Start(steady_.Now());
  ASSERT_EQ(Next(), 40);
  pacer_.Claimed(steady_.Now(), 40, 40, 40);
  EXPECT_EQ(Wait(40), 0ms);
  EXPECT_EQ(Next(40), 40);
}

// Another process's announcement (PostgreSQL's due hint) brings the next claim forward, to at
// once when the last claim answered long enough ago, else to 25 ms after that answer: a stream of
// announcements makes a claim per 25 ms, not one each. Never later than the poll.
TEST_F(ClaimPacerTest, AnAnnouncementClaimsSoonButNotAtEachOne) {
  pacer_.Start(steady_.Now());
  ASSERT_EQ(Next(), 40);
  pacer_.Claimed(steady_.Now(), 40, 3, 3);
  steady_.Advance(5ms);
  pacer_.Announced(steady_.Now());
  EXPECT_EQ(Wait(3), 20ms);
  steady_.Advance(19ms);
  EXPECT_EQ(Next(3), std::nullopt);
  pacer_.Announced(steady_.Now());  // another one meanwhile: the same claim
  steady_.Advance(1ms);
  ASSERT_EQ(Next(3), 40);
  pacer_.Claimed(steady_.Now(), 40, 1, 1);
  steady_.Advance(100ms);
  pacer_.Announced(steady_.Now());
  EXPECT_EQ(Wait(4), 0ms);
  ASSERT_EQ(Next(4), 40);
  pacer_.Claimed(steady_.Now(), 40, 0, 0);
  steady_.Advance(190ms);
  pacer_.Announced(steady_.Now());  // 190 ms after the answer, 10 ms before the poll: at once
  ASSERT_EQ(Next(4), 40);
  // A claim that got a quarter of its request or more: announcements wait for the poll.
  pacer_.Claimed(steady_.Now(), 40, 10, 10);
  steady_.Advance(100ms);
  pacer_.Announced(steady_.Now());
  EXPECT_EQ(Wait(14), 100ms);
  EXPECT_EQ(Next(14), std::nullopt);
  steady_.Advance(100ms);
  EXPECT_EQ(Next(14), 40);
}

TEST_F(ClaimPacerTest, ARequestClaimsAtOnce) {
  pacer_.Start(steady_.Now());
  ASSERT_EQ(Next(), 40);
  pacer_.Claimed(steady_.Now(), 40, 3, 3);
  EXPECT_EQ(Next(3), std::nullopt);
  pacer_.Request();
  EXPECT_EQ(Next(3), 40);
}

TEST_F(ClaimPacerTest, ADueRetryClaimsEarly) {
  pacer_.Start(steady_.Now());
  ASSERT_EQ(Next(), 40);
  pacer_.Claimed(steady_.Now(), 40, 0, 0);
  pacer_.HintDue(kT + 150);
  EXPECT_EQ(Wait(), 150ms);
  now_ = kT + 149;
  EXPECT_EQ(Next(), std::nullopt);
  now_ = kT + 150;
  EXPECT_EQ(Next(), 40);  // steady time has not moved
}

TEST_F(ClaimPacerTest, ClaimsOnlyWithRoomForAUsefulBatch) {
  pacer_.Start(steady_.Now());
  EXPECT_EQ(Next(91), std::nullopt);  // room for 9, less than a quarter batch
  EXPECT_EQ(Wait(91), 1000ms);
  EXPECT_EQ(Next(90), 10);  // room for 10: asks for no more than that
}

TEST_F(ClaimPacerTest, BacksOffASecondWhenNothingWasTakenOrTheClaimFailed) {
  pacer_.Start(steady_.Now());
  ASSERT_EQ(Next(), 40);
  pacer_.Claimed(steady_.Now(), 40, 5, 0);  // everything went straight back
  steady_.Advance(100ms);
  pacer_.Announced(steady_.Now());  // another process's announcement does not cut it short
  steady_.Advance(899ms);
  EXPECT_EQ(Next(), std::nullopt);
  steady_.Advance(1ms);
  ASSERT_EQ(Next(), 40);
  pacer_.Failed(steady_.Now());
  steady_.Advance(100ms);
  pacer_.Announced(steady_.Now());
  steady_.Advance(899ms);
  EXPECT_EQ(Next(), std::nullopt);
  steady_.Advance(1ms);
  EXPECT_EQ(Next(), 40);
}

TEST_F(ClaimPacerTest, NoClaimsOnceStopped) {
  pacer_.Start(steady_.Now());
  pacer_.Stop();
  EXPECT_EQ(Next(), std::nullopt);
  EXPECT_EQ(Wait(), 1000ms);
}

}  // namespace
}  // namespace outbound::delivery::internal
