#include "core/retry.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace outbound::core {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

RetryPolicy RetryPolicy::Default() {
  constexpr UnixMs kS = 1000, kM = 60 * kS, kH = 60 * kM;
  return RetryPolicy{{0, 5 * kS, 5 * kM, 30 * kM, 2 * kH, 5 * kH, 10 * kH, 10 * kH}, 0.2};
}

Result<RetryPolicy> RetryPolicy::Parse(std::string_view schedule, double jitter) {
  auto bad = [](std::string message) {
    return Fail(Error::Invalid("retry_schedule", "invalid_retry_schedule", std::move(message)));
  };
  if (!(jitter >= 0.0 && jitter <= 1.0)) return bad("the retry jitter must be between 0 and 1");
  const std::string_view original = schedule;
  RetryPolicy policy;
  policy.jitter = jitter;
  while (true) {
    std::size_t comma = schedule.find(',');
    std::string_view item = Trim(schedule.substr(0, comma));
    auto d = ParseDuration(item);
    if (!d) {
      return bad("\"" + std::string(item) +
                 "\" is not a duration (write them like 0s,5s,5m,30m,2h,5h,10h,10h)");
    }
    policy.delays.push_back(*d);
    if (comma == std::string_view::npos) break;
    schedule.remove_prefix(comma + 1);
  }
  // Attempt 1 goes out as soon as the event is stored (CONTRACT §6: "immediately"); a first
  // entry that asks otherwise would be ignored, so it is refused (a schedule meant as the
  // retries' delays alone is a common slip: it says how to write it).
  if (policy.delays.front() != 0) {
    return bad(
        "the first delay is attempt 1's, which goes out at once: start the schedule with "
        "0s (retries after these delays: 0s," +
        std::string(Trim(original)) + ")");
  }
  return policy;
}

UnixMs RetryPolicy::LongestDelay() const {
  return delays.empty() ? 0 : *std::max_element(delays.begin(), delays.end());
}

std::optional<UnixMs> RetryPolicy::DelayBefore(int next_attempt, double unit_random,
                                               std::optional<UnixMs> retry_after) const {
  if (next_attempt < 1 || static_cast<std::size_t>(next_attempt) > delays.size()) {
    return std::nullopt;
  }
  const double d = static_cast<double>(delays[static_cast<std::size_t>(next_attempt - 1)]);
  const double r = std::clamp(unit_random, 0.0, 1.0);
  UnixMs delay = std::llround(d * (1.0 + jitter * (2.0 * r - 1.0)));
  if (delay < 0) delay = 0;
  if (retry_after) {
    delay = std::max(delay, std::min(std::max<UnixMs>(*retry_after, 0), LongestDelay()));
  }
  return delay;
}

}  // namespace outbound::core
