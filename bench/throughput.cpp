// Throughput: N events published as fast as the connections allow, K subscriptions each.
#include <cinttypes>
#include <cstdio>

#include "harness.h"
#include "publish.h"

namespace bench {

bool Harness::Throughput(int k, ThroughputResult* out, bool held) {
  Server srv;
  Fixture fx;
  std::string tag = "k" + std::to_string(k) + (held ? "-held" : "");
  if (!Fresh(srv, tag.c_str(), k, &fx)) return false;
  ThroughputResult& r = *out;
  r.k = k;
  r.events = opt.events;
  if (held) r.pause_errors = SetPaused(srv, fx, true);
  rx.Reset();
  PublishLog log;
  log.Init(opt.events);
  r.commits_before = ScrapeCommits(srv);  // before the CPU window: a scrape costs some
  CpuMeter cpu(srv.pid(), rx.tid());
  int64_t t0 = NowNs();
  int64_t deadline = t0 + static_cast<int64_t>(opt.phase_timeout * 1e9);
  Publish(srv, fx, opt.events, opt.concurrency, 0, deadline, &log);
  if (held) {
    r.cpu = cpu.End();  // the publish alone
    r.received_while_paused = rx.count();
    r.pause_errors += SetPaused(srv, fx, false);
  }
  r.accepted = log.accepted;
  r.failed = log.failed;
  r.retried = log.retried;
  r.status503 = log.status503;
  r.errors = log.errors;
  r.publish_timed_out = log.timed_out;
  r.server_died = log.server_died;
  r.expected = log.accepted * static_cast<uint64_t>(k);
  if (!r.server_died) AwaitDeliveries(rx, srv, r.expected, deadline, 10.0, &r.server_died);
  SleepMs(200);  // late duplicates, if any
  if (!held) r.cpu = cpu.End();
  if (srv.Alive()) r.commits_after = ScrapeCommits(srv);
  if (srv.Alive()) {
    r.rss_kb = ProcStatusKb(srv.pid(), "VmRSS:");
    r.hwm_kb = ProcStatusKb(srv.pid(), "VmHWM:");
  } else {
    r.server_died = true;
  }
  r.rx_connections = rx.connections();
  r.expect100 = rx.expect100();
  Tally tally = CountDeliveries(rx.Take(), log, k);
  r.delivered = tally.delivered;
  r.unique = tally.unique;
  r.duplicates = tally.duplicates;
  r.unknown = tally.unknown;
  r.avg_body = tally.avg_body;
  const std::vector<int64_t>& times = tally.times;
  r.complete = r.unique >= r.expected && r.expected > 0;
  if (!times.empty() && log.t_first_send > 0) {
    r.e2e_seconds = Secs(times.back() - log.t_first_send);
    r.deliveries_per_s = r.e2e_seconds > 0 ? static_cast<double>(r.unique) / r.e2e_seconds : 0;
    size_t a = times.size() / 10, b = times.size() * 9 / 10;
    if (b > a && times[b] > times[a])
      r.mid_rate = static_cast<double>(b - a) / Secs(times[b] - times[a]);
    if (log.t_last_ack > 0) r.drain_after_last_ack = Secs(times.back() - log.t_last_ack);
  }
  if (log.t_last_ack > log.t_first_send) {
    r.ingest_seconds = Secs(log.t_last_ack - log.t_first_send);
    r.ingest_rate = static_cast<double>(log.accepted) / r.ingest_seconds;
  }
  r.signatures = CheckSamples(rx.Samples(), fx);
  Finish(srv, ((held ? "publishes alone K=" : "throughput K=") + std::to_string(k)).c_str());
  return true;
}

std::string ThroughputResult::Problems() const {
  std::vector<std::string> p;
  if (server_died) p.push_back("server died");
  if (publish_timed_out) p.push_back("publish timed out");
  if (accepted < static_cast<uint64_t>(events))
    p.push_back(std::to_string(static_cast<uint64_t>(events) - accepted) + " of " +
                std::to_string(events) + " events not accepted (" + std::to_string(failed) +
                " failed)");
  const uint64_t want = static_cast<uint64_t>(events) * static_cast<uint64_t>(k);
  if (unique < want)
    p.push_back(std::to_string(want - unique) + " of " + std::to_string(want) +
                " deliveries missing");
  if (!signatures.ok()) p.push_back("signatures: " + signatures.Text());
  if (!pause_errors.empty()) p.push_back(pause_errors);
  if (received_while_paused > 0)
    p.push_back(std::to_string(received_while_paused) +
                " deliveries received while the subscriptions were paused");
  std::string out;
  for (auto& s : p) out += (out.empty() ? "" : "; ") + s;
  return out;
}

// ARCHITECTURE.md, "Goals": deliveries/s >= 0.4 x the bare sender at K=1, >= 0.7 x at K=10.
double ThroughputGoal(int k) { return k == 1 ? 0.4 : 0.7; }

void PrintThroughput(const std::vector<ThroughputResult>& tputs, double base) {
  std::printf("%-28s %12s %12s %6s %-8s %12s\n", "outbound throughput", "deliveries/s",
              "vs baseline", "goal", "verdict", "ingest ev/s");
  for (auto& t : tputs) {
    double ratio = base > 0 ? t.deliveries_per_s / base : 0;
    char label[64];
    std::snprintf(label, sizeof label, "K=%d (%d events)", t.k, t.events);
    // A "met" only from a complete run: every event accepted, every delivery in, signatures ok.
    const std::string problems = t.Problems();
    const bool met = problems.empty() && ratio >= ThroughputGoal(t.k);
    std::printf("%-28s %12.0f %12.3f %6s %-8s %12.0f%s%s\n", label, t.deliveries_per_s, ratio,
                Fmt(">=%.1f", ThroughputGoal(t.k)).c_str(), met ? "met" : "NOT MET", t.ingest_rate,
                problems.empty() ? "" : "   INCOMPLETE: ", problems.c_str());
  }
  std::printf("\n");
  for (auto& t : tputs) {
    std::printf("  K=%d: accepted %" PRIu64 "/%d (failed %" PRIu64 ", retried %" PRIu64
                ", 503s %" PRIu64 "); deliveries %" PRIu64 " unique of %" PRIu64
                " expected, %" PRIu64 " duplicates, %" PRIu64 " unknown; avg body %.0f B\n",
                t.k, t.accepted, t.events, t.failed, t.retried, t.status503, t.unique, t.expected,
                t.duplicates, t.unknown, t.avg_body);
    std::printf(
        "      publish %.2f s (ingest %.0f events/s); first publish -> last delivery %.2f s; last "
        "202 -> last "
        "delivery %.2f s; middle 80%% of deliveries at %.0f/s\n",
        t.ingest_seconds, t.ingest_rate, t.e2e_seconds, t.drain_after_last_ack, t.mid_rate);
    PrintCpu(t.cpu);
    std::printf("      store: %s\n", CommitText(t.commits_before, t.commits_after).c_str());
    std::printf("      outbound RSS %ld KB (peak %ld KB); new connections to the receiver %" PRIu64
                ", Expect: 100-continue %" PRIu64 "; signatures of sampled webhooks: %s%s%s\n",
                t.rss_kb, t.hwm_kb, t.rx_connections, t.expect100, t.signatures.Text().c_str(),
                t.server_died ? "; SERVER DIED" : "",
                t.publish_timed_out ? "; PUBLISH TIMED OUT" : "");
    for (auto& e : t.errors) std::printf("      error sample: %s\n", e.c_str());
  }
}

}  // namespace bench
