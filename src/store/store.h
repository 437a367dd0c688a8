// The Store: Outbound's only way to its database. Two backends implement it: sqlite/ (embedded
// default; one process owns the file) and postgres/ (any number of processes share one
// database). One conformance suite (testing/) runs against both.
//
// Unit of work. Everything happens inside a Txn handed to a callback:
//   - Write(fn) / Submit(task): one read-write transaction. Transactions may run concurrently
//     with others (other threads, other processes) and `run` may be called more than once: when
//     it loses a race (a concurrent insert of the same key, a deadlock) the store rolls it back
//     and runs it again, so `run` must assign its results, never accumulate them. A run that
//     keeps losing fails with kAborted (the caller answers 503). How commits are grouped is the
//     backend's business (SQLite: one writer thread, many tasks per COMMIT). `done` runs once,
//     after COMMIT (or the task's final failure), on a store thread (SQLite: one that runs the
//     callbacks in commit order, apart from the writer): keep it short and never call Write
//     from it.
//   - Read(fn): a consistent read-only snapshot; concurrent with writes.
// Callbacks must not keep the Txn reference beyond their own return.
//
// Leases (CONTRACT §12). A delivery is worked on by one process at a time: the one named in its
// lease. An owner's leases all last until its lease expiry, which RenewLease pushes forward;
// once it has passed, the next ClaimDue of any process takes the owner's rows back (and its
// subscriptions, below). Renewals, outcomes and releases are fenced: they apply only to rows
// still leased to the caller, so a process that lost its lease cannot overwrite the work of the
// one that took over; what they ignored is counted in their answer.
// Subscription ownership (shared databases only): the deliveries of one subscription are sent
// by one process at a time, the subscription's owner, so that its maxConcurrency, rate limit and
// target order hold over all processes. ClaimDue and InsertDeliveries take unowned
// subscriptions; rows of a subscription owned by another live process are left to it.
//
// Thread-safety: Store is thread-safe. A Txn is used by one thread only.
// Tenancy: every method takes the tenant first; rows of other tenants are invisible
// (a lookup answers "not found").
// Errors: store failures are core::Error with kind kInternal, kUnavailable (code "store_busy"
// when the write queue is full, "store_unavailable" when the database cannot be reached: the
// caller answers 503 with Retry-After) or kAborted (a conflict that retries did not resolve).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "store/model.h"

namespace outbound::store {

using core::Result;
using core::Status;

class Txn {
 public:
  virtual ~Txn() = default;

  // --- tenants and keys ---
  virtual Result<Tenant> CreateTenant(std::string_view name, UnixMs now) = 0;
  virtual Result<std::optional<Tenant>> GetTenant(TenantId tenant) = 0;
  virtual Result<ApiKey> CreateApiKey(const ApiKey& key) = 0;  // id assigned
  // Only keys that are not revoked.
  virtual Result<std::optional<ApiKey>> FindApiKeyByHash(std::string_view token_hash) = 0;
  virtual Result<PageResult<ApiKey>> ListApiKeys(TenantId tenant, const Page& page) = 0;
  // false when there is no such key in the tenant or it was revoked already.
  virtual Result<bool> RevokeApiKey(TenantId tenant, KeyId key, UnixMs now) = 0;

  // --- integration clients ---
  virtual Result<Client> CreateClient(const Client& client) = 0;  // id assigned
  virtual Result<std::optional<Client>> GetClient(TenantId tenant, ClientId id) = 0;
  virtual Result<PageResult<Client>> ListClients(TenantId tenant, const Page& page) = 0;
  virtual Result<bool> UpdateClient(const Client& client) = 0;
  // Deletes the client, its keys (revoked) and its subscriptions.
  virtual Result<bool> DeleteClient(TenantId tenant, ClientId id, UnixMs now) = 0;

