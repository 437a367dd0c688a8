// Latency against its floor (--latency-floor; issue 8): at --rate events/s, open loop, publish
// sent -> received p99 <= the floor + 3 ms, where the floor is the bare sender's p99 plus an
// fsync's p99, both measured in the same run; the median of --latency-runs runs (3); a run with
// more than 5 % CPU steal is discarded and said so. With --stores sqlite,pg each store has its
// runs, the stores taking turns run by run, and a verdict of its own (--latency-csv numbers the
// phases in the order they ran: with two stores, the odd phases are the first store's).
//
// One run:
//   bare:    the bare libcurl sender (the baseline's signed bodies, as long as Outbound's
//            webhooks) paced at --rate requests/s for --latency-seconds, 64 connections:
//            request sent -> received by the receiver, per request.
//   fsync:   a 4 KiB append + fdatasync in the run's directory (the file system of the store),
//            as many as the bare sender's requests (at most 2,000), back to back.
//   outbound: the latency phase of the default mode (a fresh server, K = 1, a warm-up, then
//            --rate events/s for --latency-seconds): publish sent -> received.
//   steal:   the machine's steal time over the run (/proc/stat) as a share of all CPU time.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "baseline.h"
#include "core/signing.h"
#include "harness.h"
#include "scenario.h"
#include "stores.h"

