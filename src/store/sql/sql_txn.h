// Internal to store/: the Txn of both backends, written once over sql::Conn. The same class serves
// writer connections and readers (a write on a reader fails: its transaction is read-only). The
// caller (SqliteStore, PgStore) opens and ends the transaction around the callback.
// The SQL is split by area: tenants.cpp (tenants, keys, clients), directory.cpp (customers,
// locations, contacts, targets), events.cpp (events, idempotency), subscriptions.cpp,
// deliveries.cpp (fan-out rows, claims, leases, outcomes, the delivery log).
//
// Thread-safety: none; used by the one thread that holds its connection.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/delivery_counters.h"
#include "store/internal/sealing.h"
#include "store/sql/conn.h"
#include "store/sql/payload_codec.h"
#include "store/store.h"

namespace outbound::store::sql {

// The writer transaction's per-tenant fan-out lists (SqlTxn::EnableFanoutCache).
struct FanoutCache {
  std::unordered_map<std::int64_t, std::vector<std::pair<Subscription, Client>>> by_tenant;
  // The open transaction changed subscriptions or clients: read fresh and remember nothing
  // until it ends (what it reads may still be rolled back).
  bool tainted = false;
  // Set while a statement runs that changes only columns fan-out never reads (a subscription's
  // health: last_success_at, failing_since, failing_attempts): its changes keep the lists.
  bool neutral = false;
  bool per_transaction = false;  // EnableFanoutCache(true): emptied when a transaction ends
};
inline constexpr std::size_t kFanoutCacheTenants = 4096;  // then it starts over

// The writer transaction's directory records as events snapshot them
// (SqlTxn::EnableDirectoryCache), by (tenant, id); an absent record is remembered as nullopt.
// `targets`: the targets that MarkTarget read (with their external ids; only found ones), whose
// status and updated_at MarkTarget sets anew at every use (issue 8, a publish's target read).
struct DirectoryCache {
  using Key = std::pair<std::int64_t, std::int64_t>;
  std::map<Key, std::optional<core::CustomerSnapshot>> customers;
  std::map<Key, std::optional<core::LocationSnapshot>> locations;
  std::map<Key, std::optional<core::ContactSnapshot>> contacts;
  std::map<Key, Target> targets;
  // SQLite: a target's newest event (targets.last_event_row and that event's id; row 0: none), as
  // InsertLinkedEvents read or left it (issue 8: a read per target and batch). Dropped with the
  // rest, and also when any event is deleted (SqlTxn::EventsDeleted), a task is undone to its
  // savepoint (TaskUndone) or InsertEvent moves the head itself.
  struct Head {
    std::int64_t row = 0;
    std::string event_id;
  };
  std::map<Key, Head> heads;
  // As FanoutCache::tainted: the open transaction changed the directory.
  bool tainted = false;
  // Set while a statement runs that changes only columns of `targets` that are not read from
  // `targets` here (status, updated_at, last_event_row): its changes keep the cache
  // (SqlTxn::TargetsChanged).
  bool targets_neutral = false;

  std::size_t Size() const {
    return customers.size() + locations.size() + contacts.size() + targets.size() + heads.size();
  }
  void Clear() {
    customers.clear();
    locations.clear();
    contacts.clear();
    targets.clear();
    heads.clear();
  }
};
inline constexpr std::size_t kDirectoryCacheEntries = 4096;  // then it starts over

// Sets a cache's flag (`neutral`, `targets_neutral`) for its lifetime, when there is the cache:
// around statements whose changes the cache may keep (FanoutCache::neutral: a subscription's
// health columns; DirectoryCache::targets_neutral: a target's status, updated_at or
// last_event_row).
class FlagWhile {
 public:
  explicit FlagWhile(bool* flag) : flag_(flag) {
    if (flag_ != nullptr) *flag_ = true;
  }
  ~FlagWhile() {
    if (flag_ != nullptr) *flag_ = false;
  }
  FlagWhile(const FlagWhile&) = delete;
  FlagWhile& operator=(const FlagWhile&) = delete;

