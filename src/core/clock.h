// Time: Unix milliseconds everywhere inside Outbound; RFC 3339 at the edges.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace outbound::core {

using UnixMs = std::int64_t;

// Injected wherever time matters (retry schedules, leases), so tests control it.
// Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual UnixMs Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  UnixMs Now() const override;
};

// Steady time, for intervals and deadlines that must not jump when the wall clock is set (rate
// limits, polls, lease renewal, durations). Injected like Clock, so that tests step it by hand.
// Its epoch means nothing: only differences do. Implementations are thread-safe.
class MonotonicClock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~MonotonicClock() = default;
  virtual TimePoint Now() const = 0;
};

// std::chrono::steady_clock.
class SteadyClock final : public MonotonicClock {
 public:
  TimePoint Now() const override;
};

// RFC 3339 with a mandatory offset ("Z" or "+hh:mm"); fractions beyond milliseconds are
// truncated. No offset → error code "invalid_time".
Result<UnixMs> ParseRfc3339(std::string_view text);

// "2026-06-25T14:31:00Z", or "2026-06-25T14:31:00.120Z" when the milliseconds are not zero.
std::string FormatUtc(UnixMs ms);

// "250ms", "5s", "5m", "2h", "5d" → milliseconds.
std::optional<UnixMs> ParseDuration(std::string_view text);

}  // namespace outbound::core