  // --- directory ---
  // Upserts replace the record and its whole external id set. An external id already used by
  // another record of the same kind in the same source system → kConflict
  // "external_id_conflict".
  virtual Status UpsertCustomer(const Customer& c) = 0;
  virtual Status UpsertLocation(const Location& l) = 0;
  virtual Status UpsertContact(const Contact& c) = 0;
  virtual Result<std::optional<Customer>> GetCustomer(TenantId tenant, std::int64_t id) = 0;
  virtual Result<std::optional<Location>> GetLocation(TenantId tenant, std::int64_t id) = 0;
  virtual Result<std::optional<Contact>> GetContact(TenantId tenant, std::int64_t id) = 0;
  virtual Result<bool> DeleteEntity(TenantId tenant, EntityKind kind, std::int64_t id) = 0;
  // Deleting a customer, location or contact that a target (of any status) or another record
  // still refers to fails with kConflict "in_use" naming what refers to it; nothing changes.
  // The Ordinavo id of the record with `external_id` in `source_system`.
  virtual Result<std::optional<std::int64_t>> FindByExternalId(TenantId tenant, EntityKind kind,
                                                               std::string_view source_system,
                                                               std::string_view external_id) = 0;

  // --- directory lists and references (CONTRACT §13) ---
  // Id order, cursor = the last id.
  virtual Result<PageResult<Customer>> ListCustomers(TenantId tenant, const Page& page) = 0;
  virtual Result<PageResult<Location>> ListLocations(TenantId tenant, const Page& page) = 0;
  virtual Result<PageResult<Contact>> ListContacts(TenantId tenant, const Page& page) = 0;
  // What refers to a customer, location or contact (targets of any status; a customer's
  // locations and contacts).
  virtual Result<DirectoryReferences> CountReferences(TenantId tenant, EntityKind kind,
                                                      std::int64_t id) = 0;

  // --- targets ---
  virtual Result<Target> InsertTarget(const Target& t) = 0;  // id assigned
  virtual Status UpdateTarget(const Target& t) = 0;          // all fields incl. external_ids
  virtual Result<std::optional<Target>> GetTarget(TenantId tenant, TargetId id) = 0;
  virtual Result<std::optional<Target>> FindTargetByExternalId(TenantId tenant,
                                                               std::string_view source_system,
                                                               std::string_view external_id) = 0;
  virtual Result<PageResult<Target>> ListTargets(TenantId tenant, const TargetFilter& filter,
                                                 const Page& page) = 0;
  // The target with its directory records, for rendering (no internal notes, no secrets).
  virtual Result<core::TargetSnapshot> LoadSnapshot(TenantId tenant, const Target& target) = 0;

  // --- events ---
  virtual Status InsertEvent(const StoredEvent& e) = 0;
  // Inserts many events with multi-row statements (POST /v1/events/batch).
  virtual Status InsertEvents(const std::vector<StoredEvent>& events) = 0;
  // Sets a target's status and updated_at only (a publish; nothing else of the row changes).
  // false when there is no such target.
  virtual Result<bool> SetTargetStatus(TenantId tenant, TargetId id, std::string_view status,
                                       UnixMs now) = 0;
  // As SetTargetStatus, then the target as it now is (with its external ids, as GetTarget):
  // nullopt, and nothing changed, when there is no such target. A publish's read and write of
  // its target in one statement on PostgreSQL (each statement is a round trip there).
  virtual Result<std::optional<Target>> MarkTarget(TenantId tenant, TargetId id,
                                                   std::string_view status, UnixMs now) = 0;
  // MarkTarget and then LoadSnapshot of each target of `marks` (a batch of events; ids distinct
  // and ascending, the order they are locked in): nullopt for one that does not exist. One round
  // trip on PostgreSQL for all of them, instead of one per target.
  virtual Result<std::vector<std::optional<MarkedTarget>>> MarkTargets(
      TenantId tenant, const std::vector<TargetMark>& marks, UnixMs now) = 0;
  virtual Result<std::optional<StoredEvent>> GetEvent(TenantId tenant,
                                                      std::string_view event_id) = 0;
  virtual Result<PageResult<StoredEvent>> ListEvents(TenantId tenant, const EventFilter& filter,
                                                     const Page& page) = 0;
  virtual Result<std::optional<IdempotencyRecord>> GetIdempotency(TenantId tenant,
                                                                  std::string_view key) = 0;
  // Stores `rec` under `key` unless the key is taken, in one atomic statement: nullopt when it
  // was stored, else the record stored first (by any process; a concurrent transaction holding
  // the key is waited for).
  virtual Result<std::optional<IdempotencyRecord>> PutIdempotencyIfAbsent(
      TenantId tenant, std::string_view key, const IdempotencyRecord& rec) = 0;