 private:
  bool* flag_;
};

// What InsertEvent (or InsertEvents) wrote last: InsertDeliveries, which follows it for the
// same events, need not read them back.
struct EventFacts {
  std::string event_id;
  std::int64_t tenant = 0;
  std::string event_type;
  UnixMs occurred_at = 0;
  UnixMs accepted_at = 0;
  std::optional<std::int64_t> target_id;
};

// How the database is shared.
enum class Sharing {
  kExclusive,  // one process owns the database (SQLite): no subscription ownership rows
  kShared,     // any number of processes (PostgreSQL): subscriptions are owned (store.h)
};

class SqlTxn final : public Txn {
 public:
  // conn and secrets must outlive the Txn.
  SqlTxn(Conn& conn, const internal::Sealer& secrets, Sharing sharing)
      : c_(conn), secrets_(secrets), shared_(sharing == Sharing::kShared) {}

  Result<Tenant> CreateTenant(std::string_view name, UnixMs now) override;
  Result<std::optional<Tenant>> GetTenant(TenantId tenant) override;
  Result<ApiKey> CreateApiKey(const ApiKey& key) override;
  Result<std::optional<ApiKey>> FindApiKeyByHash(std::string_view token_hash) override;
  Result<PageResult<ApiKey>> ListApiKeys(TenantId tenant, const Page& page) override;
  Result<bool> RevokeApiKey(TenantId tenant, KeyId key, UnixMs now) override;

  Result<Client> CreateClient(const Client& client) override;
  Result<std::optional<Client>> GetClient(TenantId tenant, ClientId id) override;
  Result<PageResult<Client>> ListClients(TenantId tenant, const Page& page) override;
  Result<bool> UpdateClient(const Client& client) override;
  Result<bool> DeleteClient(TenantId tenant, ClientId id, UnixMs now) override;

  Status UpsertCustomer(const Customer& c) override;
  Status UpsertLocation(const Location& l) override;
  Status UpsertContact(const Contact& c) override;
  Result<std::optional<Customer>> GetCustomer(TenantId tenant, std::int64_t id) override;
  Result<std::optional<Location>> GetLocation(TenantId tenant, std::int64_t id) override;
  Result<std::optional<Contact>> GetContact(TenantId tenant, std::int64_t id) override;
  Result<bool> DeleteEntity(TenantId tenant, EntityKind kind, std::int64_t id) override;
  Result<std::optional<std::int64_t>> FindByExternalId(TenantId tenant, EntityKind kind,
                                                       std::string_view source_system,
                                                       std::string_view external_id) override;

  Result<PageResult<Customer>> ListCustomers(TenantId tenant, const Page& page) override;
  Result<PageResult<Location>> ListLocations(TenantId tenant, const Page& page) override;
  Result<PageResult<Contact>> ListContacts(TenantId tenant, const Page& page) override;
  Result<DirectoryReferences> CountReferences(TenantId tenant, EntityKind kind,
                                              std::int64_t id) override;

  Result<Target> InsertTarget(const Target& t) override;
  Status UpdateTarget(const Target& t) override;
  Result<std::optional<Target>> GetTarget(TenantId tenant, TargetId id) override;
  Result<std::optional<Target>> FindTargetByExternalId(TenantId tenant,
                                                       std::string_view source_system,
                                                       std::string_view external_id) override;
  Result<PageResult<Target>> ListTargets(TenantId tenant, const TargetFilter& filter,
                                         const Page& page) override;
  Result<core::TargetSnapshot> LoadSnapshot(TenantId tenant, const Target& target) override;

