// Cost independent of history (--history; issue 8): Outbound's CPU per event of publishing,
// claiming and recording outcomes with N rows already in the store, against the same with an
// empty store, in one run.
//
// Every run has the same subscriptions: client A's /s0 (appointment.started, healthy) and client
// B's ten subscriptions /s1../s10 to an endpoint that is down (the receiver answers 503): /s1 to
// appointment.* (the long failure streak), /s2../s10 to appointment.problem_reported. The server
// runs with --retry-schedule 0s,1h: a delivery's first attempt fails and it then waits an hour.
// Seeding (the "big" run only): N/10 appointment.problem_reported events published through the API
// as fast as they are accepted; each fans out to the ten down subscriptions, whose first attempts
// fail (counted by the receiver), so the store ends with N deliveries waiting (next attempt an
// hour away), N failed attempts recorded, and /s1 failing for N/10 attempts in a row.
// Measured (every run): M appointment.started events published as fast as accepted; each is one
// delivery to /s0 (succeeds) and one to /s1 (fails, the streak grows): publishing, two claims, a
// success and a failure recorded. Per-event CPU = Outbound's utime+stime (/proc/PID/stat) from
// the first publish until the last /s0 delivery and the last /s1 failure arrived, / M.
// Order: empty, big, empty (the two empty runs bracket the big one; more than 20 % apart:
// INCONCLUSIVE, the machine's load changed).
// --stores sqlite,pg: the three runs on each store in turn (PostgreSQL: a new database per run on
// one server), each store judged against its own empty runs. On PostgreSQL the CPU per event is
// Outbound's plus the PostgreSQL server's (the postmaster and its children, from /proc).
#include <array>
#include <cinttypes>
#include <cmath>
#include <cstdio>

#include "harness.h"
#include "scenario.h"
#include "stores.h"