  // --- subscriptions ---
  virtual Result<Subscription> CreateSubscription(const Subscription& s) = 0;  // id assigned
  virtual Result<std::optional<Subscription>> GetSubscription(TenantId tenant,
                                                              SubscriptionId id) = 0;
  // client: only that client's subscriptions.
  virtual Result<PageResult<Subscription>> ListSubscriptions(TenantId tenant,
                                                             std::optional<ClientId> client,
                                                             const Page& page) = 0;
  virtual Status UpdateSubscription(const Subscription& s) = 0;
  virtual Result<bool> DeleteSubscription(TenantId tenant, SubscriptionId id) = 0;
  // The backlog of each of `subs` (same order; subscriptions of other tenants: empty). One
  // indexed, bounded count per subscription (see Backlog).
  virtual Result<std::vector<Backlog>> GetBacklogs(TenantId tenant,
                                                   const std::vector<SubscriptionId>& subs) = 0;
  // The subscriptions of the tenant (all clients; disabled ones too, whose rows fan-out inserts
  // cancelled) with their clients, for fan-out.
  // Their health fields (last_success_at, failing_since) may be older than the row's: the
  // writer keeps these lists across outcomes, which change nothing fan-out reads.
  virtual Result<std::vector<std::pair<Subscription, Client>>> ListFanoutTargets(
      TenantId tenant) = 0;

