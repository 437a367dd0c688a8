// SqlTxn: test webhooks and delivery stats (CONTRACT §13).
#include <cmath>

#include "store/sql/txn_util.h"

namespace outbound::store::sql {

using namespace util;  // NOLINT(google-build-using-namespace): the shared helpers of store/sql

namespace {

// Nearest-rank percentile of sorted values (p in (0, 100]): the smallest value with at least p %
// of the values at or below it. Always one of the values measured, never an interpolation.
std::int64_t NearestRank(const std::vector<std::int64_t>& sorted, double p) {
  const auto n = static_cast<double>(sorted.size());
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * n));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

}  // namespace

Status SqlTxn::InsertUnlistedEvent(TenantId tenant, std::string_view event_id,
                                   std::string_view event_type, std::string_view data_json,
                                   UnixMs now, UnlistedEvent kind) {
  last_events_.clear();
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("INSERT INTO events(event_id, tenant_id, event_type, "
                                         "target_id, occurred_at, accepted_at, origin_client_id, "
                                         "data, operational, test) VALUES (?1, ?2, ?3, NULL, ?4, "
                                         "?4, NULL, ?5, ?6, ?7)"));
  s.Bind(1, event_id)
      .Bind(2, tenant.value)
      .Bind(3, event_type)
      .Bind(4, now)
      .Bind(5, data_json)
      .Bind(6, kind == UnlistedEvent::kOperational)
      .Bind(7, kind == UnlistedEvent::kTest);
  return s.Run();
}

Status SqlTxn::InsertTestEvent(TenantId tenant, SubscriptionId sub, std::string_view event_id,
                               std::string_view event_type, std::string_view data_json,
                               UnixMs now) {
  OB_RETURN_IF_ERROR(
      InsertUnlistedEvent(tenant, event_id, event_type, data_json, now, UnlistedEvent::kTest));
  // Unleased: whichever dispatcher owns the subscription claims it, within its rate limit and
  // maxConcurrency. Without a target it never waits behind ordered deliveries, nor holds any up.
  OB_ASSIGN_OR_RETURN(const std::int64_t payload, InsertPayload(event_id, data_json));
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare("INSERT INTO deliveries(tenant_id, event_id, subscription_id, status, "
                         "attempts, cycle_attempts, next_attempt_at, lease_owner, lease_until, "
                         "payload_id, data_json, created_at, test) VALUES (?1, ?2, ?3, "
                         "'pending', 0, 0, ?4, NULL, NULL, ?5, '', ?4, 1)"));
  s.Bind(1, tenant.value).Bind(2, event_id).Bind(3, sub.value).Bind(4, now).Bind(5, payload);
  return s.Run();
}

Result<std::vector<StatsBucket>> SqlTxn::AttemptStats(TenantId tenant, SubscriptionId sub,
                                                      const StatsWindow& window) {
  std::vector<StatsBucket> buckets(static_cast<std::size_t>(std::max(window.count, 0)));
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    buckets[i].start = window.since + static_cast<UnixMs>(i) * window.bucket_ms;
  }
  if (buckets.empty() || window.bucket_ms <= 0) return buckets;
  {
    // Another tenant's subscription has no attempts to show.
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT 1 FROM subscriptions WHERE id = ?1 AND "
                                           "tenant_id = ?2"));
    s.Bind(1, sub.value).Bind(2, tenant.value);
    OB_ASSIGN_OR_RETURN(bool found, s.Step());
    if (!found) return buckets;
  }
  // One range scan of attempts_stats (subscription_id, attempted_at, http_status, duration_ms
  // WHERE test = 0): the rows read are this subscription's attempts in the window and no others,
  // all columns from the index. The durations are kept per bucket for the exact percentiles:
  // memory 8 bytes and sorting O(log n) per attempt of the window.
  const UnixMs until = window.since + static_cast<UnixMs>(window.count) * window.bucket_ms;
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT attempted_at, http_status, duration_ms FROM "
                                         "attempts WHERE subscription_id = ?1 AND attempted_at "
                                         ">= ?2 AND attempted_at < ?3 AND test = 0"));
  s.Bind(1, sub.value).Bind(2, window.since).Bind(3, until);
  std::vector<std::vector<std::int64_t>> durations(buckets.size());
  for (;;) {
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    const auto index = static_cast<std::size_t>((s.Int(0) - window.since) / window.bucket_ms);
    if (index >= buckets.size()) continue;
    const std::optional<std::int64_t> status = s.OptInt(1);
    if (status && *status >= 200 && *status < 300) {
      ++buckets[index].succeeded;
    } else {
      ++buckets[index].failed;
    }
    durations[index].push_back(s.Int(2));
  }
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    std::vector<std::int64_t>& d = durations[i];
    if (d.empty()) continue;
    std::sort(d.begin(), d.end());
    buckets[i].p50_ms = NearestRank(d, 50);
    buckets[i].p95_ms = NearestRank(d, 95);
  }
  return buckets;
}

}  // namespace outbound::store::sql