  Status InsertEvent(const StoredEvent& e) override;
  Status InsertEvents(const std::vector<StoredEvent>& events) override;
  Result<std::optional<Target>> MarkTarget(TenantId tenant, TargetId id, std::string_view status,
                                           UnixMs now) override;
  Result<std::vector<std::optional<MarkedTarget>>> MarkTargets(TenantId tenant,
                                                               const std::vector<TargetMark>& marks,
                                                               UnixMs now) override;
  Result<bool> SetTargetStatus(TenantId tenant, TargetId id, std::string_view status,
                               UnixMs now) override;
  Result<std::optional<StoredEvent>> GetEvent(TenantId tenant, std::string_view event_id) override;
  Result<PageResult<StoredEvent>> ListEvents(TenantId tenant, const EventFilter& filter,
                                             const Page& page) override;
  Result<std::optional<IdempotencyRecord>> GetIdempotency(TenantId tenant,
                                                          std::string_view key) override;
  Result<std::optional<IdempotencyRecord>> PutIdempotencyIfAbsent(
      TenantId tenant, std::string_view key, const IdempotencyRecord& rec) override;

  Result<Subscription> CreateSubscription(const Subscription& s) override;
  Result<std::optional<Subscription>> GetSubscription(TenantId tenant, SubscriptionId id) override;
  Result<PageResult<Subscription>> ListSubscriptions(TenantId tenant,
                                                     std::optional<ClientId> client,
                                                     const Page& page) override;
  Status UpdateSubscription(const Subscription& s) override;
  Result<bool> DeleteSubscription(TenantId tenant, SubscriptionId id) override;
  Result<std::vector<Backlog>> GetBacklogs(TenantId tenant,
                                           const std::vector<SubscriptionId>& subs) override;
  Result<std::vector<std::pair<Subscription, Client>>> ListFanoutTargets(TenantId tenant) override;

  Result<std::vector<DeliveryJob>> InsertDeliveries(const std::vector<NewDelivery>& rows,
                                                    std::string_view owner, UnixMs now,
                                                    UnixMs lease_until) override;
  void PrepareDeliveries(const std::vector<NewDelivery>& rows) override;
  Result<std::vector<DeliveryJob>> ClaimDue(std::string_view owner, UnixMs now, UnixMs lease_until,
                                            int limit) override;
  Result<std::vector<DeliveryJob>> ClaimDueAsStored(std::string_view owner, UnixMs now,
                                                    UnixMs lease_until, int limit) override;
  Result<bool> RenewLease(std::string_view owner, UnixMs now, UnixMs lease_until) override;
  Result<int> ShedSubscriptions(std::string_view owner, UnixMs now,
                                const std::vector<SubscriptionId>& idle) override;
  Result<int> ReleaseLeases(std::string_view owner, const std::vector<DeliveryRowId>& ids) override;
  Result<int> DeferLeases(std::string_view owner, const std::vector<DeliveryRowId>& ids,
                          UnixMs not_before) override;
  Status ReleaseOwner(std::string_view owner) override;
  Result<int> ReleaseUnheld(std::string_view owner, UnixMs leased_until_at_most,
                            const std::vector<DeliveryRowId>& held) override;
  Result<std::vector<std::size_t>> RecordOutcomes(std::string_view owner,
                                                  const std::vector<Outcome>& outcomes) override;
  Result<std::optional<UnixMs>> NextDueAt() override;
  Result<ConfigChanges> ChangedTenants(std::int64_t since) override;
  Result<std::optional<DeliveryStatus>> GetDeliveryStatus(DeliveryRowId id) override;
  Result<std::vector<DeliveryView>> GetDeliveries(TenantId tenant, std::string_view event_id,
                                                  std::optional<ClientId> client) override;
  Result<PageResult<AttemptRow>> ListAttempts(TenantId tenant, SubscriptionId sub,
                                              const AttemptFilter& filter,
                                              const Page& page) override;
  Result<Redelivered> Redeliver(TenantId tenant, std::string_view event_id,
                                std::optional<SubscriptionId> sub, std::optional<ClientId> client,
                                UnixMs now) override;
  Result<int> RecoverDeliveries(TenantId tenant, SubscriptionId sub, UnixMs since,
                                UnixMs now) override;
  Result<RecoverStep> RecoverDeliveriesStep(TenantId tenant, SubscriptionId sub, UnixMs since,
                                            UnixMs now, RecoverCursor cursor, int limit) override;
  Result<bool> DisableSubscription(TenantId tenant, SubscriptionId id, std::string_view reason,
                                   UnixMs now) override;
  Result<FailureStreak> GetFailureStreak(TenantId tenant, SubscriptionId id) override;
  Result<std::optional<std::int64_t>> ResealSecrets(std::int64_t after, int limit) override;
  Result<std::optional<Subscription>> GetOperationsWebhook(TenantId tenant) override;
  Result<std::pair<Subscription, bool>> PutOperationsWebhook(TenantId tenant, std::string_view url,
                                                             std::string_view secret,
                                                             UnixMs now) override;
  Result<bool> DeleteOperationsWebhook(TenantId tenant) override;
  Result<std::optional<DeliveryJob>> InsertOperationalEvent(
      TenantId tenant, std::string_view event_id, std::string_view event_type,
      std::string_view data_json, UnixMs now, std::string_view owner, UnixMs lease_until) override;
  // surfaces.cpp
  Status InsertTestEvent(TenantId tenant, SubscriptionId sub, std::string_view event_id,
                         std::string_view event_type, std::string_view data_json,
                         UnixMs now) override;
  Result<std::vector<StatsBucket>> AttemptStats(TenantId tenant, SubscriptionId sub,
                                                const StatsWindow& window) override;

