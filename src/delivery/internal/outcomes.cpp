// Outcomes and retry (outcomes.h): attempt records and the deliveries' next states.
#include "delivery/internal/outcomes.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <utility>

#include "core/log_fields.h"
#include "core/utf8.h"
#include "delivery/internal/http_util.h"

namespace outbound::delivery::internal {

AttemptResult ReadResponse(const Response& response, std::int64_t duration_ms, core::UnixMs now,
                           std::size_t store_limit) {
  AttemptResult out;
  store::AttemptRecord& attempt = out.record;
  attempt.delivery_id = response.attempt.delivery_id;
  attempt.attempt = response.attempt.job.attempts + 1;
  attempt.attempted_at = response.attempt.attempted_at;
  attempt.duration_ms = duration_ms;
  // The status line decides, whatever happened to the body afterwards.
  const int code = response.http_status;
  out.success = code >= 200 && code < 300;
  if (code > 0) {
    attempt.http_status = code;
    if (!out.success) attempt.error = "http_status";
    if ((code == 429 || code == 503) && !response.retry_after.empty()) {
      out.retry_after = ParseRetryAfter(response.retry_after, now);
    }
  } else {
    attempt.error = response.error;
  }
  if (!response.body.empty()) {
    // A receiver may answer bytes that are not text; the snippet is shown in JSON answers.
    std::string snippet = core::ScrubUtf8(response.body);
    TruncateUtf8(snippet, std::min<std::size_t>(store_limit, 4096));
    attempt.response_snippet = std::move(snippet);
  }
  return out;
}

store::AttemptRecord UnsentAttempt(const store::DeliveryJob& job, std::string delivery_id,
                                   core::UnixMs attempted_at, std::string error) {
  store::AttemptRecord attempt;
  attempt.delivery_id = std::move(delivery_id);
  attempt.attempt = job.attempts + 1;
  attempt.attempted_at = attempted_at;
  attempt.error = std::move(error);
  return attempt;
}

store::Outcome Conclude(store::DeliveryJob job, store::AttemptRecord attempt, bool success,
                        std::optional<core::UnixMs> retry_after, const core::RetryPolicy& retry,
                        core::Random& random, core::UnixMs now) {
  store::Outcome o;
  o.delivery = job.id;
  o.tenant = job.tenant;
  o.subscription = job.subscription;
  o.event_id = std::move(job.event_id);
  o.event_type = std::move(job.event_type);
  o.test = job.test;
  if (success) {
    o.new_status = store::DeliveryStatus::kSucceeded;
  } else if (job.test) {
    // A test webhook has one attempt (CONTRACT §13): its failure is final, never retried.
    o.new_status = store::DeliveryStatus::kDead;
  } else {
    // This attempt was number cycle_attempts+1 of its cycle; the schedule is asked about the
    // next one.
    const auto delay = retry.DelayBefore(job.cycle_attempts + 2, random.Unit(), retry_after);
    if (delay) {
      o.new_status = store::DeliveryStatus::kFailed;
      o.next_attempt_at = now + *delay;
    } else {
      o.new_status = store::DeliveryStatus::kDead;
    }
  }
  if (spdlog::should_log(spdlog::level::debug)) {
    // The fields of --log-format json (CONTRACT §13); nothing of the payload or the answer.
    core::LogFields fields{{"subscriptionId", o.subscription.value},
                           {"eventId", o.event_id},
                           {"deliveryId", attempt.delivery_id},
                           {"attempt", attempt.attempt}};
    spdlog::debug("dispatcher: delivery {} attempt {} -> {} ({})", o.delivery.value,
                  attempt.attempt, store::ToString(o.new_status),
                  attempt.error ? *attempt.error : "ok");
  }
  o.attempt = std::move(attempt);
  return o;
}

}  // namespace outbound::delivery::internal
