// Claim pacing (claims.h): when the dispatcher asks the store for due deliveries.
#include "delivery/internal/claims.h"

#include <algorithm>

namespace outbound::delivery::internal {
namespace {

// Hints of due retries kept for an early claim; beyond this the periodic claim covers them.
constexpr std::size_t kMaxDueHints = 10000;
// The least time from a claim's answer to a claim made for another process's announcement. A
// PostgreSQL claim costs the server a few milliseconds whatever its size: a claim at each
// announcement of a busy `api` process, with the announcements themselves, cost the backlog's
// fill 10-15 % of its rate (docs/PERFORMANCE.md).
constexpr std::chrono::milliseconds kAnnouncedGap{25};

}  // namespace

using std::chrono::milliseconds;

ClaimPacer::ClaimPacer(std::size_t max_queued, int claim_batch, core::UnixMs claim_interval_ms)
    : max_queued_(max_queued), claim_batch_(claim_batch), interval_(claim_interval_ms) {}

void ClaimPacer::Start(TimePoint steady_now) {
  requested_ = true;
  next_poll_ = steady_now;
}

void ClaimPacer::Announced(TimePoint steady_now) {
  if (ignore_announcements_) return;
  next_poll_ = std::min(next_poll_, std::max(steady_now, last_answer_ + kAnnouncedGap));
}

void ClaimPacer::HintDue(core::UnixMs due) {
  if (due_hints_.size() < kMaxDueHints) due_hints_.push(due);
}

std::size_t ClaimPacer::Batch() const {
  return std::min<std::size_t>(static_cast<std::size_t>(claim_batch_), max_queued_);
}

// A claim may be submitted now, if one is wanted. Claims come in useful batches rather than a
// row per freed slot.
bool ClaimPacer::CanClaim(std::size_t held) const {
  if (in_flight_ || stopping_ || held >= max_queued_) return false;
  return max_queued_ - held >= std::max<std::size_t>(1, Batch() / 4);
}

std::optional<int> ClaimPacer::Next(std::size_t held, TimePoint steady_now, core::UnixMs now) {
  if (!CanClaim(held)) return std::nullopt;
  const std::size_t room = max_queued_ - held;
  const bool hinted = !due_hints_.empty() && due_hints_.top() <= now;
  if (!requested_ && steady_now < next_poll_ && !hinted) return std::nullopt;
  while (!due_hints_.empty() && due_hints_.top() <= now) due_hints_.pop();
  requested_ = false;
  next_poll_ = steady_now + interval_;
  in_flight_ = true;
  return static_cast<int>(std::min(room, Batch()));
}

void ClaimPacer::Claimed(TimePoint steady_now, int requested, std::size_t got,
                         std::size_t accepted) {
  in_flight_ = false;
  last_answer_ = steady_now;
  ignore_announcements_ = requested > 0 && got * 4 >= static_cast<std::size_t>(requested);
  if (got >= static_cast<std::size_t>(requested) && accepted > 0) {
    requested_ = true;  // probably more due
  } else if (got > 0 && accepted == 0) {
    // Everything claimed went straight back (lanes full): do not spin on it, announced or not.
    next_poll_ = steady_now + std::chrono::seconds(1);
    ignore_announcements_ = true;
  }
}

void ClaimPacer::Failed(TimePoint steady_now) {
  in_flight_ = false;
  last_answer_ = steady_now;
  ignore_announcements_ = true;  // the back-off stands, announced or not
  next_poll_ = steady_now + std::chrono::seconds(1);
}

milliseconds ClaimPacer::LimitWait(milliseconds timeout, std::size_t held, TimePoint steady_now,
                                   core::UnixMs now) const {
  if (!CanClaim(held)) return timeout;
  timeout = std::min(timeout, std::chrono::duration_cast<milliseconds>(next_poll_ - steady_now));
  if (requested_) timeout = milliseconds(0);
  if (!due_hints_.empty()) timeout = std::min(timeout, milliseconds(due_hints_.top() - now));
  return timeout;
}

}  // namespace outbound::delivery::internal
