// Ingest: the two ways events enter Outbound.
//   - ImportTargets: a client's batch of targets (CONTRACT.md §8–10). Each item is validated and
//     applied on its own (a bad item is `rejected` and emits target.rejected; the rest go
//     through). Results: imported | updated | unchanged | cancelled | rejected.
//   - Publish: one lifecycle event for a target (the nine publishable types), with an optional
//     Idempotency-Key.
// Both write the state change, the event and one delivery row per matching subscription in one
// group-committed transaction; the 2xx is answered only after that commit. After the commit
// the new deliveries are handed to `sink` (the dispatcher) so no claim round trip is needed.
//
// Thread-safe: calls may come from any number of threads at once.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "core/result.h"
#include "store/store.h"

namespace outbound::ingest {

using core::Result;

// Receives deliveries leased to this process after their commit.
using JobSink = std::function<void(std::vector<store::DeliveryJob>)>;

struct IngestOptions {
  int max_import_items = 1000;    // more → kTooLarge
  int max_batch_events = 1000;    // POST /v1/events/batch; more → kTooLarge
  core::UnixMs lease_ms = 30000;  // lease taken on freshly fanned-out deliveries
  // false (`--role api`): fan-out leases nothing to this process (it has no dispatcher); the
  // workers claim the rows.
  bool lease_to_self = true;
  // Single publishes waiting in groups for the store (PublishAsync); more → kUnavailable
  // (store_busy), as the store's own write queue answers when full.
  std::size_t max_waiting_publishes = 100000;
};

struct ImportItemResult {
  // As sent; nullopt (null in the answer) when the item had no string externalId (CONTRACT §10:
  // a missing value is null, as in the item's target.rejected event).
  std::optional<std::string> external_id;
  std::string result;  // imported | updated | unchanged | cancelled | rejected
  std::optional<std::int64_t> target_id;
  std::vector<core::FieldError> errors;  // for rejected
};

// One item of POST /v1/events/batch: its event id, or why it was refused (an error whose
// `field` is relative to the item).
struct BatchItemResult {
  std::optional<std::string> event_id;
  std::optional<core::Error> error;
};
// Renders the batch's answer body (the API's error shape is the API's business).
using BatchAnswer = std::function<std::string(const std::vector<BatchItemResult>&)>;

struct PublishResult {
  int http_status = 202;
  std::string body;  // the JSON answer (replayed verbatim for a repeated Idempotency-Key)
};

struct PublishGroup;  // ingest.cpp

// A single publish (without an Idempotency-Key) waiting in its tenant's group.
struct PendingPublish {
  store::StoredEvent event;  // its id drawn
  std::string answer;        // the 202's body
  std::function<void(Result<PublishResult>)> answered;
};

// The key bit of the write tasks of a tenant's single publishes (IngestService::PublishAsync: its
// groups, and its publishes with an Idempotency-Key): with the tenant's id, one key per tenant,
// apart from the keys of import items (2 + a hash below 2^62) and the dispatcher's (1).
inline constexpr std::uint64_t kPublishGroupKey = 1ULL << 63;

class IngestService {
 public:
  // store, clock and ids must outlive the service.
  IngestService(store::Store& store, const core::Clock& clock, core::UlidGenerator& ids,
                JobSink sink, IngestOptions options = {});

  // body: {"targets": [...]}. Request-level problems (not an object, no array, too many items)
  // are errors and store nothing.
  Result<std::vector<ImportItemResult>> ImportTargets(core::TenantId tenant, core::ClientId client,
                                                      const boost::json::value& body);

  // body: {"eventType", "targetId", "occurredAtUtc", "data"}, parsed from raw_body. raw_body is
  // hashed for the idempotency check, and data.billing is kept from it byte for byte. The answer
  // is 202 {"eventId": ...}.
  Result<PublishResult> Publish(core::TenantId tenant, const boost::json::value& body,
                                std::string_view raw_body,
                                std::optional<std::string_view> idempotency_key);
  // Single publishes in groups not yet taken by their write task (PublishAsync).
  std::size_t WaitingPublishes() const;

  // Publish without waiting for the commit: `answered` gets the answer exactly once, on the
  // store's callback thread after the commit (issue 8: the API answers from there instead of
  // blocking a handler thread per publish), or on this thread when the request is refused before
  // it reaches the store. Nothing of `body` or `raw_body` is used after this returns.
  //
  // Publishes without an Idempotency-Key are grouped: those of a tenant that arrive while its
  // last group waits for the store are stored by one write task (StoreEvents, as a batch's items
  // are), each answered as if alone (202, or its own target_not_found); a store error fails the
  // group. Under load a publish then costs a fraction of its own statements, and on PostgreSQL of
  // its round trips (issue 8); alone, a group of one is what a publish was. A publish with a key
  // is its own task (with its tenant's task key): its key is taken first, atomically, and its
  // answer replayed.
  void PublishAsync(core::TenantId tenant, const boost::json::value& body,
                    std::string_view raw_body, std::optional<std::string_view> idempotency_key,
                    std::function<void(Result<PublishResult>)> answered);

  // body: {"events": [bodies of Publish]} (CONTRACT §13). Each item is validated as Publish
  // validates; the valid ones are stored together in ONE write task (multi-row inserts, one
  // fan-out list), a bad item is refused alone. A store error fails the whole batch (nothing
  // stored). The answer (202, `render`ed) is replayed for a repeated Idempotency-Key.
  Result<PublishResult> PublishBatch(core::TenantId tenant, const boost::json::value& body,
                                     std::string_view raw_body,
                                     std::optional<std::string_view> idempotency_key,
                                     const BatchAnswer& render);

 private:
  // The owner fan-out leases rows to: this process, or nobody (`--role api`).
  std::string_view LeaseOwner() const {
    return options_.lease_to_self ? store_.Owner() : std::string_view();
  }

  // Submits the write task of a new publish group of the tenant's.
  void SubmitPublishGroup(core::TenantId tenant, std::shared_ptr<PublishGroup> group);

  store::Store& store_;
  const core::Clock& clock_;
  core::UlidGenerator& ids_;
  JobSink sink_;
  IngestOptions options_;

  mutable std::mutex pending_mu_;
  // By tenant id: the group that the tenant's next publish joins, until its task takes it or it
  // holds max_batch_events publishes (guarded by pending_mu_, as is the count).
  std::unordered_map<std::int64_t, std::shared_ptr<PublishGroup>> pending_;
  std::size_t waiting_publishes_ = 0;  // in groups not yet taken
};

// Fan-out inside a write transaction: renders `event` for every subscription of the tenant that
// matches its type (only `only_client`'s when given, for target.rejected) and returns the
// delivery rows to insert; a disabled subscription's row is `cancelled` (kept for recover), a
// paused one's `held`. Exposed for the tests and for redelivery tools.
Result<std::vector<store::NewDelivery>> PlanFanout(store::Txn& tx, const core::EventRecord& event,
                                                   const core::TargetSnapshot& snapshot,
                                                   std::optional<core::ClientId> only_client,
                                                   core::UnixMs now);
// The same with the tenant's fan-out list already loaded (Txn::ListFanoutTargets), for batches.
std::vector<store::NewDelivery> PlanFanout(
    const std::vector<std::pair<store::Subscription, store::Client>>& targets,
    const core::EventRecord& event, const core::TargetSnapshot& snapshot,
    std::optional<core::ClientId> only_client, core::UnixMs now);

}  // namespace outbound::ingest
