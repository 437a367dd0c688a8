// One event's hot path in the store, for the tests that hold its cost independent of history
// (issue 8): SqliteStore.HotPathCostDoesNotGrowWithHistory and
// PostgresStore.HotPathPlansDoNotScanBigTables run the same statements, seeded the same way.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/ids.h"
#include "store/store.h"
#include "store/testing/conformance.h"

namespace outbound::store::testing {

// Tenant "a" and its client "c" (source system "s"), in `tx`.
inline Client CreateTenantAndClient(Txn& tx, TenantId& tenant) {
  tenant = tx.CreateTenant("a", kT0)->id;
  Client c;
  c.tenant = tenant;
  c.name = "c";
  c.source_system = "s";
  return tx.CreateClient(c).value();
}

// A subscription of client `c` to every event type, to create.
inline Subscription ToEveryEvent(const Client& c) {
  Subscription s;
  s.tenant = c.tenant;
  s.client = c.id;
  s.url = "https://receiver.example/hook";
  s.event_types = {"*"};
  s.secret = "whsec_dGVzdA==";
  return s;
}

// The targets the hot path's events are about: ids 1..kHotPathTargets, which in a new store are
// the rows of the first tenant's targets (CreateOneSubscription), as a publish finds its
// target's row (and on SQLite links the event to the target's newest, migration 13). Another
// tenant's events are about targets without a row.
inline constexpr int kHotPathTargets = 10;

// A tenant, a client, kHotPathTargets targets and one subscription to every event type
// (`ordered`: CONTRACT §6).
inline Status CreateOneSubscription(Store& store, TenantId& tenant, SubscriptionId& sub,
                                    bool ordered = false) {
  return store.Write([&](Txn& tx) -> Status {
    const Client c = CreateTenantAndClient(tx, tenant);
    Subscription s = ToEveryEvent(c);
    s.ordered = ordered;
    auto created = tx.CreateSubscription(s);
    if (!created) return core::Fail(created.error());
    sub = created->id;
    for (int i = 1; i <= kHotPathTargets; ++i) {
      const Target t = TargetRow(tenant, c.id, c.source_system, "T-" + std::to_string(i));
      if (auto target = tx.InsertTarget(t); !target) return core::Fail(target.error());
    }
    return {};
  });
}

// An event of the hot path's tests: appointment.started of `tenant`, occurred and accepted at
// `at`, with a fresh id.
inline StoredEvent HotPathEvent(core::UlidGenerator& ids, TenantId tenant, UnixMs at) {
  StoredEvent e;
  e.record.event_id = "evt_" + ids.Next(at);
  e.record.type = core::EventType::kAppointmentStarted;
  e.record.tenant = tenant;
  e.record.occurred_at = at;
  e.record.accepted_at = at;
  return e;
}

// Event `i` published in `tx` as fan-out hands it over (about target 1 + i % kHotPathTargets, at
// kT0 + i): its one delivery, to `sub`, leased to "me" until `far`. Fan-out knows the
// subscription is not ordered (no read of it here).
inline Result<DeliveryJob> PublishLeased(Txn& tx, core::UlidGenerator& ids, TenantId tenant,
                                         SubscriptionId sub, int i, UnixMs far) {
  StoredEvent e = HotPathEvent(ids, tenant, kT0 + i);
  e.record.target_id = 1 + i % kHotPathTargets;
  if (auto r = tx.InsertEvent(e); !r) return core::Fail(r.error());
  NewDelivery row{tenant, e.record.event_id, sub, "{}", kT0 + i};
  row.ordered = false;
  auto jobs = tx.InsertDeliveries({row}, "me", kT0 + i, far);
  if (!jobs) return core::Fail(jobs.error());
  if (jobs->size() != 1) return core::Fail(core::Error::Internal("not leased"));
  return jobs->front();
}

// Events first..first+n-1 in one write transaction, each as the hot path lives it: published
// (its delivery leased to "me"), attempted and failed; then the streak read, a claim, a lease
// renewal and a config poll. Each failed delivery waits until `far` (a backlog) or, when `due`,
// is due at once, so that the claim takes it and runs its whole path.
inline Status HotPathEvents(Store& store, core::UlidGenerator& ids, TenantId tenant,
                            SubscriptionId sub, int first, int n, bool due = false) {
  const UnixMs far = kT0 + 86'400'000;
  return store.Write([&](Txn& tx) -> Status {
    std::vector<Outcome> outcomes;
    for (int i = first; i < first + n; ++i) {
      auto job = PublishLeased(tx, ids, tenant, sub, i, far);
      if (!job) return core::Fail(job.error());
      Outcome o = FirstAttempt(ids, *job, kT0 + i, 503);
      o.attempt.error = "http_503";
      o.new_status = DeliveryStatus::kFailed;
      o.next_attempt_at = due ? kT0 + i : far;
      outcomes.push_back(std::move(o));
    }
    if (auto r = tx.RecordOutcomes("me", outcomes); !r) return core::Fail(r.error());
    if (auto r = tx.GetFailureStreak(tenant, sub); !r) return core::Fail(r.error());
    auto claimed = tx.ClaimDue("me", kT0 + first + n, far, 100);
    if (!claimed) return core::Fail(claimed.error());
    if (due && claimed->empty()) return core::Fail(core::Error::Internal("nothing claimed"));
    if (auto r = tx.RenewLease("me", kT0 + first + n, far); !r) return core::Fail(r.error());
    if (auto r = tx.ChangedTenants(0); !r) return core::Fail(r.error());
    return {};
  });
}

// A subscription's history as most of a deliveries table is: events first..first+n-1, each
// delivered at its first attempt (`succeeded`), but every `dead_every`-th one (none if 0) `dead`
// after a 503 instead, waiting to be recovered. For the tests of the statements that read one
// subscription's rows through deliveries_subscription, which holds all but the succeeded ones
// (SqliteStore.SubscriptionStatementsUseTheirIndex,
// PostgresStore.SubscriptionPlansDoNotScanBigTables).
inline Status DeliveredHistory(Store& store, core::UlidGenerator& ids, TenantId tenant,
                               SubscriptionId sub, int first, int n, int dead_every) {
  return store.Write([&](Txn& tx) -> Status {
    std::vector<Outcome> outcomes;
    for (int i = first; i < first + n; ++i) {
      auto job = PublishLeased(tx, ids, tenant, sub, i, kT0 + 86'400'000);
      if (!job) return core::Fail(job.error());
      const bool dead = dead_every > 0 && i % dead_every == 0;
      Outcome o = FirstAttempt(ids, *job, kT0 + i, dead ? 503 : 200);
      o.new_status = dead ? DeliveryStatus::kDead : DeliveryStatus::kSucceeded;
      outcomes.push_back(std::move(o));
    }
    if (auto r = tx.RecordOutcomes("me", outcomes); !r) return core::Fail(r.error());
    return {};
  });
}

// The statements that read one subscription's rows through deliveries_subscription, run once in
// one write transaction, rolled back at its end (the error kRolledBack): its backlog read, its
// dead rows recovered, the subscription made ordered (its open rows get their events' order)
// and then disabled (its open rows cancelled).
inline constexpr const char* kRolledBack = "rolled back on purpose";
inline Status SubscriptionStatements(Store& store, TenantId tenant, SubscriptionId sub,
                                     UnixMs now) {
  return store.Write([&](Txn& tx) -> Status {
    if (auto r = tx.GetBacklogs(tenant, {sub}); !r) return core::Fail(r.error());
    auto recovered = tx.RecoverDeliveries(tenant, sub, kT0, now);
    if (!recovered) return core::Fail(recovered.error());
    if (*recovered == 0) return core::Fail(core::Error::Internal("nothing recovered"));
    auto s = tx.GetSubscription(tenant, sub);
    if (!s) return core::Fail(s.error());
    if (!*s) return core::Fail(core::Error::Internal("no subscription"));
    Subscription changed = **s;
    changed.ordered = true;
    if (auto r = tx.UpdateSubscription(changed); !r) return r;
    changed.enabled = false;
    if (auto r = tx.UpdateSubscription(changed); !r) return r;
    return core::Fail(core::Error::Internal(kRolledBack));
  });
}

// An ordered subscription of a new tenant's client (CreateTenantAndClient), to every event type.
inline Status CreateOrderedSubscription(Store& store, TenantId& tenant, SubscriptionId& sub) {
  return CreateOneSubscription(store, tenant, sub, /*ordered=*/true);
}

// An ordered subscription's backlog on two targets, for the tests of the claim's ordered check
// (SqliteStore.OrderedClaimCostDoesNotGrowWithTheBacklog,
// PostgresStore.OrderedClaimReadsNoBacklogPerCandidate): events first..first+n-1, about targets 1
// and 2 in turn, each accepted after the ones before it but occurred before them (an ERP that
// sends a target's history newest first: the heads are the last accepted); each delivery waits
// unleased, due at kT0, so that every one is a candidate of a claim and all but the two heads are
// blocked.
inline Status OrderedBacklog(Store& store, core::UlidGenerator& ids, TenantId tenant,
                             SubscriptionId sub, int first, int n) {
  return store.Write([&](Txn& tx) -> Status {
    for (int i = first; i < first + n; ++i) {
      StoredEvent e = HotPathEvent(ids, tenant, kT0 + i);
      e.record.target_id = 1 + i % 2;
      e.record.occurred_at = kT0 - i;
      if (auto r = tx.InsertEvent(e); !r) return r;
      auto jobs = tx.InsertDeliveries({NewDelivery{tenant, e.record.event_id, sub, "{}", kT0}}, "",
                                      kT0, kT0);
      if (!jobs) return core::Fail(jobs.error());
    }
    return {};
  });
}

// Event `i` about target `target` (accepted and occurred at kT0 + i) and its one delivery to
// `sub`, due at kT0: left unleased, as rows given back are, or (`leased`) leased to "me" until
// kT0 + 600,000 as fan-out hands it over. Its event id, and its job when leased. For the tests
// of rows held back by ordering (SQLite migration 15).
inline Result<std::pair<std::string, DeliveryJob>> WaitingRow(Txn& tx, core::UlidGenerator& ids,
                                                              TenantId tenant, SubscriptionId sub,
                                                              int i, std::int64_t target,
                                                              bool leased = false) {
  StoredEvent e = HotPathEvent(ids, tenant, kT0 + i);
  e.record.target_id = target;
  if (auto r = tx.InsertEvent(e); !r) return core::Fail(r.error());
  auto jobs = tx.InsertDeliveries({NewDelivery{tenant, e.record.event_id, sub, "{}", kT0}},
                                  leased ? "me" : "", kT0, leased ? kT0 + 600'000 : 0);
  if (!jobs) return core::Fail(jobs.error());
  if (leased && jobs->size() != 1) return core::Fail(core::Error::Internal("not leased"));
  return std::make_pair(e.record.event_id, leased ? jobs->front() : DeliveryJob{});
}

// Events first..first+n-1 about targets 1..`targets` in turn, occurred in the order accepted,
// each with its delivery to `sub` waiting unleased and due at once (WaitingRow); their ids
// appended to `events`. For the tests of rows held back by ordering on both stores.
inline Status WaitingRows(Store& store, core::UlidGenerator& ids, TenantId tenant,
                          SubscriptionId sub, int first, int n, std::vector<std::string>& events,
                          int targets = 2) {
  return store.Write([&](Txn& tx) -> Status {
    for (int i = first; i < first + n; ++i) {
      auto row = WaitingRow(tx, ids, tenant, sub, i, 1 + i % targets);
      if (!row) return core::Fail(row.error());
      events.push_back(row->first);
    }
    return {};
  });
}

// Makes `sub` ordered or not (PATCH ordered).
inline Status SetOrdered(Store& store, TenantId tenant, SubscriptionId sub, bool ordered) {
  return store.Write([&](Txn& tx) -> Status {
    auto s = tx.GetSubscription(tenant, sub);
    if (!s) return core::Fail(s.error());
    if (!*s) return core::Fail(core::Error::Internal("no such subscription"));
    (*s)->ordered = ordered;
    return tx.UpdateSubscription(**s);
  });
}

// A claim by "me" at `now`, committed, of at most 10 rows: their event ids.
inline Result<std::vector<std::string>> ClaimedEvents(Store& store, UnixMs now) {
  std::vector<std::string> got;
  Status st = store.Write([&](Txn& tx) -> Status {
    auto jobs = tx.ClaimDue("me", now, now + 600'000, 10);
    if (!jobs) return core::Fail(jobs.error());
    for (const DeliveryJob& j : *jobs) got.push_back(j.event_id);
    return {};
  });
  if (!st) return core::Fail(st.error());
  return got;
}

// A claim by "me" at `now`, committed; each row it takes gets `status` (failed: its next attempt
// at `retry`), its event id appended to `got`.
inline Status ClaimAndSettle(Store& store, core::UlidGenerator& ids, UnixMs now,
                             DeliveryStatus status, UnixMs retry, std::vector<std::string>& got) {
  return store.Write([&](Txn& tx) -> Status {
    auto jobs = tx.ClaimDue("me", now, now + 60'000, 100);
    if (!jobs) return core::Fail(jobs.error());
    std::vector<Outcome> outcomes;
    for (const DeliveryJob& j : *jobs) {
      got.push_back(j.event_id);
      Outcome o = FirstAttempt(ids, j, now, status == DeliveryStatus::kSucceeded ? 200 : 503);
      o.new_status = status;
      if (status == DeliveryStatus::kFailed) o.next_attempt_at = retry;
      outcomes.push_back(o);
    }
    if (auto stale = tx.RecordOutcomes("me", outcomes); !stale) return core::Fail(stale.error());
    return {};
  });
}

// Issue 8's backlog, for the tests of its bytes on disk (SqliteStore and PostgresStore
// WaitingDeliveriesShareTheirRenderingOnDisk): `subs` subscriptions of one client render each of
// `events` events identically (about 1 KB, a copy per subscription as fan-out hands them over);
// every delivery has failed once (503) and is dead, waiting to be recovered. The rows are leased
// to the store's own owner (Store::Owner()), as fan-out leases them: the name's length is part
// of what the outcome frees in each row.
inline Status WaitingBacklog(Store& store, core::UlidGenerator& ids, int subs, int events) {
  TenantId tenant;
  std::vector<SubscriptionId> sub_ids;
  if (auto st = store.Write([&](Txn& tx) -> Status {
        const Client c = CreateTenantAndClient(tx, tenant);
        for (int i = 0; i < subs; ++i) {
          Subscription s;
          s.tenant = tenant;
          s.client = c.id;
          s.url = "https://receiver.example/hook/" + std::to_string(i);
          s.event_types = {"*"};
          s.secret = "whsec_dGVzdA==";
          sub_ids.push_back(tx.CreateSubscription(s)->id);
        }
        return {};
      });
      !st) {
    return st;
  }
  // ~900 B of notes in words, as a technician writes them: text that compresses (to about a
  // third; the bench's renderings to about a half), unlike 900 times the same byte. SQLite
  // stores renderings compressed.
  std::string filler;
  {
    static constexpr const char* kWords[] = {
        "pump",   "seal",  "sensor", "cold",    "room",   "compressor", "spare",  "parts",
        "leak",   "valve", "Kühl",   "checked", "signed", "customer",   "report", "replaced",
        "filter", "door",  "alarm",  "42",      "°C",     "pressure",   "noise",  "Zählerstand"};
    std::uint32_t x = 2463534242U;  // xorshift32: the same words on every run
    while (filler.size() < 900) {
      x ^= x << 13U;
      x ^= x >> 17U;
      x ^= x << 5U;
      filler += kWords[x % (sizeof kWords / sizeof kWords[0])];
      filler += ' ';
    }
  }
  constexpr int kBatch = 100;
  for (int first = 0; first < events; first += kBatch) {
    auto st = store.Write([&](Txn& tx) -> Status {
      std::vector<Outcome> outcomes;
      for (int i = first; i < std::min(events, first + kBatch); ++i) {
        const UnixMs at = kT0 + i;
        StoredEvent e = HotPathEvent(ids, tenant, at);
        e.record.target_id = i;
        if (auto r = tx.InsertEvent(e); !r) return r;
        const std::string data =
            R"({"appointmentId":)" + std::to_string(i) + R"(,"notes":")" + filler + "\"}";
        std::vector<NewDelivery> rows;
        rows.reserve(sub_ids.size());
        for (SubscriptionId sub : sub_ids) {
          rows.push_back(NewDelivery{tenant, e.record.event_id, sub, data, at});
        }
        auto jobs = tx.InsertDeliveries(rows, store.Owner(), at, kT0 + 86'400'000);
        if (!jobs) return core::Fail(jobs.error());
        for (const DeliveryJob& job : *jobs) {
          Outcome o = FirstAttempt(ids, job, at, 503);
          o.attempt.duration_ms = 3;
          o.attempt.error = "http_status";
          o.new_status = DeliveryStatus::kDead;
          outcomes.push_back(std::move(o));
        }
      }
      auto stale = tx.RecordOutcomes(store.Owner(), outcomes);
      if (!stale) return core::Fail(stale.error());
      return {};
    });
    if (!st) return st;
  }
  return {};
}

// The backlog both stores' tests of its bytes measure (SqliteStore and PostgresStore
// WaitingDeliveriesShareTheirRenderingOnDisk): WaitingBacklog of kWaitingSubs subscriptions and
// kWaitingEvents events (kWaitingRows deliveries), then the store closed so that what is on disk
// is settled.
inline constexpr int kWaitingSubs = 10;
inline constexpr int kWaitingEvents = 400;
inline constexpr double kWaitingRows = kWaitingSubs * kWaitingEvents;
inline Status WaitingBacklogThenClose(Store& store) {
  core::UlidGenerator ids;
  auto st = WaitingBacklog(store, ids, kWaitingSubs, kWaitingEvents);
  store.Close();
  return st;
}

}  // namespace outbound::store::testing
