// What an attempt's outcome sets off besides the delivery's own state (CONTRACT §6, §11):
// disabling a subscription (410 Gone; failing without a success for too long) and the
// operational events `subscription.disabled` and `delivery.dead` to the tenant's operations
// webhook. Runs inside the store transaction that records the outcomes, so an outcome and what
// it sets off commit together.
#pragma once

#include <string>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "core/result.h"
#include "store/store.h"

namespace outbound::delivery::internal {

struct OutcomeEffectOptions {
  core::UnixMs disable_after_ms = 5LL * 24 * 3600 * 1000;
  int disable_min_attempts = 5;
  std::string owner;  // lease owner of the operational deliveries inserted
  core::UnixMs lease_ms = 30000;
};

struct OutcomeEffects {
  std::vector<store::DeliveryJob> jobs;        // operational deliveries, leased to `owner`
  std::vector<core::SubscriptionId> disabled;  // subscriptions disabled by this batch
};

// Call after txn.RecordOutcomes(outcomes). The operations webhook's own outcomes never set off
// anything: it may go dead, but it is neither disabled nor announced. Nor do test webhooks'
// outcomes (Outcome::test, CONTRACT §13).
core::Status ApplyOutcomeEffects(store::Txn& txn, const std::vector<store::Outcome>& outcomes,
                                 const OutcomeEffectOptions& options, core::UnixMs now,
                                 core::UlidGenerator& ids, OutcomeEffects& out);

// Disables `sub` (if it is enabled) and queues its `subscription.disabled` event. Appends to
// out.disabled only when it changed.
core::Status DisableAndAnnounce(store::Txn& txn, core::TenantId tenant, core::SubscriptionId sub,
                                const std::string& reason, const OutcomeEffectOptions& options,
                                core::UnixMs now, core::UlidGenerator& ids, OutcomeEffects& out);

}  // namespace outbound::delivery::internal
