// When the dispatcher asks the store for due deliveries (ClaimDue): at once when asked to
// (Wake(), a full batch, work given back, an ordered lane unblocked), when a retry this process
// scheduled falls due, and otherwise every claim interval; only with room for a batch worth the
// round trip; one claim at a time. Steady time paces the polls, wall time says when a retry is
// due. Owned by the dispatcher thread; not thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <queue>
#include <vector>

#include "core/clock.h"

namespace outbound::delivery::internal {

class ClaimPacer {
 public:
  using TimePoint = core::MonotonicClock::TimePoint;

  // `max_queued`: jobs the dispatcher may hold; `claim_batch`: the most one claim asks for.
  ClaimPacer(std::size_t max_queued, int claim_batch, core::UnixMs claim_interval_ms);

  // The loop starts: claim at once.
  void Start(TimePoint steady_now);
  // Claim at the next chance.
  void Request() { requested_ = true; }
  // Another process announced deliveries due (Store::SetDueHint): claim soon, but no sooner than
  // kAnnouncedGap after the last claim's answer, so that a stream of announcements (an `api`
  // process's publishes) makes a claim per gap rather than one per commit. Only while claims
  // come back with less than a quarter of what they asked: a busier stream keeps the claims
  // large (at once while they come back full, else at the poll), as many small ones would cost
  // the server more per row. Nor during a back-off (Claimed() with nothing kept, Failed()).
  void Announced(TimePoint steady_now);
  // A retry falls due at `due` (wall time): claim then. Kept for the first 10,000; beyond that
  // the periodic claim covers them.
  void HintDue(core::UnixMs due);
  // No more claims (the dispatcher is stopping).
  void Stop() { stopping_ = true; }

  // The limit of a claim to submit now, with `held` jobs in memory; the claim then counts as
  // under way until Claimed() or Failed(). nullopt: no claim now.
  std::optional<int> Next(std::size_t held, TimePoint steady_now, core::UnixMs now);
  // The claim of `requested` rows answered `got`, of which `accepted` were taken in.
  void Claimed(TimePoint steady_now, int requested, std::size_t got, std::size_t accepted);
  void Failed(TimePoint steady_now);

  // `timeout`, shortened to when the next claim is due (zero: at once).
  std::chrono::milliseconds LimitWait(std::chrono::milliseconds timeout, std::size_t held,
                                      TimePoint steady_now, core::UnixMs now) const;

 private:
  std::size_t Batch() const;
  bool CanClaim(std::size_t held) const;

  // Constant after construction.
  const std::size_t max_queued_;
  const int claim_batch_;
  const std::chrono::milliseconds interval_;

  bool requested_ = false;
  bool in_flight_ = false;
  bool stopping_ = false;
  TimePoint next_poll_{};
  TimePoint last_answer_{};  // of the last claim: Claimed() or Failed()
  // Announced() changes nothing: the last claim got a quarter of its request or more, or it
  // failed or everything it got went straight back (its one-second back-off stands).
  bool ignore_announcements_ = false;
  std::priority_queue<core::UnixMs, std::vector<core::UnixMs>, std::greater<>> due_hints_;
};

}  // namespace outbound::delivery::internal
