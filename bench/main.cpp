// End-to-end benchmark of Outbound (ARCHITECTURE.md, "Goals"; results in docs/PERFORMANCE.md).
//
// One run measures, against ONE in-process receiver (single-threaded epoll HTTP/1.1 on
// 127.0.0.1, keep-alive, answers 200 with an empty body):
//   1. baseline: a bare single-threaded libcurl multi sender (keep-alive, ~64 transfers in
//      flight, JSON bodies exactly as long as Outbound's webhook bodies in the same scenario
//      (measured from a short probe run, or --baseline-body), Standard Webhooks signing per
//      request with core::Sign); measured before and after the Outbound runs (the machine is
//      shared and noisy);
//   2. Outbound throughput: the real binary on a fresh SQLite file, K = 1 and K = 10
//      subscriptions to the receiver, N events published as fast as possible over keep-alive
//      connections; deliveries/s = N*K / (first publish sent -> last delivery received), and the
//      ingest rate N / (first publish sent -> last 202); "met" only for a complete run (every
//      event accepted, every delivery received, every sampled signature verified);
//   3. Outbound latency: a fresh server, K = 1, a steady 1,000 events/s for a few seconds;
//      percentiles over every event of publish sent -> received (the headline) and of 202
//      received -> received (negative when the webhook came first); an event not accepted or
//      never received counts as infinitely late.
// Every 50th webhook received is kept and its Standard Webhooks signature verified.
// Traffic goes to 127.0.0.1 only. Every loop is bounded in count and in time. The exit status is
// non-zero only when the harness itself fails (the server cannot be started or set up, the
// receiver cannot bind...), never because a figure is slow.
//
//   4. with --isolation, instead of 1-3: endpoint isolation (ISSUE 3). The 18 healthy
//      subscriptions of K = 20, plus in the hanging run every tenth (s9, s19), which hangs: the
//      receiver reads its requests and never answers. The healthy 18's deliveries/s (first
//      publish -> last healthy delivery) against the same 18's, with the same events, in runs
//      without the hanging ones, before and after (goal: ratio >= 0.9); a short request
//      timeout and a window of several timeouts, so the hung lanes time out and retry while
//      measured (isolation.cpp).
//
//   5. with --scaleout, instead of 1-3: scale-out on PostgreSQL. In one run, against the same
//      receiver: the bare sender (before and after), then for each K of --scaleout-k: one process
//      on SQLite, one process on PostgreSQL, three `all` processes on PostgreSQL, and one `api`
//      plus two `worker` processes on PostgreSQL, each on a fresh database. For each:
//      deliveries/s and its ratio to the bare sender; CPU per delivery of the Outbound processes
//      (sum of /proc/PID/stat utime+stime) and of the PostgreSQL server (the postmaster and its
//      children, exited ones included through the postmaster's cutime+cstime); round trips to
//      the database per event (outbound_store_round_trips_total from /metrics, summed over the
//      processes). The bench starts its own throwaway cluster (scripts/pg-test-cluster.sh) and
//      always stops it, or uses --pg-dsn (a role with CREATEDB; the server's CPU is read from
//      /proc only when it runs on this machine).
//
//   e2e_bench [--bin PATH] [--events N] [--quick] [--baseline N] [--concurrency C]
//             [--rate R] [--latency-seconds S] [--phase-timeout S] [--total-timeout S]
//             [--only-baseline] [--baseline-body B] [--request-timeout S]
//             [--isolation [--isolation-events N | --isolation-window S]
//                          [--isolation-sparse-every M]]
//             [--scaleout [--scaleout-k K,...] [--pg-dsn URL] [--pg-script PATH]]
//             [--history [--history-rows N] [--history-events M]]
//             [--backlog [--backlog-waiting N] [--backlog-rate R] [--backlog-csv PATH]]
//             [--stage-timeout S] [--wal [--wal-seconds S] [--wal-k K]]
//             [--stores sqlite,pg,pg3] [--pg-max-wal-size SIZE] [--wal-lease S]
//             [--tmp DIR] [--keep-logs]
//   6. --history, --backlog, --wal, instead of 1-3 (issue 8; history.cpp, backlog.cpp, wal.cpp):
//      per-event CPU with a big store against an empty one; a backlog of waiting deliveries
//      filled, recovered and drained (memory, disk, drain rate, a healthy client's latency);
//      the WAL's size under sustained load, then kill -9 and the time to /healthz and to the
//      first resumed attempt.
//      --stores sqlite,pg runs each of them (and --batch) on SQLite and on PostgreSQL (the cluster
//      of --scaleout, or --pg-dsn) in one run and prints the figures side by side, a verdict per
//      store (pg3:
//      --backlog on PostgreSQL with one api and two worker processes).
#include <curl/curl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "harness.h"

namespace bench {
namespace {

int Main(int argc, char** argv) {
  Options opt = ParseOptions(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  // The stop signals go to one thread, which stops the PostgreSQL cluster (if the bench started
  // one: it would outlive us) and exits; blocked before any other thread exists.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::thread([stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fprintf(stderr, "e2e_bench: signal %d: stopping\n", sig);
    StopCluster();
    std::fflush(stdout);
    _exit(128 + sig);
  }).detach();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  // Watchdog: whatever happens, the program ends (the child dies with us: PR_SET_PDEATHSIG).
  std::thread([limit = opt.total_timeout] {
    std::this_thread::sleep_for(std::chrono::duration<double>(limit));
    std::fprintf(stderr, "e2e_bench: watchdog: still running after %.0f s, giving up\n", limit);
    StopCluster();
    std::fflush(stdout);
    _exit(3);
  }).detach();

  Harness h;
  h.opt = opt;
  double idle_busy_pct = 0;
  std::string err;
  if (!h.rx.Start(&err)) {
    std::fprintf(stderr, "e2e_bench: receiver: %s\n", err.c_str());
    return 1;
  }
  std::printf(
      "e2e_bench: receiver on 127.0.0.1:%d; %ld cores; events N=%d, baseline %d requests, publish "
      "concurrency %d, latency %d events/s for %.1f s\n",
      h.rx.port(), sysconf(_SC_NPROCESSORS_ONLN), opt.events, opt.baseline, opt.concurrency,
      opt.rate, opt.latency_seconds);
  std::fflush(stdout);

  {
    MachineCpu m0 = ReadMachineCpu();
    SleepMs(1000);
    MachineCpu m1 = ReadMachineCpu();
    idle_busy_pct = 100.0 * static_cast<double>(m1.busy - m0.busy) /
                    static_cast<double>(std::max<uint64_t>(1, m1.total - m0.total));
    std::printf("machine busy before the run (1 s sample, other processes): %.0f%%\n",
                idle_busy_pct);
  }
  if (opt.isolation) return RunIsolation(h);
  if (opt.scaleout) return RunScaleout(h, idle_busy_pct);
  if (opt.history) return RunHistory(h);
  if (opt.backlog) return RunBacklog(h);
  if (opt.wal) return RunWal(h);
  if (opt.batch) return RunBatch(h);
  if (opt.latency_floor) return RunLatencyFloor(h);
  return RunEndToEnd(h, idle_busy_pct);
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) { return bench::Main(argc, argv); }