  // portal.cpp
  Status CreatePortalLink(TenantId tenant, ClientId client, std::string_view link_hash, UnixMs now,
                          UnixMs expires_at) override;
  Result<PortalRedeemResult> RedeemPortalLink(std::string_view link_hash,
                                              std::string_view session_hash, UnixMs now,
                                              UnixMs session_expires_at) override;
  Result<std::optional<PortalSession>> FindPortalSession(std::string_view session_hash,
                                                         UnixMs now) override;
  Result<bool> DeletePortalSession(std::string_view session_hash) override;

  // Retention and gauges (retention.cpp).
  Result<PurgeResult> PurgeEvents(std::string_view after, UnixMs accepted_before,
                                  int limit) override;
  Result<int> PurgeIdempotencyKeys(UnixMs created_before, int limit) override;
  Result<StoreGauges> ReadGauges(UnixMs now) override;

  // What the task run since the last call did, for the metrics (store/delivery_counters.h): the
  // backend takes it before and after each task's run and publishes it once the task committed.
  TxnTally TakeTally() { return std::exchange(tally_, TxnTally{}); }

  // Writer connections of a shared database (PostgreSQL): rows read to be written back whole
  // (a subscription, a target) are locked with FOR UPDATE, so that a concurrent change by
  // another process is waited for instead of undone. Readers' transactions are read-only.
  void LockRowsReadForUpdate() { lock_reads_ = true; }

