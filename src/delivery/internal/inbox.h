// What the dispatcher thread shares with the threads that hand it work: Offer() callers, and the
// store thread running the `done` callbacks of the dispatcher's writes (SQLite: ob-store-done).
// Held by shared_ptr so that a store callback that arrives after Stop() gave up waiting still finds
// it alive. Thread-safe: everything is behind `mu`.
#pragma once

#include <condition_variable>
#include <mutex>
#include <optional>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "delivery/internal/sender.h"
#include "store/store.h"

namespace outbound::delivery::internal {

struct Inbox {
  enum class Kind {
    kOffered,
    kClaimed,
    kClaimFailed,
    kSettled,
    kOutcomesFailed,
    kReleaseFailed,
    kRenewed,    // RenewLease answered: renewed, or failed (tried again at the next turn)
    kLeaseLost,  // RenewLease: the lease had expired and the rows were taken back
  };
  struct Item {
    Kind kind = Kind::kOffered;
    std::vector<store::DeliveryJob> jobs;  // kOffered, kClaimed
    std::vector<core::DeliveryRowId> ids;  // kSettled, kReleaseFailed; kClaimed: unreadable
    std::vector<store::Outcome> outcomes;  // kOutcomesFailed
    int requested = 0;                     // kClaimed: the claim's limit
    bool claim_after = false;              // kSettled: ordered lanes may have been unblocked
    bool outcome_write = false;            // kSettled: of RecordOutcomes
    bool renewed = false;                  // kRenewed: the lease was renewed (not a failure)
    // A DeferLeases, of this delay (kReleaseFailed: retried as long); none for a ReleaseLeases.
    std::optional<core::UnixMs> deferral_ms = std::nullopt;
  };

  std::mutex mu;
  std::condition_variable cv;
  // State below is protected by mu.
  std::vector<Item> items;  // in arrival order: a commit's acknowledgement and a later claim's
                            // jobs must be seen in the order the writer committed them
  std::vector<core::SubscriptionId> invalidated;
  bool wake = false;
  bool config_changed = false;  // the store's change hint: look at the change versions now
  bool due_announced = false;   // the store's due hint: another process left deliveries due
  bool stop = false;
  bool closed = false;       // the dispatcher thread is gone; Offer() releases directly
  int pending_writes = 0;    // submitted store tasks whose `done` has not run yet
  Sender* sender = nullptr;  // for Sender::Wakeup; null once the sender is gone

  // Requires mu.
  void NotifyLocked();
  // Requires mu. Appends an item; wakes the dispatcher only when none was waiting.
  void PushLocked(Item item);

  // Jobs leased to this process by fan-out (or set off by outcomes). false once the dispatcher
  // thread is gone: `jobs` are left to the caller, who gives their leases back.
  bool Offer(std::vector<store::DeliveryJob>& jobs);
  void Wake();
  void ConfigChanged();
  void DueAnnounced();
  void Invalidate(core::SubscriptionId id);
  void RequestStop();
  // The dispatcher thread ended: Offer() refuses from now on. Returns the ids of the jobs that
  // arrived but were never taken.
  std::vector<core::DeliveryRowId> Close();

  struct Drained {
    std::vector<Item> items;
    std::vector<core::SubscriptionId> invalidated;
    bool wake = false;
    bool config_changed = false;
    bool due_announced = false;
    bool stop = false;
  };
  // Takes everything that arrived (the stop request stays set).
  Drained Drain();

  // A store task is submitted; its `done` calls FinishWrite.
  void BeginWrite();
  void FinishWrite(Item item);
};

}  // namespace outbound::delivery::internal
