// One claim over an ordered subscription's backlog (docs/PERFORMANCE.md, "ordered claims"):
// a tenant, a client and one ordered subscription; BACKLOG events about targets 1 and 2 in turn,
// each with a delivery waiting unleased and due (all but the two targets' heads blocked by the
// ordered check, CONTRACT §6); then RUNS claims of up to 100 rows, each rolled back, timed.
// The events occurred in the order they are accepted, or with `reversed` in the reverse order
// (each accepted event occurred before the ones accepted earlier; the heads are the last ones).
// On PostgreSQL the tables are ANALYZEd before the claims, as autovacuum would have them.
// Not a test: it prints figures and never judges them. Uses only the store's interface, so the
// same file builds against an older tree for a before/after pair.
//
// With `failing`, the endpoint is down: a first claim, committed, takes the two heads and records
// each as failed with its retry an hour ahead, so that the timed claims find nothing to take
// behind them (each row they walk is blocked).
//
// With `subs=N`, N more ordered subscriptions of the same client, with no rows: what a claim
// costs per ordered subscription that has nothing due.
//
//   ordered_claim_bench sqlite:/tmp/x.db BACKLOG [RUNS [reversed] [failing] [subs=N]]
//   ordered_claim_bench postgres://... BACKLOG [RUNS [reversed] [failing] [subs=N]]
//   (an empty database)
#include <libpq-fe.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "core/ids.h"
#include "store/postgres/pg_store.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store.h"

