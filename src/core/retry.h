// The retry schedule of CONTRACT.md §6. Pure; the caller supplies the random number, so tests
// are deterministic.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace outbound::core {

struct RetryPolicy {
  // delays[i] is the wait before attempt i+1 of a cycle, counted from the previous attempt
  // (delays[0] from acceptance). Default: 0s,5s,5m,30m,2h,5h,10h,10h.
  std::vector<UnixMs> delays;
  // ± fraction applied to each delay. Default: 0.2.
  double jitter = 0.2;

  static RetryPolicy Default();
  // "0s,5s,5m" → delays; error code "invalid_retry_schedule".
  static Result<RetryPolicy> Parse(std::string_view schedule, double jitter);

  int MaxAttempts() const { return static_cast<int>(delays.size()); }
  UnixMs LongestDelay() const;

  // The wait before attempt `next_attempt` (1-based, within the current cycle), with jitter from
  // `unit_random` in [0, 1): delay * (1 + jitter * (2 * unit_random - 1)). A `retry_after` (from a
  // 429/503) raises it to at most LongestDelay(). nullopt when the cycle is exhausted.
  std::optional<UnixMs> DelayBefore(int next_attempt, double unit_random,
                                    std::optional<UnixMs> retry_after = std::nullopt) const;
};

}  // namespace outbound::core
