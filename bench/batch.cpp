// Batch publishing (--batch; issue 8): `POST /v1/events/batch` against the physical limit of
// durable storage here, a bare SQLite insert of the same rows, measured in the same run.
//
//   bare:     the bench itself opens a SQLite file in the same directory tree (WAL,
//             synchronous=FULL, as Outbound runs it) and inserts N events in transactions of B
//             (--batch-size, 500): per event one `events` row (its id, type, target, times and the
//             request's `data` text) and K `deliveries` rows (event, subscription, status, due
//             time), with the indexes any durable queue needs (the event id unique, (event,
//             subscription) unique, the due rows). Prepared statements, one row per step: what a
//             hand-written store would do, with nothing of validation, rendering or HTTP.
//   outbound: a fresh server with K subscriptions (--batch-k, 1); N events in requests of B items
//             to POST /v1/events/batch, C requests in flight (--batch-concurrency, 4), each
//             answered 202 only once its events are durable. Rate = events accepted / (first
//             request sent -> last 202 received). Then every delivery must arrive (a lost one
//             makes the run INCOMPLETE), and sampled signatures must verify. The deliveries go
//             out while the batches are published, so Outbound's rate includes sending them.
//             --batch-held pauses the K subscriptions first (PATCH paused): each delivery is
//             stored and held, the same rows as the bare insert and nothing sent meanwhile;
//             they are resumed after the last 202, and a delivery received before that makes
//             the run INCOMPLETE. It also measures Outbound's CPU with nothing to do for
//             kIdleSeconds before the batches (nothing held) and after them (all N x K held):
//             a paused subscription's rows must cost the claims nothing while they wait (SQLite
//             held them in deliveries_due before migration 15, and every claim read them all).
//             Fan-out holds them as it stores them; rows that were waiting before a pause are
//             held by the claims instead, which this does not measure (docs/PERFORMANCE.md).
//   --stores sqlite,pg: Outbound's run on each store in turn (PostgreSQL: a new database on the
//             cluster of pg.h), against the one bare insert, which stays SQLite's: it is the
//             physical limit of durable storage on this machine, whatever the store.
// Printed: both rates, their ratio (goal >= 0.5), Outbound's CPU per event while publishing (and
// the PostgreSQL server's), the batch requests' latency, and a verdict per store (at N >= 100,000
// only).
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "harness.h"
#include "publish.h"
#include "scenario.h"
#include "stores.h"

namespace bench {
namespace {

constexpr double kGoalRatio = 0.5;
constexpr int kGoalEvents = 100'000;
// --batch-held: the idle windows before and after the batches.
constexpr int kIdleSeconds = 5;

struct BareResult {
  uint64_t events = 0, deliveries = 0;
  double seconds = 0, rate = 0, cpu = 0;
  uint64_t db_bytes = 0;
  std::string error;
};

bool Exec(sqlite3* db, const char* sql, std::string* err) {
  char* msg = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &msg) == SQLITE_OK) return true;
  *err = std::string(sql).substr(0, 60) + ": " + (msg ? msg : "?");
  sqlite3_free(msg);
  return false;
}

// The `data` text of event `seq`, as Outbound receives it in EventBody.
std::string DataOf(int64_t seq) {
  const std::string body = EventBody(seq, 1);
  const size_t k = body.find("\"data\":");
  return body.substr(k + 7, body.size() - (k + 7) - 1);
}