namespace {

using namespace outbound;  // NOLINT(google-build-using-namespace): a one-file program
using store::Txn;

constexpr core::UnixMs kT0 = 1'750'000'000'000;

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

int Run(store::Store& db, std::string_view dsn, int backlog, int runs, bool reversed, bool failing,
        int idle_subs) {
  core::TenantId tenant;
  core::SubscriptionId sub;
  auto created = db.Write([&](Txn& tx) -> core::Status {
    tenant = tx.CreateTenant("a", kT0)->id;
    store::Client c;
    c.tenant = tenant;
    c.name = "c";
    c.source_system = "s";
    c = tx.CreateClient(c).value();
    store::Subscription s;
    s.tenant = tenant;
    s.client = c.id;
    s.url = "https://receiver.example/hook";
    s.event_types = {"*"};
    s.secret = "whsec_dGVzdA==";
    s.ordered = true;
    sub = tx.CreateSubscription(s)->id;
    for (int i = 0; i < idle_subs; ++i) {
      if (auto idle = tx.CreateSubscription(s); !idle) return core::Fail(idle.error());
    }
    return {};
  });
  if (!created) {
    std::fprintf(stderr, "set-up: %s\n", created.error().message.c_str());
    return 1;
  }
  core::UlidGenerator ids;
  const auto seed_start = std::chrono::steady_clock::now();
  constexpr int kChunk = 1000;
  for (int first = 0; first < backlog; first += kChunk) {
    auto st = db.Write([&](Txn& tx) -> core::Status {
      for (int i = first; i < std::min(backlog, first + kChunk); ++i) {
        store::StoredEvent e;
        e.record.event_id = "evt_" + ids.Next(kT0 + i);
        e.record.type = core::EventType::kAppointmentStarted;
        e.record.tenant = tenant;
        e.record.occurred_at = reversed ? kT0 - i : kT0 + i;
        e.record.accepted_at = kT0 + i;
        e.record.target_id = 1 + i % 2;
        if (auto r = tx.InsertEvent(e); !r) return r;
        store::NewDelivery row;
        row.tenant = tenant;
        row.event_id = e.record.event_id;
        row.subscription = sub;
        row.data_json = "{}";
        row.next_attempt_at = kT0;
        auto jobs = tx.InsertDeliveries({row}, "", kT0, kT0);
        if (!jobs) return core::Fail(jobs.error());
      }
      return {};
    });
    if (!st) {
      std::fprintf(stderr, "seeding: %s\n", st.error().message.c_str());
      return 1;
    }
  }
  std::printf(
      "seeded %d ordered deliveries on 2 targets%s in %.0f ms; %d more ordered "
      "subscriptions with nothing due\n",
      backlog, reversed ? " (reversed)" : "", Ms(std::chrono::steady_clock::now() - seed_start),
      idle_subs);
  if (!dsn.empty()) {
    PGconn* c = PQconnectdb(std::string(dsn).c_str());
    PGresult* r = PQexec(c, "ANALYZE");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      std::fprintf(stderr, "ANALYZE: %s\n", PQresultErrorMessage(r));
    }
    PQclear(r);
    PQfinish(c);
  }
  if (failing) {
    // The endpoint is down: one claim, committed, takes the two heads, and each fails with its
    // next attempt an hour ahead; every row behind them waits (and, where the store holds such
    // rows, is held by this claim).
    auto st = db.Write([&](Txn& tx) -> core::Status {
      auto jobs = tx.ClaimDue("bench", kT0 + 1, kT0 + 60'000, 100);
      if (!jobs) return core::Fail(jobs.error());
      std::vector<store::Outcome> outcomes;
      for (const store::DeliveryJob& job : *jobs) {
        store::Outcome o;
        o.delivery = job.id;
        o.tenant = job.tenant;
        o.subscription = job.subscription;
        o.event_id = job.event_id;
        o.attempt.delivery_id = "del_" + ids.Next(kT0 + 1);
        o.attempt.attempt = 1;
        o.attempt.attempted_at = kT0 + 1;
        o.attempt.http_status = 503;
        o.new_status = store::DeliveryStatus::kFailed;
        o.next_attempt_at = kT0 + 3'600'000;
        outcomes.push_back(std::move(o));
      }
      auto stale = tx.RecordOutcomes("bench", outcomes);
      if (!stale) return core::Fail(stale.error());
      return {};
    });
    if (!st) {
      std::fprintf(stderr, "failing heads: %s\n", st.error().message.c_str());
      return 1;
    }
    std::printf("the two heads failed, their retry an hour ahead\n");
  }
  for (int run = 1; run <= runs; ++run) {
    std::size_t got = 0;
    const auto start = std::chrono::steady_clock::now();
    auto st = db.Write([&](Txn& tx) -> core::Status {
      auto jobs = tx.ClaimDue("bench", kT0 + 1, kT0 + 60'000, 100);
      if (!jobs) return core::Fail(jobs.error());
      got = jobs->size();
      return core::Fail(core::Error::Internal("rolled back on purpose"));
    });
    const double ms = Ms(std::chrono::steady_clock::now() - start);
    if (st || st.error().message != "rolled back on purpose") {
      std::fprintf(stderr, "claim: %s\n", st ? "committed" : st.error().message.c_str());
      return 1;
    }
    std::printf("claim %d: %zu rows in %.1f ms (backlog %d)\n", run, got, ms, backlog);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: %s sqlite:PATH|postgres://... BACKLOG [RUNS [reversed] [failing] "
                 "[subs=N]]\n",
                 argv[0]);
    return 2;
  }
  const std::string_view where = argv[1];
  const int backlog = std::atoi(argv[2]);
  const int runs = argc > 3 ? std::atoi(argv[3]) : 3;
  bool reversed = false;
  bool failing = false;
  int idle_subs = 0;
  for (int i = 4; i < argc; ++i) {
    const std::string_view arg = argv[i];
    reversed = reversed || arg == "reversed";
    failing = failing || arg == "failing";
    if (arg.rfind("subs=", 0) == 0) idle_subs = std::atoi(argv[i] + 5);
  }
  core::Result<std::unique_ptr<store::Store>> db = core::Fail(core::Error::Internal("no store"));
  if (where.rfind("sqlite:", 0) == 0) {
    store::SqliteOptions o;
    o.path = std::string(where.substr(7));
    db = store::OpenSqlite(o);
  } else {
    store::PostgresOptions o;
    o.dsn = std::string(where);
    o.secrets_keys = {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="};
    db = store::OpenPostgres(o);
  }
  if (!db) {
    std::fprintf(stderr, "open: %s\n", db.error().message.c_str());
    return 1;
  }
  const std::string_view dsn = where.rfind("sqlite:", 0) == 0 ? std::string_view() : where;
  const int rc = Run(**db, dsn, backlog, runs, reversed, failing, idle_subs);
  (*db)->Close();
  return rc;
}
