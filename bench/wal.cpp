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
#include <signal.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>

#include "harness.h"
#include "scenario.h"

namespace bench {

namespace {
constexpr double kGoalWalMb = 64, kGoalRestartS = 2;
}  // namespace

int RunWal(Harness& h) {
  const Options& opt = h.opt;
  const int k = opt.wal_k;
  Server srv;
  Fixture fx;
  if (!h.Fresh(srv, "wal", FirstPaths(k), &fx)) {
    std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
    return 1;
  }
  const std::string dir = h.dirs.back(), db = dir + "/outbound.db";
  h.rx.Reset();
  std::vector<std::string> problems;
  const int n = static_cast<int>(std::min(3'000'000.0, 5000 * opt.wal_seconds));
  PublishLog log;
  log.Init(n);
  std::printf("wal: K=%d, full load for %.0f s (at most %d events), then kill -9 and restart\n", k,
              opt.wal_seconds, n);
  std::fflush(stdout);
  Sampler sampler(srv.pid(), db, 100);
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
                  " deliveries received, WAL max so far %.1f MB\n",
                  Secs(NowNs() - t0), log.accepted, h.rx.count(),
                  static_cast<double>(sampler.MaxWal()) / 1e6);
      std::fflush(stdout);
    }
  }
  const bool load_running = !died_early && log.t_first_send > 0 && log.accepted < uint64_t(n);
  CpuWindow load_cpu = cpu.End();
  const uint64_t wal_at_kill = FileBytes(db + "-wal");
  const pid_t old_pid = srv.pid();
  const int64_t t_kill = NowNs();
  kill(old_pid, SIGKILL);
  pub.join();  // the publisher sees the child die within 100 ms and stops
  sampler.Stop();
  srv.Alive();
  const double load_s = Secs(t_kill - t0);
  const uint64_t accepted = log.accepted;
  const uint64_t received_at_kill = h.rx.count();
  const uint64_t max_wal = sampler.MaxWal();
  if (died_early) problems.push_back("server died before the kill");
  if (!load_running) problems.push_back("the load was not running at the kill");

  // Restart on the same file.
  Server again;
  ServerSpec spec;
  spec.name = "restart";
  spec.db = "sqlite:" + db;
  if (opt.request_timeout > 0)
    spec.extra = {"--request-timeout", std::to_string(opt.request_timeout) + "s"};
  const uint64_t count_before = h.rx.count();
  const int64_t t_exec = NowNs();
  std::string err;
  double healthz_s = NAN, resumed_s = NAN;
  if (!again.Start(opt.bin, dir, spec, &err)) {
    problems.push_back("restart failed: " + err);
  } else {
    Api api(again.base());
    for (int i = 0; i < 12000; ++i) {  // 60 s at most
      Resp r = api.Call("GET", "/healthz", "", nullptr, 1000);
      if (r.status == 200) {
        healthz_s = Secs(NowNs() - t_exec);
        break;
      }
      SleepMs(5);
    }
    if (std::isnan(healthz_s)) problems.push_back("/healthz never answered 200 within 60 s");
    // The first request after the fork, bounded (a lease left by the dead process may hold its
    // deliveries for --lease, 30 s by default).
    for (int i = 0; i < 12000 && h.rx.count() == count_before && again.Alive(); ++i) SleepMs(5);
    int64_t first = 0;
    for (const Received& r : h.rx.Take())
      if (r.t_ns > t_exec && (first == 0 || r.t_ns < first)) first = r.t_ns;
    if (first > 0)
      resumed_s = Secs(first - t_exec);
    else
      problems.push_back("no resumed attempt reached the receiver within 60 s");
  }
  // Every accepted event at every subscription, bounded.
  const uint64_t expected = accepted * static_cast<uint64_t>(k);
  // Counted as unique (event, subscription) pairs (the receiver's count includes the duplicates
  // the restart resends); until complete, or nothing new for 40 s (longer than the default 30 s
  // lease a dead process's claims may hold), at most 3 phase timeouts.
  Tally tally = CountDeliveries(h.rx.Take(), log, k);
  {
    const int64_t until = NowNs() + static_cast<int64_t>(opt.phase_timeout * 3e9);
    uint64_t last = h.rx.count();
    int64_t last_change = NowNs();
    while (tally.unique < expected && NowNs() < until && again.pid() > 0 && again.Alive() &&
           Secs(NowNs() - last_change) < 40) {
      SleepMs(2000);
      if (h.rx.count() != last) {
        last = h.rx.count();
        last_change = NowNs();
      }
      tally = CountDeliveries(h.rx.Take(), log, k);
    }
  }
  SignatureTally sigs = CheckSamples(h.rx.Samples(), fx);
  if (tally.unique < expected)
    problems.push_back(std::to_string(expected - tally.unique) + " of " + std::to_string(expected) +
                       " deliveries of accepted events never arrived");
  if (!sigs.ok()) problems.push_back("signatures: " + sigs.Text());
  const uint64_t wal_after = FileBytes(db + "-wal");
  h.Finish(again, "restart");

  std::printf("\n================ Outbound WAL and restart benchmark ================\n");
  std::printf("load: %.1f s, %" PRIu64 " events accepted (%.0f/s), %" PRIu64
              " deliveries received before the kill (%.0f/s), K=%d\n",
              load_s, accepted, static_cast<double>(accepted) / load_s, received_at_kill,
              static_cast<double>(received_at_kill) / load_s, k);
  std::printf("  ");
  PrintCpu(load_cpu);
  auto trace = sampler.WalTrace();
  std::printf("  WAL samples (s: MB):");
  for (size_t i = 0; i < trace.size(); i += std::max<size_t>(1, trace.size() / 12))
    std::printf(" %.0f: %.1f", trace[i].first, static_cast<double>(trace[i].second) / 1e6);
  std::printf("\n");
  const bool complete = problems.empty();
  std::vector<std::string> why = problems;
  if (load_s < 600) why.push_back(Fmt("%.0f s of load, the goal is stated for 600 s", load_s));
  const std::string incomplete = "NOT MET (INCOMPLETE: " + JoinReasons(why) + ")";
  auto verdict = [&](bool ok) { return !why.empty() ? incomplete : ok ? "met" : "NOT MET"; };
  std::printf(
      "WAL: max %.1f MB over %.0f s of load (%zu samples; at the kill %.1f MB; after the "
      "restart's drain %.1f MB)   goal <= %.0f MB: %s\n",
      static_cast<double>(max_wal) / 1e6, load_s, trace.size(),
      static_cast<double>(wal_at_kill) / 1e6, static_cast<double>(wal_after) / 1e6, kGoalWalMb,
      verdict(static_cast<double>(max_wal) <= kGoalWalMb * 1024 * 1024).c_str());
  std::printf(
      "restart after kill -9: /healthz 200 after %.3f s, first resumed attempt received "
      "after %.3f s (from the fork)   goal <= %.0f s each: %s\n",
      healthz_s, resumed_s, kGoalRestartS,
      verdict(healthz_s <= kGoalRestartS && resumed_s <= kGoalRestartS).c_str());
  std::printf("after the restart: %" PRIu64 " of %" PRIu64
              " deliveries of accepted events "
              "received (%" PRIu64 " duplicates: at least once); signatures: %s\n",
              tally.unique, expected, tally.duplicates, sigs.Text().c_str());
  if (!complete) std::printf("INCOMPLETE: %s\n", JoinReasons(problems).c_str());
  PrintServers(h);
  return 0;
}

}  // namespace bench
