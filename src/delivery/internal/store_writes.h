// The dispatcher's writes to the store: claims, lease renewals, outcomes with what they set off,
// released leases. Each is one store task (Submit: the dispatcher never waits for a commit) whose
// result comes back to the dispatcher thread as an Inbox item. Thread-safe. The store and the
// clock must outlive every task submitted (Store::Close() runs what is queued).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "core/result.h"
#include "delivery/internal/inbox.h"
#include "store/store.h"

namespace outbound::delivery::internal {

struct StoreWriteOptions {
  std::string owner;  // this process as lease owner (Store::Owner())
  core::UnixMs lease_ms = 30000;
  core::UnixMs disable_after_ms = 5LL * 24 * 3600 * 1000;
  int disable_min_attempts = 5;
};

class StoreWrites {
 public:
  StoreWrites(store::Store& store, const core::Clock& clock, std::shared_ptr<Inbox> inbox,
              StoreWriteOptions options);

  // ClaimDue(limit) → kClaimed with the jobs, or kClaimFailed.
  void Claim(int limit);
  // RenewLease → kLeaseLost when the lease had expired and the rows were taken back, otherwise
  // kRenewed (a failure is logged; the next turn tries again). In the same transaction, gives
  // up the `idle` subscriptions beyond this process's fair share (ShedSubscriptions).
  void RenewLease(std::vector<core::SubscriptionId> idle);
  // ReleaseUnheld: gives back rows leased to this process until `leased_until_at_most` that it
  // does not hold (`held`, sorted), after a commit of unknown outcome. A failure is logged (the
  // next uncertain commit, or a restart, tries again).
  void ReleaseUnheld(core::UnixMs leased_until_at_most, std::vector<core::DeliveryRowId> held);
  // RecordOutcomes, fenced by the owner, and what they set off (operations.h) in the same
  // transaction → kSettled with the deliveries' ids and `claim_after`, the subscriptions disabled
  // invalidated and the operational deliveries offered; or kOutcomesFailed with the batch.
  void RecordOutcomes(std::vector<store::Outcome> batch, bool claim_after);
  // ReleaseLeases → kSettled, or kReleaseFailed with the ids.
  void ReleaseLeases(std::vector<core::DeliveryRowId> ids);
  // DeferLeases (due no earlier than `delay_ms` from now) → kSettled, or kReleaseFailed with the
  // ids and the delay (`deferral_ms`), so that a retry defers them as long again.
  void DeferLeases(std::vector<core::DeliveryRowId> ids, core::UnixMs delay_ms);
  // ReleaseLeases without an acknowledgement, for any thread (after the dispatcher thread
  // ended). Submit, not Write: Offer() may be called from a store `done` callback, which must
  // never wait for a commit. Store::Close() still finishes the queued task. A failure is logged.
  void ReleaseUnacknowledged(std::vector<core::DeliveryRowId> ids);
  // ReleaseOwner, waiting for the commit: hands back everything this process holds.
  core::Status ReleaseOwner();

 private:
  // ReleaseLeases, or DeferLeases by `delay_ms` when it is set.
  void GiveBack(std::vector<core::DeliveryRowId> ids, std::optional<core::UnixMs> delay_ms);
  // Constant after construction.
  store::Store& store_;
  const core::Clock& clock_;
  const std::shared_ptr<Inbox> inbox_;
  const StoreWriteOptions options_;
  // Ids of operational events; shared with store tasks that may outlive a Stop() that gave up.
  const std::shared_ptr<core::UlidGenerator> event_ids_ = std::make_shared<core::UlidGenerator>();
};

}  // namespace outbound::delivery::internal