  // The writer's transaction only: keep each tenant's fan-out list between events instead of a
  // join and two decryptions per subscription per event. Correct as long as the store calls
  // FanoutTablesChanged() for every change to a row of `subscriptions` or `clients` (SQLite's
  // update hook) and TransactionEnded() when the writer's transaction commits or rolls back.
  // `per_transaction`: the lists are kept only until the transaction ends, for a store whose
  // tables other processes change (PostgreSQL): the tasks of one batch then read the list once.
  // Such a store calls FanoutTablesChanged() from the statements that change the tables
  // (CreateSubscription, UpdateClient, ...: SqlTxn does) instead of a hook.
  void EnableFanoutCache(bool per_transaction = false);
  void FanoutTablesChanged();
  // As FanoutTablesChanged, from the update hook (SQLite), for a change of the subscription with
  // row id `rowid`, whose held rows the next claim looks at (ReleaseHeldRows); a client's change
  // is FanoutTablesChanged alone (a client holds no rows). The hook reports every change of a row
  // of these tables (none is made by REPLACE or a DELETE without WHERE, which it would not
  // report).
  void SubscriptionChanged(std::int64_t rowid);
  void TransactionEnded(bool committed);
  // The writer's next task starts (SQLite's RunBatch): TaskUndone undoes what it does.
  void TaskBegins() { release_passes_at_task_ = release_passes_; }
  // A task was rolled back to its savepoint (the transaction goes on): what this transaction
  // learnt of leases may have been undone with it, and so may a release pass it made.
  void TaskUndone() {
    lease_facts_ = {};
    marked_.reset();
    if (directory_cache_) directory_cache_->heads.clear();  // the task may have moved some
    rows_held_back_.clear();
    if (release_passes_ != release_passes_at_task_) ReleaseUndone();
    RecheckUndone();
  }
  // PostgreSQL's RunBatch, after a COMMIT that succeeded: the heads RecheckHeads looked at again
  // in it are done with (otherwise they are looked at again: TransactionEnded, TaskUndone).
  void Committed() {
    recheck_sent_.clear();
    recheck_targets_sent_.clear();
  }
  // PostgreSQL: whether heads are left for this connection's next claim to look at again
  // (RecheckHeads). A process that stops after its last outcomes (a dispatcher's drain records
  // outcomes after its last claim) has no next claim, so each writer connection's last
  // transaction looks at them before the store closes (pg_store.cpp, LookAgainAtClose).
  bool HeadsLeftToLookAt() const {
    return !recheck_next_.empty() || !recheck_pending_.empty() || !recheck_sent_.empty() ||
           !recheck_targets_next_.empty() || !recheck_targets_pending_.empty() ||
           !recheck_targets_sent_.empty();
  }
  // Looks at them, in a transaction begun after the one that left them ended.
  Status LookAtHeadsLeft() { return RecheckHeads(); }
  // PostgreSQL: whether a claim found deliveries big and without statistics (ClaimDueAsStored),
  // which the writer then analyzes after the commit; cleared by the call.
  bool TakeAnalyzeWanted() { return std::exchange(analyze_wanted_, false); }
  // The writer's transaction only: keep the customers, locations and contacts that LoadSnapshot
  // read (six statements per publish, issue 8), and the targets MarkTarget read. Correct as long
  // as the store calls DirectoryTablesChanged() for every change to a row of `customers`,
  // `locations` or `contacts` and TargetsChanged() for one of `targets` (SQLite's update hook;
  // `external_ids` is WITHOUT ROWID, which the hook does not report, so ReplaceExternalIds, its
  // only writer, calls it itself) and TransactionEnded().
  void EnableDirectoryCache();
  void DirectoryTablesChanged();
  // From SQLite's update hook for every change to a row of `targets`: DirectoryTablesChanged,
  // unless the statement changes only the columns MarkTarget sets itself (targets_neutral).
  void TargetsChanged();
  // The flag a statement that changes only a target's status, updated_at or last_event_row is
  // run under (FlagWhile): nullptr without the cache.
  bool* TargetsNeutral() { return directory_cache_ ? &directory_cache_->targets_neutral : nullptr; }
  // From SQLite's update hook for every row deleted from `events`: a target's newest event may be
  // gone (DirectoryCache::heads).
  void EventsDeleted() {
    if (directory_cache_) directory_cache_->heads.clear();
  }

