// Throughput: N events published as fast as the connections allow, K subscriptions each.
#include <cinttypes>
#include <cstdio>

#include "harness.h"
#include "publish.h"

namespace bench {

bool Harness::Throughput(int k, ThroughputResult* out) {
  Server srv;
  Fixture fx;
  std::string tag = "k" + std::to_string(k);
  if (!Fresh(srv, tag.c_str(), k, &fx)) return false;
  ThroughputResult& r = *out;
  r.k = k;
  r.events = opt.events;
  rx.Reset();
  PublishLog log;
  log.Init(opt.events);
  CpuMeter cpu(srv.pid(), rx.tid());
  int64_t t0 = NowNs();
  int64_t deadline = t0 + static_cast<int64_t>(opt.phase_timeout * 1e9);
  Publish(srv, fx, opt.events, opt.concurrency, 0, deadline, &log);
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
  r.cpu = cpu.End();
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
  r.signature_check = CheckSample(rx.Sample(), fx.secrets.empty() ? "" : fx.secrets[0]);
  // The sample may come from any subscription: check against every secret.
  if (r.signature_check.rfind("MISMATCH", 0) == 0) {
    for (auto& s : fx.secrets)
      if (CheckSample(rx.Sample(), s) == "ok") r.signature_check = "ok";
  }
  Finish(srv, ("throughput K=" + std::to_string(k)).c_str());
  return true;
}

void PrintThroughput(const std::vector<ThroughputResult>& tputs, double base) {
  std::printf("%-28s %12s %12s %10s %12s\n", "outbound throughput", "deliveries/s", "vs baseline",
              "goal>=0.5", "ingest ev/s");
  for (auto& t : tputs) {
    double ratio = base > 0 ? t.deliveries_per_s / base : 0;
    char label[64];
    std::snprintf(label, sizeof label, "K=%d (%d events)", t.k, t.events);
    std::printf("%-28s %12.0f %12.3f %10s %12.0f%s%s\n", label, t.deliveries_per_s, ratio,
                ratio >= 0.5 ? "met" : "NOT MET", t.ingest_rate, t.complete ? "" : "   INCOMPLETE",
                t.server_died ? "   SERVER DIED" : "");
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
    std::printf("      outbound RSS %ld KB (peak %ld KB); new connections to the receiver %" PRIu64
                ", Expect: 100-continue %" PRIu64 "; signature of a sampled webhook: %s%s%s\n",
                t.rss_kb, t.hwm_kb, t.rx_connections, t.expect100, t.signature_check.c_str(),
                t.server_died ? "; SERVER DIED" : "",
                t.publish_timed_out ? "; PUBLISH TIMED OUT" : "");
    for (auto& e : t.errors) std::printf("      error sample: %s\n", e.c_str());
  }
}

}  // namespace bench