  // --- deliveries and leases ---
  // Inserts deliveries. With an `owner`, the rows of subscriptions that no other live process
  // owns are leased to it (taking the subscription) and returned as jobs, for its dispatcher to
  // send after commit without a claim round trip; the other rows are left for their owner's
  // ClaimDue. An empty owner (an `api`-only process) leases nothing and returns no jobs.
  // Rows of one event with the same data_json text share one stored copy of it when they come
  // one after the other (fan-out gives an event's rows together; rows of one event apart from
  // each other are stored correctly, only not shared).
  virtual Result<std::vector<DeliveryJob>> InsertDeliveries(const std::vector<NewDelivery>& rows,
                                                            std::string_view owner, UnixMs now,
                                                            UnixMs lease_until) = 0;
  // Fan-out's rows, told to the store before the events they refer to go in, so that it may
  // start on what InsertDeliveries of the same rows will store (SQLite: a batch's renderings are
  // packed on a helper thread meanwhile). Only a hint: InsertDeliveries stores the same with or
  // without it, and `rows` need not outlive the call. Default: nothing.
  virtual void PrepareDeliveries(const std::vector<NewDelivery>& rows) { (void)rows; }
  // Takes back the rows and subscriptions of owners whose lease expired before `now`, then
  // leases up to `limit` deliveries that are pending or failed, due at `now`, unleased, of an
  // enabled, unpaused subscription that is unowned or owned by `owner`, and (ordered subscriptions)
  // at the head of their target; oldest due first. Extends the owner's lease to `lease_until`.
  virtual Result<std::vector<DeliveryJob>> ClaimDue(std::string_view owner, UnixMs now,
                                                    UnixMs lease_until, int limit) = 0;
  // ClaimDue, with each job's data_json as the store keeps it (SQLite: maybe compressed), for
  // a caller that makes it the text with UnpackRendering after the commit, off the writer (the
  // dispatcher; issue 8: inflating in the claim was an eighth of the writer during a drain).
  virtual Result<std::vector<DeliveryJob>> ClaimDueAsStored(std::string_view owner, UnixMs now,
                                                            UnixMs lease_until, int limit) = 0;
  // Pushes the owner's lease to `lease_until` (a first call starts it). false when it had expired
  // and its rows were taken back: the caller must drop every job it holds that is not in flight.
  virtual Result<bool> RenewLease(std::string_view owner, UnixMs now, UnixMs lease_until) = 0;
  // Shared databases: when the owner has more than its fair share of the owned subscriptions
  // (all owned ÷ live owners, rounded up), gives up the excess among `idle` (subscriptions it
  // holds no work of), so that a process that joins later gets endpoints to send for. Returns
  // how many it gave up; 0 on a database of one process.
  virtual Result<int> ShedSubscriptions(std::string_view owner, UnixMs now,
                                        const std::vector<SubscriptionId>& idle) = 0;
  // Gives leased rows back (the dispatcher had no room for them). Returns how many of `ids`
  // were no longer the owner's (nothing done to those).
  virtual Result<int> ReleaseLeases(std::string_view owner,
                                    const std::vector<DeliveryRowId>& ids) = 0;
  // As ReleaseLeases, and the rows are due no earlier than `not_before` (a later due time is
  // kept): for the overflow of a subscription whose queue in the dispatcher is full, so that the
  // next claims do not take the same rows back at once only to give them back again.
  virtual Result<int> DeferLeases(std::string_view owner, const std::vector<DeliveryRowId>& ids,
                                  UnixMs not_before) = 0;
  // Gives back the rows leased to `owner` until `leased_until_at_most` or earlier (so: leased
  // before then) that are not in `held` (sorted). Returns how many. For rows a commit of unknown
  // outcome may have leased to a process that never learnt of them (Store::UncertainCommits).
  virtual Result<int> ReleaseUnheld(std::string_view owner, UnixMs leased_until_at_most,
                                    const std::vector<DeliveryRowId>& held) = 0;
  // Gives back everything the owner holds (its rows, its subscriptions) and ends its lease
  // (SIGTERM).
  virtual Status ReleaseOwner(std::string_view owner) = 0;
  // Appends each attempt and sets its delivery's status, counters and next attempt; clears the
  // lease; updates the subscription's lastSuccessAt / failingSince / failure streak. Fenced:
  // outcomes of rows no longer leased to `owner` change nothing; returns their indexes in
  // `outcomes` (what they would have set off, a delivery.dead say, must not happen either).
  virtual Result<std::vector<std::size_t>> RecordOutcomes(std::string_view owner,
                                                          const std::vector<Outcome>& outcomes) = 0;
  // The earliest next_attempt_at of unleased pending/failed deliveries, for the dispatcher's
  // sleep.
  virtual Result<std::optional<UnixMs>> NextDueAt() = 0;
  // Changes made to subscriptions, clients or keys (by any process) after `since`: the tenants
  // they belong to and the version to pass next time. Version 0 answers no tenants, only the
  // current version.
  virtual Result<ConfigChanges> ChangedTenants(std::int64_t since) = 0;
  // A delivery row's status (nullopt: no such row). One read by primary key.
  virtual Result<std::optional<DeliveryStatus>> GetDeliveryStatus(DeliveryRowId id) = 0;
  // Deliveries of one event, with their attempts (client: only its subscriptions').
  virtual Result<std::vector<DeliveryView>> GetDeliveries(TenantId tenant,
                                                          std::string_view event_id,
                                                          std::optional<ClientId> client) = 0;
  // Attempts of one subscription, newest first.
  virtual Result<PageResult<AttemptRow>> ListAttempts(TenantId tenant, SubscriptionId sub,
                                                      const AttemptFilter& filter,
                                                      const Page& page) = 0;
  // Starts a new delivery cycle (status pending, cycle_attempts 0, due now) for the event's
  // deliveries (one subscription's when given; client: only its own), except those a process
  // holds a live lease on (claimed: queued for sending or in flight). Reopening one of those
  // would be lost: its holder takes no second copy of a row it holds, and the attempt under way
  // then closes the new cycle (or, on PostgreSQL, another process sends it at the same time).
  // They are counted apart, for the answer to say so.
  struct Redelivered {
    int reopened = 0;
    int in_flight = 0;  // matched, but leased: left as they are
  };
  virtual Result<Redelivered> Redeliver(TenantId tenant, std::string_view event_id,
                                        std::optional<SubscriptionId> sub,
                                        std::optional<ClientId> client, UnixMs now) = 0;
  // POST /v1/subscriptions/{id}/recover: starts a new cycle (as Redeliver) for every dead or
  // cancelled delivery of the subscription created at or after `since`. Returns how many.
  virtual Result<int> RecoverDeliveries(TenantId tenant, SubscriptionId sub, UnixMs since,
                                        UnixMs now) = 0;
  // One bounded step of the same (RecoverInChunks below runs each in its own transaction): looks
  // at up to `limit` rows of the subscription after `cursor` (dead ones by id, then cancelled
  // ones by id: a range of the index deliveries_subscription, no sort) and re-queues those
  // created at or after `since`. Returns how many it re-queued and the cursor after the rows it
  // looked at (`done` when none were left).
  virtual Result<RecoverStep> RecoverDeliveriesStep(TenantId tenant, SubscriptionId sub,
                                                    UnixMs since, UnixMs now, RecoverCursor cursor,
                                                    int limit) = 0;