 private:
  // SQLite: a rollback undid a release pass: the next claim makes the whole pass
  // (release_wanted_).
  void ReleaseUndone() {
    release_wanted_ = true;
    release_subs_.clear();
  }
  Status CheckExternalIds(TenantId tenant, EntityKind kind, std::int64_t entity,
                          const ExternalIds& ids);
  Status ReplaceExternalIds(TenantId tenant, EntityKind kind, std::int64_t entity,
                            const ExternalIds& ids);
  Result<ExternalIds> LoadExternalIds(TenantId tenant, EntityKind kind, std::int64_t entity);
  // A page of directory records (directory.cpp, its only user).
  template <class T, class Read>
  Result<PageResult<T>> ListRecords(TenantId tenant, EntityKind kind, const char* sql,
                                    const Page& page, Read read);
  Result<Subscription> ReadSubscription(const Stmt& s, int first_col);
  Status CancelOpenDeliveries(SubscriptionId sub);
  Status MarkSubscriptionDeleted(SubscriptionId sub);
  // Leases: the owner's row (created or extended), and the take-back of expired owners.
  // true when the owner may lease (its lease was not taken back since its last renewal).
  Result<bool> ExtendOwner(std::string_view owner, UnixMs lease_until);
  // As ExtendOwner, but only reads an existing row (the fan-out path).
  Result<bool> OwnerActive(std::string_view owner, UnixMs lease_until);
  Status ReapExpiredOwners(UnixMs now);
  Status ReleaseOwnerRows(std::string_view owner);
  // Shared databases: takes the unowned ones of `subs` for `owner`; returns those it owns.
  Result<std::vector<std::int64_t>> OwnSubscriptions(std::string_view owner,
                                                     std::vector<std::int64_t> subs);
  // Shared databases: of freshly claimed jobs, keeps those of subscriptions the owner has, or
  // takes (up to a fair share of the subscriptions with work); gives the rest back.
  Result<std::vector<DeliveryJob>> KeepFairShare(std::string_view owner, UnixMs now,
                                                 std::vector<DeliveryJob> jobs);
  // Held rows (SQLite's migration 15, PostgreSQL's 11; `held` is a column of deliveries, not the
  // dispatcher's held leases of ReleaseUnheld): the claim lets go of up to `budget` held rows of
  // subscriptions no longer paused (or ordered), and holds up to `budget` rows of paused ones, or
  // held back by ordering, that are due by `bound` (as far as the claim walked deliveries_due);
  // `ids`: rows just inserted held for a pause; the outcomes `applied` (not stale, not of test
  // deliveries): each one's target's next row is let go if it was held back.
  Status ReleaseHeldRows(int budget);
  Status HoldWaitingRows(UnixMs bound, int budget);
  // `closed_in_order`: PostgreSQL's, the rows of `applied` closed that carry their target.
  Status ReleaseNextInOrder(const std::vector<const Outcome*>& applied,
                            const std::vector<std::int64_t>& closed_in_order);
  Status ReleaseHeadOf(DeliveryRowId row);
  Status SweepHeldBack(int n);
  Status SweepHeldBackInOne(int n);
  // PostgreSQL: the claim's holding of rows held back by ordering, and its release of those of
  // subscriptions no longer ordered (deliveries.cpp).
  Status HoldBlockedRows(UnixMs now, int budget);
  // PostgreSQL: whether any open row carries its target's order (`target_id` set: the rows of
  // deliveries_ordered, the only ones HoldBlockedRows can hold).
  Result<bool> AnyOpenOrderedRow();
  Status ReleaseHeadsOf(const std::vector<std::int64_t>& rows);
  Status RecheckHeads();
  Status ReleaseOrderGone(int budget);
  Status SetHeld(DeliveryRowId row, std::int64_t held);
  // Subscriptions owned: by `owner`, by anyone; processes whose lease is live at `now`.
  Result<std::int64_t> CountOwned(std::optional<std::string_view> owner);
  Result<std::int64_t> CountLiveOwners(UnixMs now);
  // An event that GET /v1/events never lists, without a target, accepted and occurred `now`:
  // an operational one (CONTRACT §11) or a test webhook (§13).
  enum class UnlistedEvent { kOperational, kTest };
  Status InsertUnlistedEvent(TenantId tenant, std::string_view event_id,
                             std::string_view event_type, std::string_view data_json, UnixMs now,
                             UnlistedEvent kind);
  // Events and their targets' chains (SQLite, migration 13; events.cpp).
  Status InsertLinkedEvents(const std::vector<StoredEvent>& events);
  Status InsertUnlinkedEvents(const std::vector<StoredEvent>& events);
  Status SpliceEvent(std::int64_t tenant, std::int64_t target, std::int64_t row,
                     std::string_view event_id);
  Status UnlinkChain(std::int64_t tenant, std::int64_t target, std::int64_t row);
  // A target's row and its newest event, when that is an event of the target.
  struct ChainHead {
    bool target = false;               // the target has a row
    std::int64_t row = 0;              // its newest event; 0: none
    std::string event_id;              // that event's id
    std::optional<std::int64_t> prev;  // the row that event links to
  };
  Result<ChainHead> ReadChainHead(std::int64_t tenant, std::int64_t target);
  Result<PageResult<StoredEvent>> ListTargetEvents(TenantId tenant, const EventFilter& filter,
                                                   const Page& page);
  // Fills event_type, occurred_at and target_id of claimed jobs (SQLite: PostgreSQL's claim
  // returns them).
  Status FillEventFacts(std::vector<DeliveryJob>& jobs);
  Status LoadDirectoryInOne(TenantId tenant, const Target& target, core::TargetSnapshot& snap);
  // Stores one rendering of an event's data (SQLite migration 8): the deliveries that send it
  // refer to it by the id returned. Removed with the event (PurgeEvents).
  Result<std::int64_t> InsertPayload(std::string_view event_id, std::string_view data_json);