namespace bench {
namespace {

constexpr int kDown = 10;  // client B's subscriptions, /s1../s10

struct HistoryRun {
  std::string label, store;
  bool pg = false;
  double pg_cpu_s = 0;   // the PostgreSQL server's CPU over the same window (0 on SQLite)
  double vacuum_s = -1;  // --pg-vacuum: seconds of the VACUUM (ANALYZE) after seeding
  uint64_t seed_target = 0, seed_accepted = 0, seeded = 0;  // seeded: failed first attempts
  double seed_seconds = 0;
  uint64_t db_bytes = 0, wal_bytes = 0;
  int events = 0;
  uint64_t accepted = 0, healthy = 0, streak = 0;
  double cpu_s = 0, wall = 0, per_event_us = 0, vm_steps = NAN;
  CpuWindow cpu;
  std::vector<std::string> problems;
  SignatureTally signatures;
};

bool Run(Harness& h, const PgServer* server, int index, const char* tag, uint64_t rows,
         HistoryRun* out) {
  const Options& opt = h.opt;
  HistoryRun& r = *out;
  r.label = tag;
  r.events = opt.history_events;
  RunStore store(server, "history_" + std::to_string(index),
                 opt.KeepPgDatabases());  // outlives the server
  r.store = store.Name();
  r.pg = store.pg();
  if (!store.ok()) {
    h.failure = r.store + " " + tag + ": " + store.error();
    return false;
  }
  Server srv;
  Fixture fx;
  ServerSpec spec;
  spec.retry_schedule = "0s,1h";
  store.Apply(&spec);
  h.rx.SetDown(1, 1 + kDown);
  if (!h.Fresh(srv, tag, spec, {0}, &fx, {"appointment.started"})) return false;
  store.SetDir(h.dirs.back());
  std::vector<int> down_paths;
  std::vector<std::string> down_types, ids;
  for (int i = 1; i <= kDown; ++i) {
    down_paths.push_back(i);
    down_types.push_back(i == 1 ? "appointment.*" : "appointment.problem_reported");
  }
  std::string err;
  if (!AddClient(srv, &fx, h.rx.port(), down_paths, down_types, &ids, &err)) {
    h.failure = err;
    return false;
  }
  h.rx.Reset();
  if (rows > 0) {
    const int n = static_cast<int>((rows + kDown - 1) / kDown);
    r.seed_target = static_cast<uint64_t>(n) * kDown;
    PublishLog seed;
    seed.Init(n);
    int64_t t0 = NowNs();
    int64_t deadline = t0 + static_cast<int64_t>(opt.stage_timeout * 1e9);
    std::printf("  %s %s: seeding %d events x %d down subscriptions...\n", r.store.c_str(), tag, n,
                kDown);
    std::fflush(stdout);
    Publish(srv, fx, n, opt.concurrency, 0, deadline, &seed);
    r.seed_accepted = seed.accepted * kDown;
    // Every first attempt made (each one a 503 at the receiver), bounded.
    uint64_t last = 0;
    int64_t last_change = NowNs();
    while (h.rx.down() < r.seed_accepted && NowNs() < deadline && srv.Alive() &&
           Secs(NowNs() - last_change) < 60) {
      if (h.rx.down() != last) {
        last = h.rx.down();
        last_change = NowNs();
      }
      SleepMs(100);
    }
    SleepMs(2000);  // the last outcomes reach the store
    r.seeded = h.rx.down();
    r.seed_seconds = Secs(NowNs() - t0);
    if (seed.accepted < static_cast<uint64_t>(n))
      r.problems.push_back("seeding: " + std::to_string(n - static_cast<int>(seed.accepted)) +
                           " of " + std::to_string(n) + " events not accepted" +
                           (seed.timed_out ? " (stage timed out)" : ""));
    if (r.seeded < r.seed_accepted)
      r.problems.push_back("seeding: " + std::to_string(r.seed_accepted - r.seeded) +
                           " first attempts never made");
  }
  if (store.pg() && opt.pg_vacuum) {
    std::string verr;
    r.vacuum_s = store.Vacuum(opt.stage_timeout, &verr);
    if (std::isnan(r.vacuum_s)) r.problems.push_back("VACUUM (ANALYZE) failed: " + verr);
  }
  const StoreSizes sizes = store.Sizes();
  r.db_bytes = sizes.data;
  r.wal_bytes = sizes.wal;
  h.rx.Reset();
  double steps0 = MetricContaining(srv, "vm_step");
  PublishLog log;
  log.Init(r.events);
  log.started_every = 1;  // every measured event is an appointment.started
  CpuMeter cpu(srv.pid(), h.rx.tid());
  const double pg0 = store.ServerCpu();
  int64_t t0 = NowNs();
  int64_t deadline = t0 + static_cast<int64_t>(opt.phase_timeout * 1e9);
  Publish(srv, fx, r.events, opt.concurrency, 0, deadline, &log);
  r.accepted = log.accepted;
  bool died = log.server_died;
  if (!died) AwaitDeliveries(h.rx, srv, log.accepted, deadline, 10.0, &died);
  for (int i = 0; i < 1000 && h.rx.down() < log.accepted && NowNs() < deadline && !died; ++i)
    SleepMs(20);
  r.cpu = cpu.End();
  r.pg_cpu_s = store.ServerCpu() - pg0;
  r.cpu_s = r.cpu.outbound;
  r.wall = r.cpu.wall;
  double steps1 = MetricContaining(srv, "vm_step");
  if (!std::isnan(steps0) && !std::isnan(steps1) && log.accepted > 0)
    r.vm_steps = (steps1 - steps0) / static_cast<double>(log.accepted);
  Tally tally = CountDeliveries(h.rx.Take(), log, 1);
  r.healthy = tally.unique;
  r.streak = h.rx.down();
  r.per_event_us =
      log.accepted > 0 ? (r.cpu_s + r.pg_cpu_s) / static_cast<double>(log.accepted) * 1e6 : NAN;
  r.signatures = CheckSamples(h.rx.Samples(), fx);
  if (died || !srv.Alive()) r.problems.push_back("server died");
  if (log.timed_out) r.problems.push_back("measured publish timed out");
  if (r.accepted < static_cast<uint64_t>(r.events))
    r.problems.push_back(std::to_string(r.events - static_cast<int>(r.accepted)) +
                         " measured events not accepted");
  if (r.healthy < r.accepted)
    r.problems.push_back(std::to_string(r.accepted - r.healthy) + " /s0 deliveries missing");
  if (r.streak < r.accepted)
    r.problems.push_back(std::to_string(r.accepted - r.streak) + " /s1 failed attempts missing");
  if (!r.signatures.ok()) r.problems.push_back("signatures: " + r.signatures.Text());
  h.rx.SetDown(0, 0);
  h.Finish(srv, (r.store + " " + tag).c_str());
  return true;
}

void Print(const HistoryRun& r) {
  std::printf("%-10s %-8s %10" PRIu64 " %9.1f %10.1f %8.1f %8s %9.0f %10" PRIu64 "/%-6d %s%s\n",
              r.store.c_str(), r.label.c_str(), r.seeded, r.seed_seconds,
              static_cast<double>(r.db_bytes + r.wal_bytes) / 1e6, r.cpu_s,
              r.pg ? Fmt("%.1f", r.pg_cpu_s).c_str() : "-", r.per_event_us, r.healthy, r.events,
              r.problems.empty() ? "complete" : "INCOMPLETE: ", JoinReasons(r.problems).c_str());
}

// The verdict of one store's three runs (empty, big, empty).
struct HistoryVerdict {
  double empty = NAN, ratio = NAN, spread = INFINITY;
  std::string text;
};
HistoryVerdict Judge(const HistoryRun* runs) {
  HistoryVerdict v;
  v.empty = (runs[0].per_event_us + runs[2].per_event_us) / 2;
  v.ratio = v.empty > 0 ? runs[1].per_event_us / v.empty : NAN;
  v.spread =
      v.empty > 0 ? std::abs(runs[0].per_event_us - runs[2].per_event_us) / v.empty : INFINITY;
  std::vector<std::string> why;
  for (int i = 0; i < 3; ++i)
    if (!runs[i].problems.empty()) why.push_back(runs[i].label + " incomplete");
  if (runs[1].seeded < 1'000'000)
    why.push_back(std::to_string(runs[1].seeded) + " rows seeded, the goal is stated at 1,000,000");
  v.text = !why.empty()     ? "NOT MET (INCOMPLETE: " + JoinReasons(why) + ")"
           : v.spread > 0.2 ? "INCONCLUSIVE (the empty runs differ by more than 20 %)"
           : v.ratio <= 1.5 ? "met"
                            : "NOT MET";
  return v;
}

}  // namespace

int RunHistory(Harness& h) {
  const Options& opt = h.opt;
  std::printf(
      "history: %d measured events per run (each: publish, a delivery to a healthy /s0 and a "
      "failing one to /s1), empty store / %d rows seeded / empty store, on each store; goal: big "
      "<= 1.5 x empty\n",
      opt.history_events, opt.history_rows);
  std::fflush(stdout);
  StoreServers servers;
  if (!OpenStores(h, &servers)) return 1;
  const std::vector<StoreChoice> stores = StoreList(h, servers);
  std::vector<std::array<HistoryRun, 3>> all(stores.size());
  const char* tags[3] = {"empty-1", "big", "empty-2"};
  const uint64_t rows[3] = {0, static_cast<uint64_t>(opt.history_rows), 0};
  int index = 0;
  for (size_t s = 0; s < stores.size(); ++s) {
    for (int i = 0; i < 3; ++i) {
      if (!Run(h, stores[s].pg, ++index, tags[i], rows[i], &all[s][static_cast<size_t>(i)])) {
        std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
        return 1;
      }
      std::printf("  %s %s: done (%.0f us per event)\n", all[s][0].store.c_str(), tags[i],
                  all[s][static_cast<size_t>(i)].per_event_us);
      std::fflush(stdout);
    }
  }
  std::printf("\n================ Outbound history benchmark ================\n");
  if (servers.pg) std::printf("%s\n", servers.pg->Text().c_str());
  std::printf(
      "us/event: CPU of Outbound (+ the PostgreSQL server's on PostgreSQL) / measured events; "
      "size: SQLite db + WAL files, PostgreSQL tables (with indexes, TOAST) + pg_wal\n");
  std::printf("%-10s %-8s %10s %9s %10s %8s %8s %9s %17s %s\n", "store", "run", "rows", "seed s",
              "size MB", "Outb. s", "PG s", "us/event", "/s0 received", "status");
  for (auto& runs : all)
    for (auto& r : runs) Print(r);
  for (auto& runs : all) {
    for (auto& r : runs) {
      std::printf("  %s %s:\n", r.store.c_str(), r.label.c_str());
      PrintCpu(r.cpu);
      if (r.vacuum_s >= 0)
        std::printf("      VACUUM (ANALYZE) before the measured events: %.1f s\n", r.vacuum_s);
      std::printf("      SQLite VM steps per event: %s; /s1 failed attempts %" PRIu64
                  "; signatures: %s\n",
                  r.pg                     ? "n/a (PostgreSQL)"
                  : std::isnan(r.vm_steps) ? "not exposed by outbound's /metrics"
                                           : Fmt("%.0f", r.vm_steps).c_str(),
                  r.streak, r.signatures.Text().c_str());
    }
  }
  std::printf("\nper store, side by side (the same scenario, one run):\n");
  std::printf("  %-10s %10s %10s %10s %10s %7s  %s\n", "store", "empty-1 us", "big us",
              "empty-2 us", "rows", "ratio", "goal big <= 1.5 x mean of the empty runs");
  for (auto& runs : all) {
    const HistoryVerdict v = Judge(runs.data());
    std::printf("  %-10s %10.0f %10.0f %10.0f %10" PRIu64
                " %7.2f  %s; empty runs differ by %.0f%% "
                "of their mean\n",
                runs[0].store.c_str(), runs[0].per_event_us, runs[1].per_event_us,
                runs[2].per_event_us, runs[1].seeded, v.ratio, v.text.c_str(), 100 * v.spread);
  }
  PrintServers(h);
  return 0;
}

}  // namespace bench
