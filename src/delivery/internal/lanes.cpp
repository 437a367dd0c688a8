// Lanes (lanes.h): per-subscription queues, round robin, concurrency caps and token buckets.
#include "delivery/internal/lanes.h"

#include <algorithm>
#include <chrono>

namespace outbound::delivery::internal {

using core::DeliveryRowId;
using core::SubscriptionId;

Lanes::Lanes(SubscriptionCache& subscriptions, std::size_t max_queued_per_subscription,
             int failing_max_concurrency, int max_in_flight, std::chrono::milliseconds hang_gap)
    : subscriptions_(subscriptions),
      max_queued_per_subscription_(max_queued_per_subscription),
      failing_max_concurrency_(failing_max_concurrency),
      max_in_flight_(max_in_flight),
      hang_gap_(hang_gap) {}

bool Lanes::Enqueue(store::DeliveryJob job, bool offered) {
  Lane& lane = lanes_[job.subscription];
  lane.tenant = job.tenant;
  std::shared_ptr<const SubInfo> info = subscriptions_.Get(lane.tenant, job.subscription);
  if (!info || !info->usable) return false;
  lane.known_cap = info->max_concurrency;
  if (lane.ready.size() >= max_queued_per_subscription_) return false;
  if (offered && info->ordered && job.target_id) {
    // Fan-out cannot see whether an earlier event about the target is still open: the claim
    // decides (ClaimDue hands out only the head of each target).
    return false;
  }
  const SubscriptionId id = job.subscription;
  lane.ready.push_back(std::move(job));
  ++queued_;
  Ring(lane, id);
  return true;
}

bool Lanes::Full(SubscriptionId sub) const { return Queued(sub) >= max_queued_per_subscription_; }

std::size_t Lanes::Queued(SubscriptionId sub) const {
  auto it = lanes_.find(sub);
  return it == lanes_.end() ? 0 : it->second.ready.size();
}

void Lanes::UnparkRateLimited(TimePoint now) {
  while (!rate_waits_.empty() && rate_waits_.top().first <= now) {
    const SubscriptionId id = rate_waits_.top().second;
    rate_waits_.pop();
    auto it = lanes_.find(id);
    if (it == lanes_.end()) continue;
    it->second.rate_parked = false;
    Ring(it->second, id);
  }
}

std::optional<Lanes::Next> Lanes::TakeNext(TimePoint now, std::vector<DeliveryRowId>& released) {
  while (!ring_.empty()) {
    const SubscriptionId id = ring_.front();
    ring_.pop_front();
    Lane& lane = lanes_[id];
    lane.in_ring = false;
    if (lane.ready.empty()) continue;
    std::shared_ptr<const SubInfo> info = subscriptions_.Get(lane.tenant, id);
    if (!info || !info->usable) {
      ReleaseLane(lane, released);  // cannot be loaded, or disabled or deleted meanwhile
      continue;
    }
    lane.known_cap = info->max_concurrency;
    if (lane.in_flight >= Cap(lane, id)) continue;   // back in the ring when one finishes
    if (!TakeToken(lane, id, *info, now)) continue;  // back in the ring when a token is due
    Next next{std::move(lane.ready.front()), std::move(info)};
    lane.ready.pop_front();
    --queued_;
    ++lane.in_flight;
    ++in_flight_;
    Ring(lane, id);
    return next;
  }
  return std::nullopt;
}

void Lanes::Finished(SubscriptionId id, std::optional<bool> succeeded, TimePoint now,
                     bool timed_out) {
  auto it = lanes_.find(id);
  if (it == lanes_.end()) return;
  Lane& lane = it->second;
  --lane.in_flight;
  --in_flight_;
  if (timed_out) {
    if (!lane.timing_out || now - lane.last_timeout > hang_gap_) lane.hung_since = now;
    lane.last_timeout = now;
    lane.timing_out = true;
  }
  if (succeeded) {
    lane.timing_out = false;
    lane.failing = !*succeeded;
    if (*succeeded) {
      lane.succeeded = true;
      lane.last_success = now;
    }
  }
  Ring(lane, it->first);
}

bool Lanes::AnsweringNow(SubscriptionId sub, TimePoint now,
                         std::chrono::milliseconds window) const {
  auto it = lanes_.find(sub);
  if (it == lanes_.end()) return false;
  const Lane& lane = it->second;
  return lane.succeeded && !lane.failing && now - lane.last_success <= window;
}

std::optional<std::chrono::milliseconds> Lanes::HungFor(SubscriptionId sub, TimePoint now) const {
  auto it = lanes_.find(sub);
  if (it == lanes_.end() || !it->second.timing_out) return std::nullopt;
  const Lane& lane = it->second;
  if (now - lane.last_timeout > hang_gap_) return std::nullopt;
  return std::max(std::chrono::milliseconds(0),
                  std::chrono::duration_cast<std::chrono::milliseconds>(now - lane.hung_since));
}

void Lanes::RestartHang(SubscriptionId sub, TimePoint now) {
  auto it = lanes_.find(sub);
  if (it != lanes_.end() && it->second.timing_out) it->second.hung_since = now;
}

std::optional<Lanes::TimePoint> Lanes::NextTokenAt() const {
  if (rate_waits_.empty()) return std::nullopt;
  return rate_waits_.top().first;
}

std::vector<DeliveryRowId> Lanes::Clear() {
  std::vector<DeliveryRowId> ids;
  ids.reserve(queued_);
  for (auto& [id, lane] : lanes_) {
    for (const auto& job : lane.ready) ids.push_back(job.id);
    lane.ready.clear();
    lane.in_ring = false;  // the ring is emptied below: Ring() must be able to put it back
  }
  queued_ = 0;
  ring_.clear();
  return ids;
}

std::vector<SubscriptionId> Lanes::Idle() const {
  std::vector<SubscriptionId> idle;
  for (const auto& [id, lane] : lanes_) {
    if (lane.ready.empty() && lane.in_flight == 0) idle.push_back(id);
  }
  return idle;
}

int Lanes::Cap(const Lane& lane, SubscriptionId id) const {
  // Not loaded (a change dropped it; TakeNext loads it again): the limit it had when last
  // loaded, so that a change anywhere in the tenant does not hold a busy lane out of the
  // rotation until all its requests have ended (found by an audit, 7 Dec).
  const SubInfo* info = subscriptions_.Peek(id);
  const int cap = info != nullptr ? info->max_concurrency : lane.known_cap;
  // A failing endpoint keeps a slot or two (its next attempt still goes out at once, and a
  // success restores the full limit) instead of the dispatcher's turns (issue 8).
  if (lane.failing && failing_max_concurrency_ > 0) return std::min(cap, failing_max_concurrency_);
  // A hung one costs no turns but holds its slots for the whole timeout: once it has timed out
  // it keeps its limit while the dispatcher has room, and a slot or two once half of
  // max_in_flight is open, so that endpoints known to hang keep about half of the slots at most.
  // Back under half, it grows again as its own requests end (Ring() runs for it then).
  if (lane.timing_out && failing_max_concurrency_ > 0 && max_in_flight_ > 0 &&
      2 * in_flight_ >= max_in_flight_) {
    return std::min(cap, failing_max_concurrency_);
  }
  return cap;
}

void Lanes::Ring(Lane& lane, SubscriptionId id) {
  if (!lane.in_ring && !lane.rate_parked && !lane.ready.empty() && lane.in_flight < Cap(lane, id)) {
    lane.in_ring = true;
    ring_.push_back(id);
  }
}

void Lanes::ReleaseLane(Lane& lane, std::vector<DeliveryRowId>& released) {
  for (auto& job : lane.ready) released.push_back(job.id);
  queued_ -= lane.ready.size();
  lane.ready.clear();
}

// Takes a token from the lane's bucket, or parks the lane until one is due. Steady time: the
// limit is about the receiver's experience, not about the wall clock.
bool Lanes::TakeToken(Lane& lane, SubscriptionId id, const SubInfo& info, TimePoint now) {
  if (!info.rate_per_second) return true;
  const double rate = *info.rate_per_second;
  // A bucket of one token: sends are spaced 1/rate apart, so every 1-second window holds at
  // most the limit plus one (CONTRACT §12), also for a process that has just taken the
  // subscription over (a bucket of a second's worth let twice the limit through).
  const double capacity = 1.0;
  if (!lane.bucket_started) {
    lane.bucket_started = true;
    lane.tokens = capacity;
  } else {
    const double elapsed = std::chrono::duration<double>(now - lane.refilled).count();
    lane.tokens = std::min(capacity, lane.tokens + elapsed * rate);
  }
  lane.refilled = now;
  if (lane.tokens >= 1.0) {
    lane.tokens -= 1.0;
    return true;
  }
  const auto wait = std::chrono::duration_cast<TimePoint::duration>(
      std::chrono::duration<double>((1.0 - lane.tokens) / rate));
  lane.rate_parked = true;
  rate_waits_.emplace(now + wait, id);
  return false;
}

}  // namespace outbound::delivery::internal
