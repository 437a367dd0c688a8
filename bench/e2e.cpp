// The default mode: the bare sender before, Outbound's throughput at K = 1 and 10, single
// publishes alone (K = 1, the subscription paused), its latency at a steady rate, the bare sender
// after; then the report.
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <utility>

#include "baseline.h"
#include "harness.h"

namespace bench {

int RunEndToEnd(Harness& h, double idle_busy_pct) {
  const Options& opt = h.opt;
  const bool have_bin = access(opt.bin.c_str(), X_OK) == 0;
  if (!have_bin && !opt.only_baseline) {
    std::fprintf(stderr, "e2e_bench: %s is not an executable (--bin PATH or OUTBOUND_BIN)\n",
                 opt.bin.c_str());
    return 1;
  }
  size_t body = 0;
  if (!BaselineBodySize(h, have_bin, &body)) return 1;
  std::vector<std::pair<std::string, BaselineResult>> bases;
  // --raw-sender's runs: printed beside the baseline, never the reference of a ratio.
  std::vector<std::pair<std::string, BaselineResult>> raws;
  auto baseline = [&](const char* when) {
    for (CurlLoop loop : {CurlLoop::kPerform, CurlLoop::kSocket}) {
      bases.emplace_back(when, RunBaseline(h.rx, opt.baseline, opt.base_concurrency,
                                           opt.phase_timeout, loop, body));
      PrintBaseline(bases.back().first, bases.back().second);
      std::fflush(stdout);
    }
    if (opt.raw_sender) {
      raws.emplace_back(
          when, RunRawBaseline(h.rx, opt.baseline, opt.base_concurrency, opt.phase_timeout, body));
      PrintBaseline(raws.back().first, raws.back().second);
      std::fflush(stdout);
    }
  };
  baseline("before");
  if (bases[0].second.ok == 0 || bases[1].second.ok == 0) {
    std::fprintf(stderr, "e2e_bench: the baseline sender delivered nothing: harness failure\n");
    return 1;
  }
  if (opt.only_baseline) return 0;

  std::vector<ThroughputResult> tputs;
  for (int k : {1, 10}) {
    ThroughputResult r;
    std::printf("running: outbound throughput, K=%d, %d events...\n", k, opt.events);
    std::fflush(stdout);
    if (!h.Throughput(k, &r)) {
      std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
      return 1;
    }
    tputs.push_back(r);
  }
  // Ingest alone: the K=1 run's publishes, its subscription paused, so that each event's rows are
  // stored (its delivery held) and nothing is sent meanwhile, as --batch-held does for the batch
  // route; the deliveries go out after the last 202 and must all arrive.
  ThroughputResult ingest;
  std::printf("running: single publishes alone, K=1 paused, %d events...\n", opt.events);
  std::fflush(stdout);
  if (!h.Throughput(1, &ingest, /*held=*/true)) {
    std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
    return 1;
  }
  LatencyResult lat;
  std::printf("running: outbound latency, %d events/s for %.1f s (after %.1f s warm-up)...\n",
              opt.rate, opt.latency_seconds, opt.warmup_seconds);
  std::fflush(stdout);
  if (!h.Latency(&lat)) {
    std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
    return 1;
  }
  baseline("after");
  double base = 0;
  for (auto& [when, b] : bases) base = std::max(base, b.rps);

  std::printf("\n================ Outbound end-to-end benchmark ================\n");
  std::printf("machine: %ld cores; busy before the run (other processes): %.0f%%\n",
              sysconf(_SC_NPROCESSORS_ONLN), idle_busy_pct);
  std::printf(
      "baseline: bare libcurl multi sender, %d in flight, keep-alive, signed bodies of %zu B\n",
      opt.base_concurrency, body);
  for (auto& [when, b] : bases) PrintBaseline(when, b);
  std::printf("  reference used for ratios (the highest): %.0f req/s\n", base);
  for (auto& [when, b] : raws) PrintBaseline(when, b);
  std::printf("\n");

  PrintThroughput(tputs, base);
  PrintLatency(opt, lat);
  std::printf("\nservers:\n");
  for (auto& s : h.servers) {
    std::string stop = s.was_dead           ? std::string("had already died")
                       : s.stop_seconds < 0 ? std::string("SIGTERM ignored for 15 s, SIGKILLed")
                                            : Fmt("SIGTERM -> exit %.2f s", s.stop_seconds);
    std::printf("  %-18s %s (%s%s); log %zu lines, %zu error-ish, %zu warning-ish; db %.1f MB\n",
                s.label.c_str(), stop.c_str(), s.exit_text.c_str(),
                s.clean ? ", clean" : ", NOT CLEAN", s.log_lines, s.log_errors, s.log_warnings,
                static_cast<double>(s.db_bytes) / 1e6);
    for (auto& l : s.log_samples) std::printf("      log: %s\n", l.c_str());
  }
  // ARCHITECTURE.md, "Goals": single publishes >= 0.5 x the bare sender's requests/s; judged on
  // the K=1 run, and only when that run is complete.
  const ThroughputResult& k1 = tputs[0];
  const double ingest_ratio = base > 0 ? k1.ingest_rate / base : 0;
  const std::string k1_problems = k1.Problems();
  std::printf(
      "ingest goal (single publishes >= 0.5 x the bare sender, K=1 run): %s (%.0f events/s, "
      "%.3f x)%s%s\n",
      k1_problems.empty() && ingest_ratio >= 0.5 ? "met" : "NOT MET", k1.ingest_rate, ingest_ratio,
      k1_problems.empty() ? "" : "; INCOMPLETE: ", k1_problems.c_str());
  // The same goal read on publishing alone (ARCHITECTURE.md's ingest goal names no deliveries;
  // docs/PERFORMANCE.md says which reading the status table takes).
  const double alone_ratio = base > 0 ? ingest.ingest_rate / base : 0;
  const std::string alone_problems = ingest.Problems();
  const double per_event =
      ingest.accepted > 0 ? ingest.cpu.outbound * 1e6 / static_cast<double>(ingest.accepted) : 0;
  std::printf(
      "ingest goal, publishing alone (K=1, the subscription paused while publishing): %s (%.0f "
      "events/s, %.3f x; Outbound %.1f us of CPU per event, %.2f s)%s%s\n",
      alone_problems.empty() && alone_ratio >= 0.5 ? "met" : "NOT MET", ingest.ingest_rate,
      alone_ratio, per_event, ingest.ingest_seconds,
      alone_problems.empty() ? "" : "; INCOMPLETE: ", alone_problems.c_str());
  PrintCpu(ingest.cpu);
  if (opt.keep_logs) {
    for (auto& d : h.dirs) std::printf("kept: %s\n", d.c_str());
  }
  return 0;
}

}  // namespace bench