  // --- disabling (CONTRACT §6) ---
  // Disables an enabled subscription (reason, disabled_at = now) and cancels its open
  // deliveries. false when there is no such enabled subscription (already disabled, deleted,
  // another tenant's): the caller announces a disable only once.
  virtual Result<bool> DisableSubscription(TenantId tenant, SubscriptionId id,
                                           std::string_view reason, UnixMs now) = 0;
  // The subscription's current failing streak: failing_since and the attempts made since then
  // (a counter kept by RecordOutcomes: its cost does not grow with the attempt history).
  virtual Result<FailureStreak> GetFailureStreak(TenantId tenant, SubscriptionId id) = 0;

  // --- key rotation (--secrets-key NEW,OLD,...) ---
  // Seals again with the first key the secrets and headers of up to `limit` subscriptions with
  // id > `after` that another key sealed. Returns the last id looked at; nullopt when there are
  // no more rows.
  virtual Result<std::optional<std::int64_t>> ResealSecrets(std::int64_t after, int limit) = 0;

  // --- operational webhooks (CONTRACT §11) ---
  // The tenant's operations endpoint is a hidden subscription row (operations = true): no list,
  // get, update or fan-out of ordinary subscriptions ever sees it.
  virtual Result<std::optional<Subscription>> GetOperationsWebhook(TenantId tenant) = 0;
  // Creates it with `secret` or changes its URL (the secret stays). Returns the row and whether
  // it was created.
  virtual Result<std::pair<Subscription, bool>> PutOperationsWebhook(TenantId tenant,
                                                                     std::string_view url,
                                                                     std::string_view secret,
                                                                     UnixMs now) = 0;
  // Deletes it and cancels its open deliveries. false when there was none.
  virtual Result<bool> DeleteOperationsWebhook(TenantId tenant) = 0;
  // Inserts an operational event (not listed among the tenant's events) and its one delivery to
  // the operations webhook, leased by `owner`; nullopt (nothing inserted) when the tenant has no
  // enabled operations webhook.
  virtual Result<std::optional<DeliveryJob>> InsertOperationalEvent(
      TenantId tenant, std::string_view event_id, std::string_view event_type,
      std::string_view data_json, UnixMs now, std::string_view owner, UnixMs lease_until) = 0;

