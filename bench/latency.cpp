// Latency: a fresh server, K = 1, a steady rate of publishes after a warm-up.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <unordered_map>

#include "harness.h"
#include "publish.h"

namespace bench {

bool Harness::Latency(LatencyResult* out, const ServerSpec* spec) {
  Server srv;
  Fixture fx;
  if (spec != nullptr ? !Fresh(srv, "latency", *spec, FirstPaths(1), &fx)
                      : !Fresh(srv, "latency", 1, &fx)) {
    return false;
  }
  LatencyResult& r = *out;
  // Warm-up at the same rate (not measured): connections, caches, the first WAL pages.
  int warm = static_cast<int>(opt.rate * opt.warmup_seconds);
  if (warm > 0) {
    PublishLog wl;
    wl.Init(warm);
    rx.Reset();
    Publish(srv, fx, warm, 64, opt.rate, NowNs() + static_cast<int64_t>(opt.phase_timeout * 1e9),
            &wl, 10'000'000);
    bool died = false;
    AwaitDeliveries(rx, srv, wl.accepted, NowNs() + 10'000'000'000LL, 5.0, &died);
  }
  int n = static_cast<int>(opt.rate * opt.latency_seconds);
  rx.Reset();
  PublishLog log;
  log.Init(n);
  r.commits_before = ScrapeCommits(srv);  // before the CPU window: a scrape costs some
  CpuMeter cpu(srv.pid(), rx.tid());
  int64_t deadline = NowNs() + static_cast<int64_t>(opt.phase_timeout * 1e9);
  Publish(srv, fx, n, 64, opt.rate, deadline, &log);
  r.published = static_cast<uint64_t>(n);
  r.accepted = log.accepted;
  r.errors = log.errors;
  r.max_late_ms = static_cast<double>(log.max_late_ns) / 1e6;
  r.server_died = log.server_died;
  if (log.t_last_ack > log.t_first_send)
    r.achieved_rate = static_cast<double>(log.accepted) / Secs(log.t_last_ack - log.t_first_send);
  if (!r.server_died)
    AwaitDeliveries(rx, srv, log.accepted, std::min(deadline, NowNs() + int64_t{15'000'000'000}),
                    5.0, &r.server_died);
  r.cpu = cpu.End();
  if (srv.Alive()) r.commits_after = ScrapeCommits(srv);
  r.rx_connections = rx.connections();
  r.expect100 = rx.expect100();
  std::vector<Received> recs = rx.Take();
  std::unordered_map<std::string, int64_t> first_recv;
  first_recv.reserve(recs.size() * 2);
  for (auto& rec : recs) {
    if (rec.path != 0) continue;
    auto [it, fresh] = first_recv.emplace(std::string(rec.id.data()), rec.t_ns);
    if (!fresh) it->second = std::min(it->second, rec.t_ns);
  }
  // Every event of the run is a sample: one that was never accepted or never arrived is
  // infinitely late, so more than 1 % of them lost makes the p99 infinite.
  std::vector<double> from_ack, from_sent;
  r.failed = log.failed;
  // --latency-csv: one row per delivered event, in ms since the phase's first send; the file is
  // written anew by the run's first latency phase, and the others (--latency-floor runs several)
  // add theirs, numbered.
  const int phase = ++latency_phases;
  FILE* csv = opt.latency_csv.empty() ? nullptr
                                      : std::fopen(opt.latency_csv.c_str(), phase == 1 ? "w" : "a");
  if (csv != nullptr && phase == 1) std::fprintf(csv, "phase,event,sent_ms,ack_ms,received_ms\n");
  for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
    auto it = log.event_id[i].empty() ? first_recv.end() : first_recv.find(log.event_id[i]);
    if (log.acked[i] == 0 || it == first_recv.end()) {
      if (log.acked[i] != 0) r.missing++;
      from_ack.push_back(INFINITY);
      from_sent.push_back(INFINITY);
      continue;
    }
    r.delivered++;
    if (csv != nullptr)
      std::fprintf(csv, "%d,%zu,%.3f,%.3f,%.3f\n", phase, i,
                   static_cast<double>(log.sent[i] - log.t_first_send) / 1e6,
                   static_cast<double>(log.acked[i] - log.t_first_send) / 1e6,
                   static_cast<double>(it->second - log.t_first_send) / 1e6);
    int64_t d_ack = it->second - log.acked[i];
    if (d_ack < 0) r.received_before_ack++;
    from_ack.push_back(static_cast<double>(d_ack) / 1e6);
    from_sent.push_back(static_cast<double>(it->second - log.sent[i]) / 1e6);
  }
  if (csv != nullptr) std::fclose(csv);
  r.unanswered = static_cast<uint64_t>(n) - log.accepted -
                 std::min(log.failed, static_cast<uint64_t>(n) - log.accepted);
  r.signatures = CheckSamples(rx.Samples(), fx);
  std::sort(from_ack.begin(), from_ack.end());
  std::sort(from_sent.begin(), from_sent.end());
  const double qs[5] = {0.5, 0.9, 0.99, 0.999, 1.0};
  for (int i = 0; i < 5; ++i) {
    r.ack_p[i] = Percentile(from_ack, qs[i]);
    r.sent_p[i] = Percentile(from_sent, qs[i]);
  }
  Finish(srv, "latency K=1");
  return true;
}

void PrintLatency(const Options& opt, const LatencyResult& lat) {
  std::printf("\nlatency at %d events/s, K=1, %.1f s (%" PRIu64 " published, %" PRIu64
              " accepted, %" PRIu64 " delivered; %" PRIu64 " missing, %" PRIu64 " failed, %" PRIu64
              " unanswered: counted as infinitely late):\n",
              opt.rate, opt.latency_seconds, lat.published, lat.accepted, lat.delivered,
              lat.missing, lat.failed, lat.unanswered);
  std::printf("  %-34s %8s %8s %8s %8s %8s\n", "milliseconds", "p50", "p90", "p99", "p99.9", "max");
  auto row = [](const char* label, const double* p) {
    std::printf("  %-34s %8s %8s %8s %8s %8s\n", label, Fmt("%.3f", p[0]).c_str(),
                Fmt("%.3f", p[1]).c_str(), Fmt("%.3f", p[2]).c_str(), Fmt("%.3f", p[3]).c_str(),
                Fmt("%.3f", p[4]).c_str());
  };
  row("publish sent -> received", lat.sent_p);
  row("202 received -> received", lat.ack_p);
  // The headline is publish sent -> received: a webhook that arrives before its 202 still took
  // that long. A verdict needs every sampled signature verified.
  const bool sig_ok = lat.signatures.ok();
  std::printf(
      "  goal (publish sent -> received): p50 < 2 ms %s, p99 < 5 ms %s%s; received before the "
      "202 (negative above): %" PRIu64 "; achieved rate %.0f/s, worst send lateness %.2f ms\n",
      sig_ok && lat.sent_p[0] < 2.0 ? "met" : "NOT MET",
      sig_ok && lat.sent_p[2] < 5.0 ? "met" : "NOT MET",
      sig_ok ? "" : " (signatures did not verify)", lat.received_before_ack, lat.achieved_rate,
      lat.max_late_ms);
  std::printf("      signatures of sampled webhooks: %s\n", lat.signatures.Text().c_str());
  PrintCpu(lat.cpu);
  std::printf("      store: %s\n", CommitText(lat.commits_before, lat.commits_after).c_str());
  std::printf("      new connections to the receiver %" PRIu64 ", Expect: 100-continue %" PRIu64
              "%s\n",
              lat.rx_connections, lat.expect100, lat.server_died ? "; SERVER DIED" : "");
  for (auto& e : lat.errors) std::printf("  error sample: %s\n", e.c_str());
}

}  // namespace bench