namespace bench {
namespace {

constexpr double kGoalMarginMs = 3.0, kMaxStealPct = 5.0;

// The bare sender paced at `rate`: send -> receive milliseconds of every request, sorted (a
// request that failed or never arrived is infinitely late).
std::vector<double> PacedBare(Receiver& rx, int rate, double seconds, size_t body_bytes,
                              double time_limit) {
  namespace core = outbound::core;
  const int n = std::max(1, static_cast<int>(rate * seconds));
  rx.Reset();
  const std::string key = core::DecodeSecret(core::NewSecret()).value();
  const std::string url = "http://127.0.0.1:" + std::to_string(rx.port()) + "/base";
  const std::string pad = Pad(body_bytes);
  std::vector<std::string> bodies(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    bodies[static_cast<size_t>(i)] = BaselineBodyOfSize(i, body_bytes, pad);
  std::vector<int64_t> sent(static_cast<size_t>(n), 0);
  std::vector<bool> ok(static_cast<size_t>(n), false);
  MultiPool pool(64, CurlLoop::kSocket);
  for (auto& s : pool.slots()) {
    curl_easy_setopt(s.easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(s.easy, CURLOPT_WRITEFUNCTION, DiscardWrite);
  }
  const int64_t period = 1'000'000'000LL / rate;
  const int64_t t0 = NowNs() + 10'000'000, deadline = t0 + static_cast<int64_t>(time_limit * 1e9);
  int next = 0, done = 0;
  while (done < n && NowNs() < deadline) {
    while (next < n && t0 + next * period <= NowNs() && pool.busy() < 64) {
      Slot* s = pool.Free();
      s->seq = next;
      PrepareBaselineRequest(s, key, bodies[static_cast<size_t>(next)]);
      sent[static_cast<size_t>(next)] = NowNs();
      pool.Start(s);
      ++next;
    }
    pool.Pump([&](Slot* s, CURLcode rc, long status) {
      ++done;
      ok[static_cast<size_t>(s->seq)] = rc == CURLE_OK && status == 200;
    });
    // Until the next send if a slot is free for it, else until a transfer moves: slept.
    const int64_t wait_ns =
        next < n && pool.busy() < 64 ? t0 + next * period - NowNs() : 100'000'000;
    pool.WaitNs(std::clamp<int64_t>(wait_ns, 0, 100'000'000));
  }
  for (int i = 0; i < 100 && rx.count() < static_cast<uint64_t>(done); ++i) SleepMs(10);
  std::unordered_map<std::string, int64_t> got;
  for (const Received& r : rx.Take()) got.emplace(std::string(r.id.data()), r.t_ns);
  std::vector<double> ms;
  ms.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    char id[40];
    std::snprintf(id, sizeof id, "evt_%026d", i);
    auto it = got.find(id);
    ms.push_back(!ok[static_cast<size_t>(i)] || it == got.end()
                     ? INFINITY
                     : static_cast<double>(it->second - sent[static_cast<size_t>(i)]) / 1e6);
  }
  std::sort(ms.begin(), ms.end());
  return ms;
}

// `n` appends of 4 KiB, each followed by fdatasync, in `dir`: milliseconds each, sorted.
std::vector<double> FsyncTimes(const std::string& dir, int n, std::string* err) {
  const std::string path = dir + "/fsync.probe";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  std::vector<double> ms;
  if (fd < 0) {
    *err = "open " + path;
    return ms;
  }
  const std::string block(4096, 'x');
  const int64_t deadline = NowNs() + 60'000'000'000LL;
  for (int i = 0; i < n && NowNs() < deadline; ++i) {
    const int64_t t0 = NowNs();
    if (write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size()) ||
        fdatasync(fd) != 0) {
      *err = "write/fdatasync " + path;
      break;
    }
    ms.push_back(static_cast<double>(NowNs() - t0) / 1e6);
  }
  close(fd);
  unlink(path.c_str());
  std::sort(ms.begin(), ms.end());
  return ms;
}

struct FloorRun {
  double bare_p99 = NAN, fsync_p99 = NAN, outbound_p50 = NAN, outbound_p99 = NAN, steal_pct = 0;
  bool discarded = false, complete = false;
  std::string problems;
  double Floor() const { return bare_p99 + fsync_p99; }
};

double Median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// One run on the store `spec` names: the bare sender, the fsync probe in `dir`, then Outbound.
// False (printed) only when the harness cannot do its job.
bool OneRun(Harness& h, size_t body, const std::string& dir, const ServerSpec& spec,
            const char* store, int index, FloorRun* out) {
  const Options& opt = h.opt;
  FloorRun& run = *out;
  const MachineCpu m0 = ReadMachineCpu();
  std::printf("run %d (%s): bare sender at %d/s for %.1f s...\n", index, store, opt.rate,
              opt.latency_seconds);
  std::fflush(stdout);
  const std::vector<double> bare =
      PacedBare(h.rx, opt.rate, opt.latency_seconds, body, opt.phase_timeout);
  run.bare_p99 = Percentile(bare, 0.99);
  std::string err;
  const std::vector<double> fs =
      FsyncTimes(dir, std::min<int>(2000, static_cast<int>(bare.size())), &err);
  if (!err.empty()) {
    std::fprintf(stderr, "e2e_bench: fsync probe: %s\n", err.c_str());
    return false;
  }
  run.fsync_p99 = Percentile(fs, 0.99);
  LatencyResult lat;
  if (!h.Latency(&lat, &spec)) {
    std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
    return false;
  }
  const MachineCpu m1 = ReadMachineCpu();
  run.steal_pct = 100.0 * static_cast<double>(m1.steal - m0.steal) /
                  static_cast<double>(std::max<uint64_t>(1, m1.total - m0.total));
  run.discarded = run.steal_pct > kMaxStealPct;
  run.outbound_p50 = lat.sent_p[0];
  run.outbound_p99 = lat.sent_p[2];
  std::vector<std::string> problems;
  if (lat.accepted < lat.published)
    problems.push_back(std::to_string(lat.published - lat.accepted) + " not accepted");
  if (lat.missing > 0) problems.push_back(std::to_string(lat.missing) + " never received");
  if (lat.server_died) problems.push_back("server died");
  if (!lat.signatures.ok()) problems.push_back("signatures: " + lat.signatures.Text());
  run.problems = JoinReasons(problems);
  run.complete = problems.empty();
  std::printf(
      "  bare p99 %.3f ms, fsync p99 %.3f ms, outbound p50 %.3f p99 %.3f ms, steal "
      "%.1f%%%s\n",
      run.bare_p99, run.fsync_p99, run.outbound_p50, run.outbound_p99, run.steal_pct,
      run.discarded ? " (DISCARDED: steal > 5%)" : "");
  std::printf("  store: %s\n", CommitText(lat.commits_before, lat.commits_after).c_str());
  std::fflush(stdout);
  return true;
}

// The table of one store's runs and its verdict line.
void PrintRuns(const char* store, const std::vector<FloorRun>& runs) {
  std::printf("%s:\n", store);
  std::printf("  %-4s %10s %10s %10s %12s %12s %8s  %s\n", "run", "bare p99", "fsync p99", "floor",
              "outbound p50", "outbound p99", "steal", "");
  std::vector<double> p99s, floors, excess;
  bool complete = true;
  for (size_t i = 0; i < runs.size(); ++i) {
    const FloorRun& r = runs[i];
    std::printf("  %-4zu %10.3f %10.3f %10.3f %12.3f %12.3f %7.1f%%  %s%s\n", i + 1, r.bare_p99,
                r.fsync_p99, r.Floor(), r.outbound_p50, r.outbound_p99, r.steal_pct,
                r.discarded ? "discarded (steal > 5%) " : "",
                r.complete ? "" : ("INCOMPLETE: " + r.problems).c_str());
    if (r.discarded) continue;
    complete = complete && r.complete;
    p99s.push_back(r.outbound_p99);
    floors.push_back(r.Floor());
    excess.push_back(r.outbound_p99 - r.Floor());
  }
  const int kept = static_cast<int>(p99s.size());
  if (kept == 0) {
    std::printf("every run was discarded (steal > 5%%): no verdict\n");
    return;
  }
  // The verdict compares each run's p99 with its own floor: the median of (p99 - floor).
  const double med_excess = Median(excess);
  std::printf(
      "median of %d run(s): outbound p99 %.3f ms, floor %.3f ms, p99 - floor %.3f ms   "
      "goal <= %.0f ms: %s\n",
      kept, Median(p99s), Median(floors), med_excess, kGoalMarginMs,
      !complete                     ? "NOT MET (INCOMPLETE: a run lost or refused events)"
      : kept < 3                    ? "NOT MET (INCOMPLETE: fewer than 3 runs kept)"
      : med_excess <= kGoalMarginMs ? "met"
                                    : "NOT MET");
}

}  // namespace

int RunLatencyFloor(Harness& h) {
  const Options& opt = h.opt;
  size_t body = 0;
  if (!BaselineBodySize(h, true, &body)) return 1;
  StoreServers servers;
  if (!OpenStores(h, &servers)) return 1;
  const std::vector<StoreChoice> stores = StoreList(h, servers);
  const std::string dir = MakeTempDir(opt.tmp, "floor");
  h.dirs.push_back(dir);
  // The stores take turns run by run (run 1 on each, then run 2, ...), so that a change of the
  // machine's load falls on them alike; each run has its own bare sender and fsync probe.
  std::vector<std::vector<FloorRun>> runs(stores.size());
  std::vector<std::string> names(stores.size());
  for (int i = 0; i < opt.latency_runs; ++i) {
    for (size_t s = 0; s < stores.size(); ++s) {
      // A new database per run (PostgreSQL), declared before the run's server.
      RunStore store(stores[s].pg, "floor_" + std::to_string(i + 1) + "_" + std::to_string(s + 1),
                     opt.KeepPgDatabases());
      names[s] = store.Name();
      if (!store.ok()) {
        std::fprintf(stderr, "e2e_bench: %s: %s\n", store.Name(), store.error().c_str());
        return 1;
      }
      ServerSpec spec = BaseSpec(opt);
      store.Apply(&spec);
      FloorRun run;
      if (!OneRun(h, body, dir, spec, store.Name(), i + 1, &run)) return 1;
      runs[s].push_back(run);
    }
  }

  std::printf("\n================ Outbound latency against its floor ================\n");
  std::printf("%d events/s, K=1, %.1f s per run; floor = bare sender p99 + fsync p99 (same run)\n",
              opt.rate, opt.latency_seconds);
  if (servers.pg) std::printf("%s\n", servers.pg->Text().c_str());
  for (size_t s = 0; s < stores.size(); ++s) PrintRuns(names[s].c_str(), runs[s]);
  PrintServers(h);
  return 0;
}

}  // namespace bench