  // --- the portal (CONTRACT §13; PortalSession in model.h) ---
  // Stores a portal link of `client` (the hash of its token) valid until `expires_at`; first
  // deletes the tenant's links and sessions that expired before `now` (they are never read
  // again), so the tables stay small without a sweeper.
  virtual Status CreatePortalLink(TenantId tenant, ClientId client, std::string_view link_hash,
                                  UnixMs now, UnixMs expires_at) = 0;
  // Uses a link once: when it exists, is unused, expires after `now` and its client is not
  // deleted, it is marked used and a session (hash `session_hash`, expiry `session_expires_at`)
  // is stored for its client; of two concurrent calls with one link only one redeems it.
  virtual Result<PortalRedeemResult> RedeemPortalLink(std::string_view link_hash,
                                                      std::string_view session_hash, UnixMs now,
                                                      UnixMs session_expires_at) = 0;
  // The session with this token hash, when it expires after `now` and its client still exists.
  virtual Result<std::optional<PortalSession>> FindPortalSession(std::string_view session_hash,
                                                                 UnixMs now) = 0;
  // Ends a session (sign-out). false when there was none.
  virtual Result<bool> DeletePortalSession(std::string_view session_hash) = 0;

  // --- retention and gauges (CONTRACT §13: --retention, GET /metrics) ---
  // Deletes, with their deliveries and attempts, up to `limit` events (of every tenant) accepted
  // before `accepted_before` (the time in their eventId) of which no delivery is pending or
  // failed, looking only at events whose eventId sorts after `after` (empty: from the first).
  // Events it finds but must keep (a delivery still open) are skipped, not deleted; `next` is
  // where the following call continues; nullopt once no older event is left to look at.
  // Idempotent and safe beside every other writer, also of other processes: a delivery that
  // becomes pending meanwhile (Redeliver) keeps its event.
  virtual Result<PurgeResult> PurgeEvents(std::string_view after, UnixMs accepted_before,
                                          int limit) = 0;
  // Deletes up to `limit` idempotency keys stored before `created_before`. Returns how many.
  virtual Result<int> PurgeIdempotencyKeys(UnixMs created_before, int limit) = 0;
  // The gauges of GET /metrics, over the whole database (all tenants, all processes), each one
  // indexed query whose cost does not grow with the history.
  virtual Result<StoreGauges> ReadGauges(UnixMs now) = 0;

  // --- test events and delivery stats (CONTRACT §13) ---
  // Inserts a test event of `event_type` ("ordinavo.test" or a catalog type) and its one
  // delivery to `sub`, due at `now` and unleased (a dispatcher claims it). Test events are not
  // listed by ListEvents, are readable by GetEvent (test_type set), appear in the
  // subscription's ListAttempts, are not redelivered or recovered, and count in no stats.
  // The caller checks that the subscription is the tenant's and enabled.
  virtual Status InsertTestEvent(TenantId tenant, SubscriptionId sub, std::string_view event_id,
                                 std::string_view event_type, std::string_view data_json,
                                 UnixMs now) = 0;
  // The subscription's attempts (test attempts excluded) in `window.count` buckets of
  // `window.bucket_ms` from `window.since`, oldest first, empty buckets included. One range scan
  // of the index on (subscription, attempt time): its cost is the window's attempts of this
  // subscription, never another's history.
  virtual Result<std::vector<StatsBucket>> AttemptStats(TenantId tenant, SubscriptionId sub,
                                                        const StatsWindow& window) = 0;
};

// Makes a rendering that ClaimDueAsStored returned the rendered JSON text (text stays as it
// is). An error when a stored rendering does not unpack (a damaged database); `data` is then
// unchanged.
Status UnpackRendering(std::string& data);

struct WriteTask {
  // Runs inside a transaction (or a savepoint of one); an error rolls back this task alone. May
  // run more than once (see above).
  std::function<Status(Txn&)> run;
  // After COMMIT (ok) or failure (the task's own error, or the commit's).
  std::function<void(const Status&)> done;
  // Tasks with the same non-zero key run one after another, in the order they were submitted,
  // never in two transactions at once: give one key to tasks that lock the same rows in
  // different orders (the dispatcher's, kDeliveryKey), or that must apply in order (items of an
  // import about one external id). 0: any order.
  std::uint64_t key = 0;
};

// The key of the dispatcher's tasks (claims, renewals, outcomes, releases).
inline constexpr std::uint64_t kDeliveryKey = 1;

class Store {
 public:
  virtual ~Store() = default;