  // `sql` with " FOR UPDATE" when rows read are locked (LockRowsReadForUpdate).
  std::string ForUpdate(const char* sql) const {
    return lock_reads_ ? std::string(sql) + " FOR UPDATE" : std::string(sql);
  }

  Conn& c_;
  const internal::Sealer& secrets_;
  const bool shared_;
  bool lock_reads_ = false;
  std::optional<FanoutCache> fanout_cache_;
  std::optional<DirectoryCache> directory_cache_;
  std::unordered_map<std::string, EventFacts> last_events_;  // by event id
  // What the open transaction read or wrote of its owner's leases (cleared when it ends or a
  // task is undone): every publish asks whether the owner may lease and which subscriptions it
  // owns; on PostgreSQL each answer was a round trip per publish, the same for all tasks of a
  // batch. A take-back by another process between two tasks is the race a single read
  // already had (OwnerActive): the owner learns of it at its next renewal.
  struct LeaseFacts {
    std::string owner;
    std::optional<bool> active;         // OwnerActive / ExtendOwner
    std::map<std::int64_t, bool> owns;  // subscription → owned by `owner` (OwnSubscriptions)
  };
  LeaseFacts lease_facts_;
  // PostgreSQL: the directory records MarkTarget read with its target, for the LoadSnapshot of
  // that target that follows it in a publish (taken by it; dropped when the task is undone, the
  // transaction ends or the directory changes).
  struct MarkedSnapshot {
    std::int64_t tenant = 0;
    std::int64_t target = 0;
    std::int64_t customer = 0;
    std::optional<std::int64_t> location;
    std::optional<std::int64_t> contact;
    core::TargetSnapshot snapshot;  // customer, location and contact only
  };
  std::optional<MarkedSnapshot> marked_;
  // SQLite: which subscriptions have rows held back by ordering (held = 2), as
  // ReleaseNextInOrder found them in the open transaction: asked once per subscription and
  // transaction instead of once per outcome (about a microsecond and a half of the writer per K=1
  // event), and an outcome of a subscription that holds nothing back costs nothing more. Only
  // this transaction can hold rows meanwhile (SQLite has one writer), and HoldWaitingRows forgets
  // the answers when it does; cleared when the transaction ends or a task is undone. SQLite's
  // alone: PostgreSQL's outcomes look for their heads without asking (ReleaseNextInOrder).
  std::map<std::int64_t, bool> rows_held_back_;
  // PostgreSQL: rows this transaction held back or closed (RecordOutcomes) of ordered
  // subscriptions, whose targets' heads the connection's next claim looks at again, in a
  // transaction begun after this one ended (pending from TransactionEnded on; RecheckHeads).
  // RecheckHeads sends the pending ones and keeps them as sent until the COMMIT succeeds
  // (Committed); a rollback of its task or transaction makes them pending again.
  std::vector<std::int64_t> recheck_next_;  // rows closed
  std::vector<std::int64_t> recheck_pending_;
  std::vector<std::int64_t> recheck_sent_;
  std::set<std::pair<std::int64_t, std::int64_t>> recheck_targets_next_;  // targets held behind
  std::set<std::pair<std::int64_t, std::int64_t>> recheck_targets_pending_;
  std::set<std::pair<std::int64_t, std::int64_t>> recheck_targets_sent_;
  // What was sent is pending again (its statement may have been undone).
  void RecheckUndone() {
    recheck_pending_.insert(recheck_pending_.end(), recheck_sent_.begin(), recheck_sent_.end());
    recheck_targets_pending_.insert(recheck_targets_sent_.begin(), recheck_targets_sent_.end());
    recheck_sent_.clear();
    recheck_targets_sent_.clear();
  }
  bool analyze_wanted_ = false;  // TakeAnalyzeWanted
  // Where SweepHeldBack stopped, the last (subscription_id, target_id) it looked at in
  // deliveries_ordered's order; kept across transactions (SQLite: only the writer's SqlTxn
  // claims; PostgreSQL: each writer connection's SqlTxn sweeps on its own).
  std::optional<std::array<std::int64_t, 2>> held_back_cursor_;
  // SQLite: whether the claim's release pass (ReleaseHeldRows) must look at every subscription
  // with held rows. A held row's reason goes only through a change of its subscription
  // (unpaused, made unordered, enabled, disabled, deleted), which the update hook reports with
  // its row id (SubscriptionChanged: release_subs_); the whole pass is wanted at first (the file
  // just opened), after a rollback that undid a release pass (ReleaseUndone), while a whole pass
  // ran out of its budget or failed, and after more changed subscriptions than kReleaseSubsAtMost
  // since the last claim. Without it, every claim probed each subscription with held rows:
  // 10,000 paused subscriptions cost a claim about 8 ms. Kept across transactions.
  bool release_wanted_ = true;
  // SQLite: the subscriptions changed since the last pass, whose held rows the next claim looks
  // at (a read of each one's flags, then an index descent per kind of held row whose reason is
  // gone) when no whole pass is wanted. Kept across transactions.
  std::set<std::int64_t> release_subs_;
  static constexpr std::size_t kReleaseSubsAtMost = 256;
  // SQLite: release passes made (ReleaseHeldRows past its first check), and as many as when the
  // writer's transaction and its task began: a rollback wants the whole pass again only when it
  // undid one (an idempotent replay or a refused test webhook rolls back often, and a whole pass
  // costs about 8 ms at 10,000 paused subscriptions).
  std::uint64_t release_passes_ = 0;
  std::uint64_t release_passes_at_transaction_ = 0;
  std::uint64_t release_passes_at_task_ = 0;
  // PostgreSQL: payload ids drawn from the sequence ahead of need (deliveries.cpp,
  // InsertPayloadsWithIds); kept across transactions (sequence values are never rolled back).
  std::vector<std::int64_t> payload_ids_;
  // SQLite: the renderings of the rows PrepareDeliveries was told of last, being packed on the
  // helper thread; InsertDeliveries takes them when its payloads are those texts (else packs
  // its own). At most one batch's worth; replaced by the next PrepareDeliveries.
  std::unique_ptr<PackAhead> pack_ahead_;
  // The facts of `owner` (those of another owner are dropped).
  LeaseFacts& LeaseFactsOf(std::string_view owner) {
    if (lease_facts_.owner != owner) lease_facts_ = LeaseFacts{std::string(owner), {}, {}};
    return lease_facts_;
  }
  TxnTally tally_;  // TakeTally
};

}  // namespace outbound::store::sql
