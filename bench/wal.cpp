// The WAL under sustained load and a restart after kill -9 (--wal; issue 8).
//
// A fresh server (SQLite, K = --wal-k subscriptions to the receiver, the bench's usual flags),
// events published as fast as they are accepted over --concurrency connections for --wal-seconds,
// the size of `outbound.db-wal` sampled every 100 ms (goal: the maximum <= 64 MB). Then, with
// the load still running, kill -9; a new `outbound serve` on the same file (and key file) is
// started and measured from its fork: until `GET /healthz` answers 200, and until the first
// attempt of a delivery left over from before the kill reaches the receiver (nothing is published
// after the kill, so every request that arrives is one). Goal: 2 s each. Then every accepted event
// must arrive at every subscription (at least once), bounded: what is missing is lost.
// --stores sqlite,pg: the same on each store in turn, side by side. On PostgreSQL "the WAL" is
// the files of pg_wal (pg_ls_waldir(), sampled every 100 ms) under the server's own checkpoints
// (its max_wal_size, min_wal_size and checkpoint_timeout are printed); kill -9 goes to the
// Outbound process, not the database; CPU is Outbound's plus the PostgreSQL server's.
#include <signal.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>

#include "harness.h"
#include "scenario.h"
#include "stores.h"

namespace bench {

namespace {
constexpr double kGoalWalMb = 64, kGoalRestartS = 2;

struct WalResult {
  std::string store, wal_name, wal_settings;
  bool pg = false;
  int k = 0, lease = 0;  // lease: --lease of both servers, seconds (0: Outbound's default)
  double load_s = 0, healthz_s = NAN, resumed_s = NAN;
  uint64_t accepted = 0, received_at_kill = 0, max_wal = 0, wal_at_kill = 0, wal_after = 0;
  uint64_t wal_generated = 0;  // PostgreSQL: WAL written during the load (LSN difference)
  double pg_cpu = 0;           // the PostgreSQL server's CPU seconds over the load
  CpuWindow load_cpu;
  std::vector<std::pair<double, uint64_t>> trace;
  Tally tally;
  uint64_t expected = 0;
  SignatureTally sigs;
  std::vector<std::string> problems;
};

// The load, the kill and the restart on a fresh store. False (h.failure set) only when the
// harness cannot do its job.
bool LoadKillRestart(Harness& h, const PgServer* server, int index, WalResult* out) {
  const Options& opt = h.opt;
  WalResult& res = *out;
  const int k = opt.wal_k;
  res.k = k;
  res.lease = opt.wal_lease;
  RunStore store(server, "wal_" + std::to_string(index),
                 opt.KeepPgDatabases());  // outlives both servers
  res.store = store.Name();
  res.wal_name = store.WalName();
  res.wal_settings = store.WalSettings();
  res.pg = store.pg();
  if (!store.ok()) {
    h.failure = res.store + ": " + store.error();
    return false;
  }
  Server srv;
  Fixture fx;
  ServerSpec spec = BaseSpec(opt);
  // On PostgreSQL the restarted process is a new lease owner: what the killed one had claimed
  // waits for its lease to expire (RELIABILITY.md), so --wal-lease shows that bound.
  if (opt.wal_lease > 0)
    spec.extra.insert(spec.extra.end(), {"--lease", std::to_string(opt.wal_lease) + "s"});
  store.Apply(&spec);
  if (!h.Fresh(srv, "wal", spec, FirstPaths(k), &fx)) return false;
  const std::string dir = h.dirs.back();
  store.SetDir(dir);
  const SizeProbe probe = store.Probe();
  h.rx.Reset();
  std::vector<std::string>& problems = res.problems;
  const int n = static_cast<int>(std::min(3'000'000.0, 5000 * opt.wal_seconds));
  PublishLog log;
  log.Init(n);
  std::printf(
      "%s wal: K=%d, full load for %.0f s (at most %d events), then kill -9 and restart; lease "
      "%s\n",
      res.store.c_str(), k, opt.wal_seconds, n,
      opt.wal_lease > 0 ? (std::to_string(opt.wal_lease) + " s").c_str() : "Outbound's default");
  std::fflush(stdout);
  Sampler sampler(srv.pid(), store.Probe(), 100);
  const uint64_t lsn0 = store.WalPosition();
  const double pg0 = store.ServerCpu();
  CpuMeter cpu(srv.pid(), h.rx.tid());
  const int64_t t0 = NowNs();
  const int64_t kill_at = t0 + static_cast<int64_t>(opt.wal_seconds * 1e9);
  std::thread pub(
      [&] { Publish(srv, fx, n, opt.concurrency, 0, kill_at + 60'000'000'000LL, &log); });
  // Progress every minute; bounded by kill_at. Not srv.Alive() (the publisher's thread waits for
  // the child): a reaped or zombie process has no VmRSS line.
  bool died_early = false;
  for (int64_t next_report = t0 + 60'000'000'000LL; NowNs() < kill_at;) {
    SleepMs(50);
    if (ProcStatusKb(srv.pid(), "VmRSS:") < 0 || log.server_died) {
      died_early = true;
      break;
    }
    if (NowNs() >= next_report) {
      next_report += 60'000'000'000LL;
      std::printf("  %.0f s: %" PRIu64 " events accepted, %" PRIu64
                  " deliveries received, %s max so far %.1f MB\n",
                  Secs(NowNs() - t0), log.accepted, h.rx.count(), res.wal_name.c_str(),
                  static_cast<double>(sampler.MaxWal()) / 1e6);
      std::fflush(stdout);
    }
  }
  const bool load_running = !died_early && log.t_first_send > 0 && log.accepted < uint64_t(n);
  res.load_cpu = cpu.End();
  res.pg_cpu = store.ServerCpu() - pg0;
  res.wal_at_kill = probe().wal;
  const pid_t old_pid = srv.pid();
  const int64_t t_kill = NowNs();
  kill(old_pid, SIGKILL);
  pub.join();  // the publisher sees the child die within 100 ms and stops
  sampler.Stop();
  srv.Alive();
  if (store.pg()) res.wal_generated = store.WalPosition() - lsn0;
  res.load_s = Secs(t_kill - t0);
  res.accepted = log.accepted;
  res.received_at_kill = h.rx.count();
  res.max_wal = sampler.MaxWal();
  res.trace = sampler.WalTrace();
  if (died_early) problems.push_back("server died before the kill");
  if (!load_running) problems.push_back("the load was not running at the kill");

  // Restart on the same store.
  Server again;
  ServerSpec spec2;
  spec2.name = "restart";
  spec2.db = "sqlite:" + dir + "/outbound.db";
  store.Apply(&spec2);
  spec2.extra = spec.extra;
  const uint64_t count_before = h.rx.count();
  const int64_t t_exec = NowNs();
  std::string err;
  if (!again.Start(opt.bin, dir, spec2, &err)) {
    problems.push_back("restart failed: " + err);
  } else {
    Api api(again.base());
    for (int i = 0; i < 12000; ++i) {  // 60 s at most
      Resp r = api.Call("GET", "/healthz", "", nullptr, 1000);
      if (r.status == 200) {
        res.healthz_s = Secs(NowNs() - t_exec);
        break;
      }
      SleepMs(5);
    }
    if (std::isnan(res.healthz_s)) problems.push_back("/healthz never answered 200 within 60 s");
    // The first request after the fork, bounded (a lease left by the dead process may hold its
    // deliveries for --lease, 30 s by default).
    for (int i = 0; i < 12000 && h.rx.count() == count_before && again.Alive(); ++i) SleepMs(5);
    int64_t first = 0;
    for (const Received& r : h.rx.Take())
      if (r.t_ns > t_exec && (first == 0 || r.t_ns < first)) first = r.t_ns;
    if (first > 0)
      res.resumed_s = Secs(first - t_exec);
    else
      problems.push_back("no resumed attempt reached the receiver within 60 s");
  }
  // Every accepted event at every subscription, bounded.
  res.expected = res.accepted * static_cast<uint64_t>(k);
  // Counted as unique (event, subscription) pairs (the receiver's count includes the duplicates
  // the restart resends); until complete, or nothing new for 40 s (longer than the default 30 s
  // lease a dead process's claims may hold), at most 3 phase timeouts.
  res.tally = CountDeliveries(h.rx.Take(), log, k);
  {
    const int64_t until = NowNs() + static_cast<int64_t>(opt.phase_timeout * 3e9);
    uint64_t last = h.rx.count();
    int64_t last_change = NowNs();
    while (res.tally.unique < res.expected && NowNs() < until && again.pid() > 0 && again.Alive() &&
           Secs(NowNs() - last_change) < 40) {
      SleepMs(2000);
      if (h.rx.count() != last) {
        last = h.rx.count();
        last_change = NowNs();
      }
      res.tally = CountDeliveries(h.rx.Take(), log, k);
    }
  }
  res.sigs = CheckSamples(h.rx.Samples(), fx);
  if (res.tally.unique < res.expected)
    problems.push_back(std::to_string(res.expected - res.tally.unique) + " of " +
                       std::to_string(res.expected) +
                       " deliveries of accepted events never arrived");
  if (!res.sigs.ok()) problems.push_back("signatures: " + res.sigs.Text());
  res.wal_after = probe().wal;
  h.Finish(again, (res.store + " restart").c_str());
  return true;
}

struct WalVerdicts {
  std::string wal, restart;
};
WalVerdicts Judge(const WalResult& r) {
  std::vector<std::string> why = r.problems;
  if (r.load_s < 600) why.push_back(Fmt("%.0f s of load, the goal is stated for 600 s", r.load_s));
  const std::string incomplete = "NOT MET (INCOMPLETE: " + JoinReasons(why) + ")";
  auto verdict = [&](bool ok) { return !why.empty() ? incomplete : ok ? "met" : "NOT MET"; };
  return {verdict(static_cast<double>(r.max_wal) <= kGoalWalMb * 1024 * 1024),
          verdict(r.healthz_s <= kGoalRestartS && r.resumed_s <= kGoalRestartS)};
}

void PrintWal(const WalResult& r) {
  const WalVerdicts v = Judge(r);
  std::printf("\n---- %s ----\n", r.store.c_str());
  std::printf("load: %.1f s, %" PRIu64 " events accepted (%.0f/s), %" PRIu64
              " deliveries received before the kill (%.0f/s), K=%d\n",
              r.load_s, r.accepted, static_cast<double>(r.accepted) / r.load_s, r.received_at_kill,
              static_cast<double>(r.received_at_kill) / r.load_s, r.k);
  std::printf("  ");
  PrintCpu(r.load_cpu);
  if (r.pg)
    std::printf(
        "      PostgreSQL server CPU over the load %.2f s; WAL generated %.1f MB (%.1f MB/s)\n",
        r.pg_cpu, static_cast<double>(r.wal_generated) / 1e6,
        static_cast<double>(r.wal_generated) / 1e6 / std::max(1e-9, r.load_s));
  std::printf("  %s samples (s: MB):", r.wal_name.c_str());
  for (size_t i = 0; i < r.trace.size(); i += std::max<size_t>(1, r.trace.size() / 12))
    std::printf(" %.0f: %.1f", r.trace[i].first, static_cast<double>(r.trace[i].second) / 1e6);
  std::printf("\n");
  std::printf(
      "%s: max %.1f MB over %.0f s of load (%zu samples; at the kill %.1f MB; after the "
      "restart's drain %.1f MB)%s   goal <= %.0f MB: %s\n",
      r.wal_name.c_str(), static_cast<double>(r.max_wal) / 1e6, r.load_s, r.trace.size(),
      static_cast<double>(r.wal_at_kill) / 1e6, static_cast<double>(r.wal_after) / 1e6,
      r.pg ? (" (PostgreSQL's own checkpoints: " + r.wal_settings + ")").c_str() : "", kGoalWalMb,
      v.wal.c_str());
  std::printf(
      "restart after kill -9 of Outbound (lease %s): /healthz 200 after %.3f s, first resumed "
      "attempt received after %.3f s (from the fork)   goal <= %.0f s each: %s\n",
      r.lease > 0 ? (std::to_string(r.lease) + " s").c_str() : "default", r.healthz_s, r.resumed_s,
      kGoalRestartS, v.restart.c_str());
  std::printf("after the restart: %" PRIu64 " of %" PRIu64
              " deliveries of accepted events "
              "received (%" PRIu64 " duplicates: at least once); signatures: %s\n",
              r.tally.unique, r.expected, r.tally.duplicates, r.sigs.Text().c_str());
  if (!r.problems.empty()) std::printf("INCOMPLETE: %s\n", JoinReasons(r.problems).c_str());
}

std::string Short(const std::string& verdict) {
  return verdict.find("INCOMPLETE") != std::string::npos ? "INCOMPLETE" : verdict;
}

}  // namespace

int RunWal(Harness& h) {
  StoreServers servers;
  if (!OpenStores(h, &servers)) return 1;
  const std::vector<StoreChoice> stores = StoreList(h, servers);
  std::vector<WalResult> results(stores.size());
  for (size_t i = 0; i < stores.size(); ++i) {
    if (!LoadKillRestart(h, stores[i].pg, static_cast<int>(i + 1), &results[i])) {
      std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
      return 1;
    }
  }
  std::printf("\n================ Outbound WAL and restart benchmark ================\n");
  if (servers.pg) std::printf("%s\n", servers.pg->Text().c_str());
  for (const WalResult& r : results) PrintWal(r);
  std::printf("\nper store, side by side (the same scenario, one run; verdicts as above):\n");
  std::printf("  %-10s %9s %10s %12s %10s %10s %12s  %s\n", "store", "events/s", "deliv/s",
              "WAL max MB", "healthz s", "resumed s", "lost", "verdicts (WAL; restart)");
  for (const WalResult& r : results) {
    const WalVerdicts v = Judge(r);
    std::printf("  %-10s %9.0f %10.0f %12.1f %10.3f %10.3f %12" PRIu64 "  %s; %s\n",
                r.store.c_str(), static_cast<double>(r.accepted) / r.load_s,
                static_cast<double>(r.received_at_kill) / r.load_s,
                static_cast<double>(r.max_wal) / 1e6, r.healthz_s, r.resumed_s,
                r.expected > r.tally.unique ? r.expected - r.tally.unique : 0, Short(v.wal).c_str(),
                Short(v.restart).c_str());
  }
  PrintServers(h);
  return 0;
}

}  // namespace bench