  // Queues a task. Never blocks: when the queue is full, `done` is called at once with
  // kUnavailable.
  virtual void Submit(WriteTask task) = 0;
  // Runs `fn` in a transaction and waits for the commit (`key`: WriteTask::key).
  Status Write(std::function<Status(Txn&)> fn, std::uint64_t key = 0);
  // Runs `fn` on a read-only snapshot.
  virtual Status Read(const std::function<Status(Txn&)>& fn) = 0;

  // A name for this process as lease owner, unique among all processes on the database.
  virtual std::string_view Owner() const = 0;
  // Pending writes, for backpressure and metrics.
  virtual std::size_t QueueDepth() const = 0;
  // Calls `fn` (on a thread of the store's, soon after the commit) when another process may
  // have changed subscriptions, clients or keys: a hint to call ChangedTenants now rather than
  // at the next poll. Hints can be lost; polling is what the 2 s promise rests on. A backend
  // whose database has one process (SQLite) never calls it. Set once, before use.
  virtual void SetChangeHint(std::function<void()> fn) = 0;
  // Calls `fn` (on a thread of the store's, soon after the commit) when another process may have
  // left deliveries due and unleased (an `api` process's publish, a recover or a redelivery): a
  // hint to claim now rather than at the next poll (the dispatcher's claim interval). Hints can
  // be lost or spurious (a process is hinted of its own commits too); the periodic claim is what
  // delivery rests on. A backend whose database has one process (SQLite) never calls it. Set
  // once, before use.
  virtual void SetDueHint(std::function<void()> fn) = 0;
  // Commits whose outcome is unknown (the connection was lost during COMMIT): rows they leased
  // to this process may exist without anyone holding them. A dispatcher that sees this count
  // change gives back what it does not hold (Txn::ReleaseUnheld). Always 0 for SQLite.
  virtual std::uint64_t UncertainCommits() const = 0;
  // Finishes queued writes and closes; further Submit calls fail with kUnavailable.
  virtual void Close() = 0;
};

// Rows a recover re-queues per transaction (RecoverInChunks): small enough that other tasks'
// commits interleave within milliseconds and that the writer's memory (the statement and
// savepoint journals of a multi-row UPDATE, held in memory) stays small.
inline constexpr int kRecoverChunkRows = 250;

// POST /v1/subscriptions/{id}/recover as a sequence of short write transactions, each one
// RecoverDeliveriesStep of up to `chunk_rows` rows, so that one subscription's backlog never
// holds the writer (and every other tenant's writes) for long. Returns the exact total re-queued.
// Not atomic: when the process dies midway, the chunks committed so far stay re-queued, and
// calling again re-queues the rest (what is no longer dead or cancelled is not touched).
// `after_chunk` (optional) runs on the caller's thread after each committed chunk with the rows
// that chunk re-queued (the API wakes the dispatcher so the drain starts at once).
Result<int> RecoverInChunks(Store& store, TenantId tenant, SubscriptionId sub, UnixMs since,
                            UnixMs now, int chunk_rows = kRecoverChunkRows,
                            const std::function<void(int)>& after_chunk = {});

}  // namespace outbound::store
