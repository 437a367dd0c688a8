// Lanes: the leased jobs held in memory, one queue per subscription, and the choice of what to
// send next — round robin over the subscriptions with ready work, each within its concurrency
// cap (maxConcurrency, lowered to a slot or two while its endpoint fails: Finished()) and its
// rate (rateLimitPerSecond: a token bucket in steady time, about the receiver's experience rather
// than the wall clock). Ordered subscriptions are fed by ClaimDue alone, which hands out only the
// head of each target. Owned by the dispatcher thread; not thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "delivery/internal/subscription_cache.h"
#include "store/store.h"

namespace outbound::delivery::internal {

class Lanes {
 public:
  using TimePoint = core::MonotonicClock::TimePoint;

  struct Next {
    store::DeliveryJob job;
    std::shared_ptr<const SubInfo> info;  // its subscription, loaded and usable
  };

  // `subscriptions` must outlive the lanes. `failing_max_concurrency`: the most a lane whose
  // last answered attempt failed sends at once (Finished()); 0 = its usual limit.
  // `max_in_flight`: the dispatcher's cap on requests open at once (0: none). A lane whose last
  // attempt timed out keeps its usual limit while fewer than half of that are open, and is held
  // to `failing_max_concurrency` at or above it: hung endpoints, which hold their slots for the
  // whole request timeout, keep at most half of the slots plus a few each once they are known to
  // hang (CONTRACT §6). Before its first timeout a lane is not known to hang.
  // `hang_gap`: a lane whose last timeout is older than this is no longer counted as hanging by
  // HungFor (it has sent nothing since); the next timeout starts a new run. The dispatcher passes
  // the larger of kDefaultHangGap and two request timeouts.
  static constexpr std::chrono::milliseconds kDefaultHangGap{300'000};
  Lanes(SubscriptionCache& subscriptions, std::size_t max_queued_per_subscription,
        int failing_max_concurrency = 0, int max_in_flight = 0,
        std::chrono::milliseconds hang_gap = kDefaultHangGap);

  // Queues a leased job. false when it is not taken, and the caller gives its lease back: its
  // subscription cannot be loaded, is disabled or deleted, or has `max_queued_per_subscription`
  // jobs queued already; or `offered` (by fan-out, not claimed) for an ordered subscription and
  // a target, where only ClaimDue knows whether an earlier event about the target is still open.
  bool Enqueue(store::DeliveryJob job, bool offered);
  // Whether `sub` has `max_queued_per_subscription` jobs queued (Enqueue would refuse more).
  bool Full(core::SubscriptionId sub) const;
  // Jobs queued for `sub` (not counting those handed out).
  std::size_t Queued(core::SubscriptionId sub) const;

  // Puts the lanes whose next token is due at `now` back in the rotation.
  void UnparkRateLimited(TimePoint now);
  // The next job to send, taken from its lane and counted in flight there until Finished().
  // Lanes whose subscription cannot be loaded, or is disabled or deleted, are emptied into
  // `released`. A lane out of tokens is parked until its next token is due. nullopt when no
  // lane may send now.
  std::optional<Next> TakeNext(TimePoint now, std::vector<core::DeliveryRowId>& released);
  // A job that TakeNext() handed out is done with: answered (`succeeded`: a 2xx or not), or
  // never sent (nullopt: says nothing about the endpoint), or timed out (`timed_out`, with
  // `succeeded` nullopt: see the constructor). A failure lowers the lane's concurrency to
  // `failing_max_concurrency` until an attempt succeeds.
  // `now`: when it was answered (a success is remembered for AnsweringNow()).
  void Finished(core::SubscriptionId id, std::optional<bool> succeeded = std::nullopt,
                TimePoint now = {}, bool timed_out = false);
  // Whether `sub`'s endpoint answered an attempt with a success at most `window` before `now`,
  // and no attempt has failed since: a full or long lane that is working its queue off, not a
  // hung or failing endpoint's (a timeout answers nothing).
  bool AnsweringNow(core::SubscriptionId sub, TimePoint now,
                    std::chrono::milliseconds window) const;
  // How long `sub`'s endpoint has hung at `now`: since the first of the timeouts in a row that
  // its last attempts came to (Finished with `timed_out`), or nullopt when its last attempt did
  // not time out (or it has none), or timed out more than `hang_gap` before `now`. An answer, a
  // success or not, ends the run; RestartHang starts it again from its `now`.
  std::optional<std::chrono::milliseconds> HungFor(core::SubscriptionId sub, TimePoint now) const;
  // `sub`'s run of timeouts counts from `now` (its subscription changed: a new URL may answer).
  void RestartHang(core::SubscriptionId sub, TimePoint now);

  // When the earliest parked lane gets its next token.
  std::optional<TimePoint> NextTokenAt() const;
  // Empties every lane; returns the ids of the jobs that were queued.
  std::vector<core::DeliveryRowId> Clear();
  // Subscriptions whose lanes hold nothing, queued or in flight.
  std::vector<core::SubscriptionId> Idle() const;
  // Jobs queued in all lanes (not counting those handed out).
  std::size_t queued() const { return queued_; }

 private:
  struct Lane {
    core::TenantId tenant;
    std::deque<store::DeliveryJob> ready;
    int in_flight = 0;
    bool in_ring = false;
    // Token bucket for rateLimitPerSecond (capacity: one second's worth, at least 1).
    double tokens = 0;
    TimePoint refilled{};
    bool bucket_started = false;
    bool rate_parked = false;  // waiting in rate_waits_ for a token
    bool failing = false;      // the last answered attempt failed (Finished)
    bool timing_out = false;   // the last attempt timed out, none answered since (Finished)
    TimePoint hung_since{};    // the first timeout of that run (timing_out; HungFor)
    TimePoint last_timeout{};  // the run's latest timeout
    int known_cap = 1;         // its maxConcurrency when last loaded (Cap, while it reloads)
    bool succeeded = false;    // an attempt succeeded, at last_success
    TimePoint last_success{};
  };

  int Cap(const Lane& lane, core::SubscriptionId id) const;
  void Ring(Lane& lane, core::SubscriptionId id);
  void ReleaseLane(Lane& lane, std::vector<core::DeliveryRowId>& released);
  bool TakeToken(Lane& lane, core::SubscriptionId id, const SubInfo& info, TimePoint now);

  // Constant after construction.
  SubscriptionCache& subscriptions_;
  const std::size_t max_queued_per_subscription_;
  const int failing_max_concurrency_;
  const int max_in_flight_;
  const std::chrono::milliseconds hang_gap_;

  int in_flight_ = 0;  // over all lanes: handed out by TakeNext, not yet Finished

  std::unordered_map<core::SubscriptionId, Lane> lanes_;
  std::deque<core::SubscriptionId> ring_;  // lanes with ready work and a free slot
  std::size_t queued_ = 0;
  // Rate-limited lanes waiting for a token, earliest first.
  std::priority_queue<std::pair<TimePoint, core::SubscriptionId>,
                      std::vector<std::pair<TimePoint, core::SubscriptionId>>, std::greater<>>
      rate_waits_;
};

}  // namespace outbound::delivery::internal
