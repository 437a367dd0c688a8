#include "delivery/internal/operations.h"

#include <boost/json.hpp>
#include <map>
#include <optional>
#include <set>
#include <utility>

namespace outbound::delivery::internal {
namespace {

core::Status Emit(store::Txn& txn, core::TenantId tenant, std::string_view type,
                  const boost::json::object& data, const OutcomeEffectOptions& options,
                  core::UnixMs now, core::UlidGenerator& ids, OutcomeEffects& out) {
  const std::string event_id = "evt_" + ids.Next(now);
  auto job = txn.InsertOperationalEvent(tenant, event_id, type, boost::json::serialize(data), now,
                                        options.owner, now + options.lease_ms);
  if (!job) return core::Fail(job.error());
  if (*job) out.jobs.push_back(std::move(**job));
  return {};
}

std::string LastError(const store::AttemptRecord& a) {
  if (a.http_status) return "HTTP " + std::to_string(*a.http_status);
  return a.error.value_or("unknown");
}

}  // namespace

core::Status DisableAndAnnounce(store::Txn& txn, core::TenantId tenant, core::SubscriptionId sub,
                                const std::string& reason, const OutcomeEffectOptions& options,
                                core::UnixMs now, core::UlidGenerator& ids, OutcomeEffects& out) {
  auto changed = txn.DisableSubscription(tenant, sub, reason, now);
  if (!changed) return core::Fail(changed.error());
  if (!*changed) return {};
  out.disabled.push_back(sub);
  auto row = txn.GetSubscription(tenant, sub);
  if (!row) return core::Fail(row.error());
  boost::json::object data{
      {"subscriptionId", sub.value},
      {"clientId", *row ? boost::json::value((*row)->client.value) : boost::json::value(nullptr)},
      {"reason", reason},
      {"disabledAtUtc", core::FormatUtc(now)}};
  return Emit(txn, tenant, "subscription.disabled", data, options, now, ids, out);
}

core::Status ApplyOutcomeEffects(store::Txn& txn, const std::vector<store::Outcome>& outcomes,
                                 const OutcomeEffectOptions& options, core::UnixMs now,
                                 core::UlidGenerator& ids, OutcomeEffects& out) {
  // Each tenant's operations webhook, read once per batch (it cannot change during it: its own
  // outcomes set nothing off). Without an enabled one a `delivery.dead` has nowhere to go, and
  // is not emitted: on PostgreSQL each emit reads the webhook again, a round trip per dead
  // outcome.
  struct Ops {
    std::optional<core::SubscriptionId> id;
    bool enabled = false;
  };
  std::map<std::int64_t, Ops> ops_of_tenant;
  const auto ops_of = [&](core::TenantId tenant) -> core::Result<Ops> {
    auto it = ops_of_tenant.find(tenant.value);
    if (it == ops_of_tenant.end()) {
      auto ops = txn.GetOperationsWebhook(tenant);
      if (!ops) return core::Fail(ops.error());
      Ops found;
      if (*ops) found = Ops{(*ops)->id, (*ops)->enabled};
      it = ops_of_tenant.emplace(tenant.value, found).first;
    }
    return it->second;
  };

  std::set<std::pair<std::int64_t, std::int64_t>> failing;  // (tenant, subscription)
  std::set<std::pair<std::int64_t, std::int64_t>> gone;
  for (const store::Outcome& o : outcomes) {
    // Test webhooks (CONTRACT §13) set nothing off: no delivery.dead, no disabling (410 Gone
    // included: the receiver answered a test, not an event).
    if (o.test) continue;
    // A success sets nothing off either: its tenant's operations webhook is not read (on
    // PostgreSQL a round trip per batch of outcomes, nearly all of them successes).
    if (o.new_status == store::DeliveryStatus::kSucceeded && o.attempt.http_status != 410) continue;
    auto ops = ops_of(o.tenant);
    if (!ops) return core::Fail(ops.error());
    if (ops->id && *ops->id == o.subscription) continue;
    if (o.new_status == store::DeliveryStatus::kDead && ops->enabled) {
      // The row may have stayed cancelled: its subscription was disabled or deleted while this
      // last attempt was in flight, and RecordOutcomes keeps a cancelled row cancelled. Then it
      // is not dead, and announcing it would contradict the API (found by an audit, 7 Dec).
      // Dead outcomes are rare: one read by key each.
      auto now_is = txn.GetDeliveryStatus(o.delivery);
      if (!now_is) return core::Fail(now_is.error());
      const bool dead = *now_is == store::DeliveryStatus::kDead;
      if (dead) {
        boost::json::object data{{"eventId", o.event_id},
                                 {"subscriptionId", o.subscription.value},
                                 {"eventType", o.event_type},
                                 {"lastError", LastError(o.attempt)},
                                 {"attempts", o.attempt.attempt}};
        if (auto s = Emit(txn, o.tenant, "delivery.dead", data, options, now, ids, out); !s) {
          return s;
        }
      }
    }
    if (o.attempt.http_status == 410) {
      gone.emplace(o.tenant.value, o.subscription.value);
    } else if (o.new_status != store::DeliveryStatus::kSucceeded) {
      failing.emplace(o.tenant.value, o.subscription.value);
    }
  }
  for (const auto& [tenant, sub] : gone) {
    if (auto s = DisableAndAnnounce(txn, core::TenantId(tenant), core::SubscriptionId(sub),
                                    "endpoint answered 410 Gone", options, now, ids, out);
        !s) {
      return s;
    }
  }
  for (const auto& [tenant, sub] : failing) {
    if (gone.contains({tenant, sub})) continue;
    auto streak = txn.GetFailureStreak(core::TenantId(tenant), core::SubscriptionId(sub));
    if (!streak) return core::Fail(streak.error());
    if (!streak->enabled || !streak->failing_since) continue;
    if (now - *streak->failing_since < options.disable_after_ms) continue;
    if (streak->attempts < options.disable_min_attempts) continue;
    const std::string reason = "failing since " + core::FormatUtc(*streak->failing_since) +
                               " without a success (" + std::to_string(streak->attempts) +
                               " attempts)";
    if (auto s = DisableAndAnnounce(txn, core::TenantId(tenant), core::SubscriptionId(sub), reason,
                                    options, now, ids, out);
        !s) {
      return s;
    }
  }
  return {};
}

}  // namespace outbound::delivery::internal
