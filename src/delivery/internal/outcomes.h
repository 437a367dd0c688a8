// Outcomes and retry: what an ended request is recorded as, and what the delivery becomes after
// it (CONTRACT §6) — succeeded, failed until the next attempt the retry schedule allows, or dead
// once the cycle is exhausted. Pure apart from the randomness passed in; thread-safe as far as
// that is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "core/clock.h"
#include "core/random.h"
#include "core/retry.h"
#include "delivery/internal/sender.h"
#include "store/store.h"

namespace outbound::delivery::internal {

struct AttemptResult {
  store::AttemptRecord record;
  bool success = false;  // a 2xx status line, whatever happened to the body afterwards
  std::optional<core::UnixMs> retry_after;  // from a 429's or 503's Retry-After, as a delay
};

// The attempt record of an ended request, `duration_ms` after it started, at wall time `now`.
// The stored body is scrubbed to UTF-8 and cut to at most min(store_limit, 4096) bytes on a
// character boundary.
AttemptResult ReadResponse(const Response& response, std::int64_t duration_ms, core::UnixMs now,
                           std::size_t store_limit);

// The record of an attempt that was never sent: `error` is why ("insecure_url", "internal_error:
// …").
store::AttemptRecord UnsentAttempt(const store::DeliveryJob& job, std::string delivery_id,
                                   core::UnixMs attempted_at, std::string error);

// The delivery's new state after `attempt`, at wall time `now`. A failure asks `retry` about the
// next attempt of the cycle, with jitter from `random` (drawn from for failures only) and a
// `retry_after` raising the delay. A test delivery (job.test) is never retried: a failure makes
// it `dead` at once, and the outcome carries the flag (Outcome::test).
store::Outcome Conclude(store::DeliveryJob job, store::AttemptRecord attempt, bool success,
                        std::optional<core::UnixMs> retry_after, const core::RetryPolicy& retry,
                        core::Random& random, core::UnixMs now);

}  // namespace outbound::delivery::internal
