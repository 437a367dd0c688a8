// Rows as the store hands them out. Secrets (tokens, signing secrets, subscription headers) are
// kept in fields whose names say so; api/ never renders those fields.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "core/model.h"

namespace outbound::store {

using core::ClientId;
using core::DeliveryRowId;
using core::ExternalIds;
using core::KeyId;
using core::SubscriptionId;
using core::TargetId;
using core::TenantId;
using core::UnixMs;

struct Tenant {
  TenantId id;
  std::string name;
  UnixMs created_at = 0;
};

enum class KeyKind { kTenant, kClient };

struct ApiKey {
  KeyId id;
  TenantId tenant;
  KeyKind kind = KeyKind::kTenant;
  std::optional<ClientId> client;  // set for client keys
  std::string token_hash;          // SHA-256 hex of the whole token; never shown
  std::string prefix;              // first characters of the token, shown in lists
  UnixMs created_at = 0;
  std::optional<UnixMs> revoked_at;
};

struct Client {
  ClientId id;
  TenantId tenant;
  std::string name;
  std::string source_system;
  bool billing_details_allowed = false;
  UnixMs created_at = 0;
};

struct Customer {
  TenantId tenant;
  std::int64_t id = 0;
  std::string customer_number;
  std::string name;
  std::optional<std::string> internal_notes;  // taken in, never given out
  ExternalIds external_ids;
};

struct Location {
  TenantId tenant;
  std::int64_t id = 0;
  std::int64_t customer_id = 0;
  std::string name;
  std::optional<std::string> address;
  std::optional<std::string> access_secret;   // taken in, never given out
  std::optional<std::string> internal_notes;  // taken in, never given out
  ExternalIds external_ids;
};

struct Contact {
  TenantId tenant;
  std::int64_t id = 0;
  std::int64_t customer_id = 0;
  std::string display_name;
  std::optional<std::string> phone;
  std::optional<std::string> email;
  std::optional<std::string> internal_notes;  // taken in, never given out
  ExternalIds external_ids;
};

enum class EntityKind { kCustomer, kLocation, kContact, kTarget };

struct Target {
  TargetId id;
  TenantId tenant;
  ClientId import_client;     // the client that imported it
  std::string source_system;  // that client's system
  std::string external_id;    // its id there
  std::int64_t customer_id = 0;
  std::optional<std::int64_t> location_id;
  std::optional<std::int64_t> contact_id;
  std::string title;
  std::optional<std::string> description;
  std::optional<UnixMs> earliest_start;
  std::optional<UnixMs> latest_end;
  std::optional<std::int64_t> duration_minutes;
  std::optional<std::string> internal_notes;  // taken in, never given out
  std::string status;                         // "Imported", "Cancelled", "Scheduled", ...
  std::optional<std::string> cancel_reason;
  ExternalIds external_ids;  // all systems, including source_system → external_id
  UnixMs created_at = 0;
  UnixMs updated_at = 0;
};

// A target a batch of events sets the status of (Txn::MarkTargets), and what that gives back.
struct TargetMark {
  TargetId id;
  std::string_view status;
};
struct MarkedTarget {
  Target target;                  // as it now is (with its external ids)
  core::TargetSnapshot snapshot;  // as LoadSnapshot reads it
};

struct Subscription {
  SubscriptionId id;
  TenantId tenant;
  ClientId client;
  std::string url;
  std::vector<std::string> event_types;
  core::PayloadOptions options;
  bool ordered = false;
  bool enabled = true;
  std::string description;
  std::optional<double> rate_limit_per_second;
  std::optional<int> max_concurrency;
  std::vector<std::pair<std::string, std::string>> headers;  // name → value; secret-like
  std::string secret;                                        // "whsec_..."; secret
  std::optional<std::string> previous_secret;                // still signs until it expires
  std::optional<UnixMs> previous_secret_expires_at;
  std::optional<std::string> disabled_reason;
  std::optional<UnixMs> disabled_at;
  std::optional<UnixMs> last_success_at;
  std::optional<UnixMs> failing_since;
  UnixMs created_at = 0;
  UnixMs updated_at = 0;
  bool operations = false;  // the tenant's hidden operations webhook (CONTRACT §11)
  // CONTRACT §13: its deliveries are held (kept pending, not claimed) until unpaused.
  bool paused = false;
};

// CONTRACT §13: the deliveries waiting for one subscription (pending or failed, including those
// being sent right now). `pending` is counted up to kBacklogCountCap (then it says that many).
struct Backlog {
  std::int64_t pending = 0;
  std::optional<UnixMs> oldest_due_at;  // the earliest next attempt among them
};
inline constexpr std::int64_t kBacklogCountCap = 10000;

// What still refers to a directory record (CONTRACT §13: such a record cannot be deleted).
struct DirectoryReferences {
  std::int64_t targets = 0;
  std::int64_t locations = 0;
  std::int64_t contacts = 0;
};

// What ChangedTenants answers: tenants whose subscriptions, clients or keys changed.
struct ConfigChanges {
  std::vector<TenantId> tenants;
  std::int64_t version = 0;  // pass as `since` next time
};

struct FailureStreak {
  bool enabled = false;
  std::optional<UnixMs> failing_since;  // nullopt: not failing
  int attempts = 0;                     // attempts since failing_since
};

enum class DeliveryStatus { kPending, kSucceeded, kFailed, kDead, kCancelled };
std::string_view ToString(DeliveryStatus s);
std::optional<DeliveryStatus> ParseDeliveryStatus(std::string_view s);

// Everything the dispatcher needs to send one delivery, joined from the delivery, its event and
// its subscription.
struct DeliveryJob {
  DeliveryRowId id;
  TenantId tenant;
  SubscriptionId subscription;
  std::string event_id;
  std::string event_type;
  UnixMs occurred_at = 0;
  std::optional<std::int64_t> target_id;  // for ordered delivery
  std::string data_json;                  // rendered at fan-out; fixed for every attempt
  int attempts = 0;        // attempts made so far over all cycles (ordinavo-attempt continues)
  int cycle_attempts = 0;  // attempts made in the current cycle (drives the schedule)
  UnixMs next_attempt_at = 0;
  // A test webhook (CONTRACT §13): one attempt, never retried, counted nowhere.
  bool test = false;
};

struct NewDelivery {
  TenantId tenant;
  std::string event_id;
  SubscriptionId subscription;
  std::string data_json;
  UnixMs next_attempt_at = 0;
  // The subscription is paused: inserted pending but never leased here. It must say what the
  // subscription's `paused` is in the inserting transaction (fan-out reads it there): on SQLite
  // the row is inserted held, and a claim lets go of held rows only after a subscription changed.
  bool held = false;
  // The subscription is disabled: inserted `cancelled`, with no attempt, so that `recover` (or a
  // redeliver) can send it once the endpoint is back (CONTRACT §6: a disabled subscription gets
  // nothing, and re-enabling it sends what it missed only when asked). Never leased or held.
  bool cancelled = false;
  // Whether the subscription is ordered (CONTRACT §6), as the caller read it (fan-out's list):
  // the row of an ordered subscription to an event with a target carries the event's order
  // (deliveries.target_id, occurred_at, event_row) for the claim's check. nullopt: InsertDeliveries
  // reads it from the subscription when the event has a target.
  std::optional<bool> ordered = std::nullopt;
};

struct AttemptRecord {
  std::string delivery_id;  // "del_" + ULID
  int attempt = 0;          // 1-based over all cycles
  UnixMs attempted_at = 0;
  std::optional<int> http_status;
  std::int64_t duration_ms = 0;
  std::optional<std::string> error;
  std::optional<std::string> response_snippet;  // at most 4 KB
};

// The result of one attempt, recorded with the delivery's new state.
struct Outcome {
  DeliveryRowId delivery;
  TenantId tenant;
  SubscriptionId subscription;
  std::string event_id;
  std::string event_type;  // for the operational event when it goes dead
  AttemptRecord attempt;
  DeliveryStatus new_status = DeliveryStatus::kFailed;  // succeeded | failed | dead
  std::optional<UnixMs> next_attempt_at;                // when failed
  // Of a test delivery (DeliveryJob::test): RecordOutcomes makes a failure final (`dead`) and
  // leaves the subscription's failure streak alone; nothing else may count it (no delivery.dead,
  // no disabling, no metrics).
  bool test = false;
};

struct DeliveryView {
  DeliveryRowId id;
  SubscriptionId subscription;
  ClientId client;
  DeliveryStatus status = DeliveryStatus::kPending;
  std::optional<UnixMs> next_attempt_at;
  std::string data_json;
  std::optional<std::string> last_delivery_id;
  std::vector<AttemptRecord> attempts;  // oldest first
};

struct AttemptRow {
  std::int64_t row_id = 0;  // for cursors
  std::string event_id;
  std::string event_type;
  DeliveryStatus status = DeliveryStatus::kPending;
  AttemptRecord attempt;
  bool test = false;  // of a test event (CONTRACT §13)
};

struct StoredEvent {
  core::EventRecord record;
  std::optional<ClientId> origin_client;  // the importing client, for import events
  // Test events (CONTRACT §13): their type, "ordinavo.test" or the catalog type of an example.
  // record.type is meaningful only when this names a catalog type; renderers use this name.
  std::optional<std::string> test_type = std::nullopt;
  // core::EventDataText(record.data), when the caller made it already (a batch's handler
  // thread, so that the store's writer does not: issue 8); nullopt: the store makes it.
  std::optional<std::string> data_text = std::nullopt;
};

struct IdempotencyRecord {
  std::string request_hash;
  int status = 0;
  std::string body;
  UnixMs created_at = 0;
};

// Cursor paging: rows after `after` (an opaque position from the previous page), at most `limit`.
struct Page {
  int limit = 50;
  std::optional<std::string> after;
};
template <class T>
struct PageResult {
  std::vector<T> rows;
  std::optional<std::string> next;  // nullopt on the last page
};

struct EventFilter {
  std::optional<std::string> event_type;
  std::optional<TargetId> target;
  std::optional<UnixMs> since;  // occurredAt >= since
  std::optional<UnixMs> until;  // occurredAt < until
  // client-key callers see events with a delivery to one of their subscriptions or that they
  // imported themselves; nullopt = whole tenant.
  std::optional<ClientId> client;
};

struct AttemptFilter {
  std::optional<DeliveryStatus> status;
  std::optional<UnixMs> since;
  std::optional<UnixMs> until;
};

// GET /v1/subscriptions/{id}/stats (CONTRACT §13): `count` buckets of `bucket_ms` from `since`
// (aligned by the caller).
struct StatsWindow {
  UnixMs since = 0;
  UnixMs bucket_ms = 3600000;
  int count = 24;
};
// One bucket: attempts (test attempts excluded) with a 2xx status, every other attempt, and the
// nearest-rank percentiles of their durations (nullopt without attempts).
struct StatsBucket {
  UnixMs start = 0;
  std::int64_t succeeded = 0;
  std::int64_t failed = 0;
  std::optional<std::int64_t> p50_ms;
  std::optional<std::int64_t> p95_ms;
};

struct TargetFilter {
  std::optional<std::string> external_id;    // in source_system below
  std::optional<std::string> source_system;  // defaults to any
  std::optional<std::string> status;
};

// The portal (CONTRACT §13): a link a tenant makes for one client, usable once within its
// expiry, is exchanged for a short-lived session that acts as that client. Only SHA-256 hashes
// of their tokens are stored.
struct PortalSession {
  TenantId tenant;
  ClientId client;
  UnixMs expires_at = 0;
};
enum class PortalRedeem {
  kRedeemed,  // the link was good: it is used now and the session is stored
  kUnknown,   // no such link (or its client was deleted)
  kUsed,      // used before
  kExpired,   // never used, but past its expiry
};
struct PortalRedeemResult {
  PortalRedeem outcome = PortalRedeem::kUnknown;
  std::optional<PortalSession> session;  // with kRedeemed
};

// --- retention and gauges (Txn::PurgeEvents, Txn::ReadGauges) ---

struct PurgeResult {
  int events = 0;  // deleted
  std::int64_t deliveries = 0;
  std::int64_t attempts = 0;
  int kept = 0;                     // looked at but kept: a delivery is still pending or failed
  std::optional<std::string> next;  // pass as `after`; nullopt: nothing older is left
};

struct StoreGauges {
  std::int64_t deliveries_due = 0;          // pending or failed, next_attempt_at <= now, unleased
  std::optional<UnixMs> oldest_due_at;      // the earliest next_attempt_at of those
  std::int64_t subscriptions_disabled = 0;  // disabled and not deleted (operations webhooks too)
};

// Where a recover in chunks (Txn::RecoverDeliveriesStep) goes on: the status being walked
// (dead first, then cancelled) and the last row id looked at in it.
struct RecoverCursor {
  DeliveryStatus status = DeliveryStatus::kDead;
  std::int64_t after = 0;
  bool done = false;  // both statuses walked to their end
};

struct RecoverStep {
  int recovered = 0;  // rows re-queued by this step
  RecoverCursor next;
};

}  // namespace outbound::store