BareResult BareInsert(const std::string& dir, int n, int batch, int k) {
  BareResult r;
  const std::string path = dir + "/bare.db";
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    r.error = "open " + path;
    sqlite3_close(db);
    return r;
  }
  std::string err;
  const bool ok =
      Exec(db, "PRAGMA journal_mode = WAL", &err) && Exec(db, "PRAGMA synchronous = FULL", &err) &&
      Exec(db,
           "CREATE TABLE events (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, "
           "tenant_id INTEGER NOT NULL, event_type TEXT NOT NULL, target_id INTEGER, occurred_at "
           "INTEGER NOT NULL, accepted_at INTEGER NOT NULL, data TEXT NOT NULL);"
           "CREATE TABLE deliveries (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL, "
           "subscription_id INTEGER NOT NULL, status TEXT NOT NULL, next_attempt_at INTEGER, "
           "created_at INTEGER NOT NULL, UNIQUE (event_id, subscription_id));"
           "CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';",
           &err);
  sqlite3_stmt* ev = nullptr;
  sqlite3_stmt* del = nullptr;
  if (ok) {
    sqlite3_prepare_v2(db,
                       "INSERT INTO events(event_id, tenant_id, event_type, target_id, "
                       "occurred_at, accepted_at, data) VALUES (?1, 1, "
                       "'appointment.problem_reported', ?2, ?3, ?3, ?4)",
                       -1, &ev, nullptr);
    sqlite3_prepare_v2(db,
                       "INSERT INTO deliveries(event_id, subscription_id, status, "
                       "next_attempt_at, created_at) VALUES (?1, ?2, 'pending', ?3, ?3)",
                       -1, &del, nullptr);
  }
  if (!ok || ev == nullptr || del == nullptr) {
    r.error = err.empty() ? sqlite3_errmsg(db) : err;
  } else {
    // The texts are made before the clock starts: the bare insert measures storage only.
    std::vector<std::string> data(static_cast<size_t>(n)), ids(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      data[static_cast<size_t>(i)] = DataOf(i);
      char id[40];
      std::snprintf(id, sizeof id, "evt_%026d", i);
      ids[static_cast<size_t>(i)] = id;
    }
    const double cpu0 = ProcCpuSeconds("/proc/self/stat");
    const int64_t t0 = NowNs();
    for (int start = 0; start < n && r.error.empty(); start += batch) {
      if (!Exec(db, "BEGIN", &err)) r.error = err;
      const int64_t now_ms = NowNs() / 1'000'000;
      for (int i = start; i < std::min(n, start + batch) && r.error.empty(); ++i) {
        const std::string& id = ids[static_cast<size_t>(i)];
        const std::string& d = data[static_cast<size_t>(i)];
        sqlite3_bind_text(ev, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
        sqlite3_bind_int64(ev, 2, 1 + i % 100);
        sqlite3_bind_int64(ev, 3, now_ms);
        sqlite3_bind_text(ev, 4, d.data(), static_cast<int>(d.size()), SQLITE_STATIC);
        if (sqlite3_step(ev) != SQLITE_DONE) r.error = sqlite3_errmsg(db);
        sqlite3_reset(ev);
        for (int s = 0; s < k && r.error.empty(); ++s) {
          sqlite3_bind_text(del, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
          sqlite3_bind_int64(del, 2, s + 1);
          sqlite3_bind_int64(del, 3, now_ms);
          if (sqlite3_step(del) != SQLITE_DONE) r.error = sqlite3_errmsg(db);
          sqlite3_reset(del);
          r.deliveries++;
        }
        r.events++;
      }
      if (r.error.empty() && !Exec(db, "COMMIT", &err)) r.error = err;
    }
    r.seconds = Secs(NowNs() - t0);
    r.cpu = ProcCpuSeconds("/proc/self/stat") - cpu0;
    r.rate = r.seconds > 0 ? static_cast<double>(r.events) / r.seconds : 0;
  }
  sqlite3_finalize(ev);
  sqlite3_finalize(del);
  sqlite3_close(db);
  r.db_bytes = FileBytes(path) + FileBytes(path + "-wal");
  return r;
}

struct BatchLog {
  std::mutex mu;
  uint64_t accepted = 0, refused = 0, failed_requests = 0, retried = 0;
  std::vector<double> request_ms;
  std::vector<std::string> errors;
  int64_t t_first = 0, t_last = 0;
};

// Counts the `"eventId"` entries of a batch answer (one per stored item).
uint64_t CountStored(const std::string& body) {
  uint64_t n = 0;
  for (size_t p = body.find("\"eventId\""); p != std::string::npos;
       p = body.find("\"eventId\"", p + 9))
    ++n;
  return n;
}

void PublishBatches(Server& srv, const Fixture& fx, int n, int batch, int concurrency,
                    int64_t deadline, BatchLog* log) {
  const int batches = (n + batch - 1) / batch;
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(concurrency));
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&] {
      Api api(srv.base());
      for (int b = next++; b < batches && NowNs() < deadline; b = next++) {
        std::string body = "{\"events\":[";
        for (int i = b * batch; i < std::min(n, (b + 1) * batch); ++i) {
          if (i > b * batch) body += ',';
          body += EventBody(i, fx.targets[static_cast<size_t>(i) % fx.targets.size()]);
        }
        body += "]}";
        // 503 (the store is behind): the batch is sent again after a pause, at most 20 times.
        for (int attempt = 0; attempt < 20 && NowNs() < deadline; ++attempt) {
          const int64_t t0 = NowNs();
          {
            std::lock_guard<std::mutex> g(log->mu);
            if (log->t_first == 0) log->t_first = t0;
          }
          Resp r = api.Call("POST", "/v1/events/batch", fx.tenant_key, &body, 60000);
          const int64_t t1 = NowNs();
          std::lock_guard<std::mutex> g(log->mu);
          if (r.status == 503) {
            log->retried++;
            SleepMs(50);
            continue;
          }
          if (r.status != 202) {
            log->failed_requests++;
            if (log->errors.size() < 5)
              log->errors.push_back("HTTP " + std::to_string(r.status) + " " + r.error + " " +
                                    r.body.substr(0, 160));
            break;
          }
          const uint64_t stored = CountStored(r.body);
          const int items = std::min(n, (b + 1) * batch) - b * batch;
          log->accepted += stored;
          log->refused += static_cast<uint64_t>(items) - std::min<uint64_t>(stored, items);
          log->request_ms.push_back(static_cast<double>(t1 - t0) / 1e6);
          log->t_last = std::max(log->t_last, t1);
          break;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
}

// One store's run of Outbound (SQLite, or PostgreSQL with --stores).
struct StoreBatch {
  std::string store;
  bool pg = false;
  BatchLog log;
  double seconds = NAN, rate = 0;
  CpuWindow publish_cpu;
  double pg_cpu = NAN;  // the PostgreSQL server's CPU over the same window (NAN: SQLite)
  StoreSizes sizes;
  uint64_t expected = 0, received = 0, received_while_paused = 0;
  SignatureTally sigs;
  // --batch-held: Outbound's CPU over kIdleSeconds with nothing to do (all of it, and its store
  // writer's), before the batches (nothing held) and after them (all N x K held).
  double idle_empty = NAN, idle_empty_writer = 0, idle_held = NAN, idle_held_writer = 0;
  std::vector<std::string> problems;
};

bool RunOnStore(Harness& h, const StoreChoice& choice, int index, StoreBatch* out) {
  const Options& opt = h.opt;
  const int n = opt.batch_events, b = opt.batch_size, k = opt.batch_k;
  StoreBatch& r = *out;
  RunStore store(choice.pg, "batch_" + std::to_string(index), opt.KeepPgDatabases());
  r.store = store.Name();
  r.pg = store.pg();
  if (!store.ok()) {
    h.failure = r.store + " batch: " + store.error();
    return false;
  }
  Server srv;
  Fixture fx;
  ServerSpec spec = BaseSpec(opt);
  store.Apply(&spec);
  if (!h.Fresh(srv, "batch", spec, FirstPaths(k), &fx)) return false;
  store.SetDir(h.dirs.back());
  std::printf("outbound on %s: %d events in batches of %d, %d in flight, K=%d%s...\n",
              r.store.c_str(), n, b, opt.batch_concurrency, k,
              opt.batch_held ? ", the subscriptions paused while publishing" : "");
  std::fflush(stdout);
  // --batch-held: paused, each delivery is stored and held (PATCH paused, CONTRACT §13).
  std::string pause_errors;
  auto set_paused = [&](bool paused) { pause_errors += SetPaused(srv, fx, paused); };
  auto writer_cpu = [&]() {  // every thread of that name (CpuWindow keeps the busiest six)
    double sec = 0;
    for (const auto& [tid, v] : ThreadCpu(srv.pid()))
      if (v.first == "ob-store-write") sec += v.second;
    return sec;
  };
  auto idle = [&](double* outbound, double* writer) {
    CpuMeter m(srv.pid(), h.rx.tid());
    const double writer_before = writer_cpu();
    SleepMs(kIdleSeconds * 1000);
    *writer = writer_cpu() - writer_before;
    *outbound = m.End().outbound;
  };
  if (opt.batch_held) {
    set_paused(true);
    if (!pause_errors.empty()) {
      h.failure = "batch on " + r.store + ": " + pause_errors;
      h.Finish(srv, "batch");
      return false;
    }
    idle(&r.idle_empty, &r.idle_empty_writer);
  }
  h.rx.Reset();
  CpuMeter cpu(srv.pid(), h.rx.tid());
  const double pg0 = store.ServerCpu();
  const int64_t deadline = NowNs() + static_cast<int64_t>(opt.stage_timeout * 1e9);
  PublishBatches(srv, fx, n, b, opt.batch_concurrency, deadline, &r.log);
  r.publish_cpu = cpu.End();
  if (r.pg) r.pg_cpu = store.ServerCpu() - pg0;
  if (opt.batch_held) idle(&r.idle_held, &r.idle_held_writer);
  r.received_while_paused = h.rx.count();
  if (opt.batch_held) set_paused(false);
  bool died = !srv.Alive();
  r.expected = r.log.accepted * static_cast<uint64_t>(k);
  if (!died) AwaitDeliveries(h.rx, srv, r.expected, deadline, 30.0, &died);
  std::vector<Received> recs = h.rx.Take();
  r.sigs = CheckSamples(h.rx.Samples(), fx);
  r.sizes = store.Sizes();
  h.Finish(srv, "batch");
  std::unordered_set<std::string> pairs;
  for (const Received& rec : recs)
    if (rec.path >= 0 && rec.path < k)
      pairs.insert(std::string(rec.id.data()) + "/" + std::to_string(rec.path));
  r.received = pairs.size();

  BatchLog& log = r.log;
  r.seconds = log.t_last > log.t_first ? Secs(log.t_last - log.t_first) : NAN;
  r.rate = r.seconds > 0 ? static_cast<double>(log.accepted) / r.seconds : 0;
  if (log.accepted < static_cast<uint64_t>(n))
    r.problems.push_back(std::to_string(static_cast<uint64_t>(n) - log.accepted) + " of " +
                         std::to_string(n) + " events not accepted");
  if (r.received < r.expected)
    r.problems.push_back(std::to_string(r.expected - r.received) + " deliveries never received");
  if (died) r.problems.push_back("server died");
  if (!r.sigs.ok()) r.problems.push_back("signatures: " + r.sigs.Text());
  if (!pause_errors.empty()) r.problems.push_back(pause_errors);
  if (opt.batch_held && r.received_while_paused > 0)
    r.problems.push_back(std::to_string(r.received_while_paused) +
                         " deliveries received while the subscriptions were paused");
  for (auto& e : log.errors) r.problems.push_back(e);
  std::sort(log.request_ms.begin(), log.request_ms.end());
  return true;
}

void PrintStoreBatch(const Options& opt, const BareResult& bare, StoreBatch& r) {
  const int n = opt.batch_events;
  const BatchLog& log = r.log;
  std::printf(
      "outbound on %s, POST /v1/events/batch (%d items, %d in flight): %.0f events/s (%" PRIu64
      " accepted, %" PRIu64 " refused, %" PRIu64 " failed requests, %" PRIu64
      " retried after 503, %.2f s; %s %.1f MB + %s %.1f MB)\n",
      r.store.c_str(), opt.batch_size, opt.batch_concurrency, r.rate, log.accepted, log.refused,
      log.failed_requests, log.retried, r.seconds, r.pg ? "tables" : "db",
      static_cast<double>(r.sizes.data) / 1e6, r.pg ? "pg_wal" : "WAL",
      static_cast<double>(r.sizes.wal) / 1e6);
  std::printf("  request latency: %s\n", LatencyText(log.request_ms).c_str());
  if (opt.batch_held) {
    std::printf("  the subscriptions were paused while publishing and the idle windows (%" PRIu64
                " deliveries received meanwhile), then resumed\n",
                r.received_while_paused);
    // Per cent of a core over the idle window.
    auto pct = [](double sec) { return sec * 100.0 / kIdleSeconds; };
    std::printf(
        "  outbound CPU idle (%d s, nothing to send): %.1f %% of a core (store writer "
        "%.1f %%) with nothing held, %.1f %% (writer %.1f %%) with %" PRIu64 " deliveries held\n",
        kIdleSeconds, pct(r.idle_empty), pct(r.idle_empty_writer), pct(r.idle_held),
        pct(r.idle_held_writer), r.expected);
  }
  auto per_event = [&](double sec) {
    return log.accepted > 0 ? sec * 1e6 / static_cast<double>(log.accepted) : NAN;
  };
  std::printf("  outbound CPU while publishing: %.2f s = %.1f us per event", r.publish_cpu.outbound,
              per_event(r.publish_cpu.outbound));
  if (r.pg)
    std::printf("; the PostgreSQL server's %.2f s = %.1f us per event", r.pg_cpu,
                per_event(r.pg_cpu));
  std::printf("; deliveries received %" PRIu64 " of %" PRIu64 "; signatures: %s\n", r.received,
              r.expected, r.sigs.Text().c_str());
  std::vector<std::string> why = r.problems;
  if (n < kGoalEvents)
    why.push_back(std::to_string(n) + " events, the goal is stated at " +
                  std::to_string(kGoalEvents));
  const double ratio = bare.rate > 0 ? r.rate / bare.rate : 0;
  std::printf("batch publishing on %s / bare insert: %.3f   goal >= %.1f: %s\n", r.store.c_str(),
              ratio, kGoalRatio,
              !why.empty()          ? ("NOT MET (INCOMPLETE: " + JoinReasons(why) + ")").c_str()
              : ratio >= kGoalRatio ? "met"
                                    : "NOT MET");
}

}  // namespace

int RunBatch(Harness& h) {
  const Options& opt = h.opt;
  const int n = opt.batch_events, b = opt.batch_size, k = opt.batch_k;
  StoreServers servers;
  if (!OpenStores(h, &servers)) return 1;
  const std::vector<StoreChoice> stores = StoreList(h, servers);
  const std::string bare_dir = MakeTempDir(h.opt.tmp, "bare");
  h.dirs.push_back(bare_dir);
  std::printf(
      "bare SQLite insert: %d events x (1 event row + %d delivery rows), %d per "
      "transaction, WAL, synchronous=FULL, in %s...\n",
      n, k, b, bare_dir.c_str());
  std::fflush(stdout);
  BareResult bare = BareInsert(bare_dir, n, b, k);
  if (!bare.error.empty()) {
    std::fprintf(stderr, "e2e_bench: bare insert: %s\n", bare.error.c_str());
    return 1;
  }
  std::printf("  %" PRIu64 " events in %.2f s: %.0f events/s (CPU %.2f s)\n", bare.events,
              bare.seconds, bare.rate, bare.cpu);
  std::fflush(stdout);

  std::vector<StoreBatch> results(stores.size());
  for (size_t i = 0; i < stores.size(); ++i) {
    if (!RunOnStore(h, stores[i], static_cast<int>(i + 1), &results[i])) {
      std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
      return 1;
    }
  }

  std::printf("\n================ Outbound batch publishing benchmark ================\n");
  std::printf(
      "bare SQLite insert (WAL, synchronous=FULL, %d events per transaction, K=%d): "
      "%.0f events/s (%" PRIu64 " events + %" PRIu64 " deliveries in %.2f s; %.1f MB)\n",
      b, k, bare.rate, bare.events, bare.deliveries, bare.seconds,
      static_cast<double>(bare.db_bytes) / 1e6);
  for (StoreBatch& r : results) PrintStoreBatch(opt, bare, r);
  PrintServers(h);
  return 0;
}

}  // namespace bench
