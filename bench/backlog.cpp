// A backlog and its drain (--backlog; issue 8): ten subscriptions of one client, rendering the
// same payload, to an endpoint that is down; N deliveries pile up; the endpoint recovers and
// `POST /v1/subscriptions/{id}/recover` brings them back.
//
// Set-up: client A's /s0 (appointment.*, healthy, the "other client") and client B's ten
// subscriptions /s1../s10 (appointment.problem_reported, same options: one rendering), whose
// requests the receiver answers 503. The server runs with --retry-schedule 0s (one attempt, as in
// the issue's report): each of B's deliveries fails once and is `dead`, waiting to be recovered.
//   fill:  N/10 appointment.problem_reported events published as fast as accepted (each also to
//          /s0); until every first attempt of B's deliveries has been answered 503.
//   drain: the receiver answers 200 again; the ten recover calls (sinceUtc 2000-01-01), one after
//          the other; until every recovered delivery arrived. Meanwhile appointment.started events
//          (to /s0 only) at --backlog-rate per second.
// Reported: Outbound's resident memory (VmRSS sampled every 250 ms, the maximum per stage, and
// VmHWM), bytes on disk per waiting delivery ((database + WAL) / deliveries waiting, after the
// fill), the drain rate (waiting deliveries / first recover call -> last of them received)
// against the bare libcurl sender's requests/s measured before and after in the same run, and
// publish sent -> received at /s0 during the fill and the drain (an event lost: infinitely late).
// A CSV of the drain (seconds since the first recover call, deliveries/s over the last second,
// deliveries still waiting, Outbound's VmRSS in MB) goes to --backlog-csv; bench/plot_drain.py
// makes the PNG.
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <unordered_set>

#include "baseline.h"
#include "harness.h"
#include "scenario.h"

namespace bench {
namespace {

constexpr int kDown = 10;
constexpr double kGoalRssMb = 200, kGoalBytes = 500, kGoalDrain = 0.5, kGoalP99Ms = 50;

}  // namespace

int RunBacklog(Harness& h) {
  const Options& opt = h.opt;
  const uint64_t want = static_cast<uint64_t>(opt.backlog_waiting);
  const int fill_events = static_cast<int>((want + kDown - 1) / kDown);
  const std::string csv_path =
      opt.backlog_csv.empty() ? opt.tmp + "/outbound-drain.csv" : opt.backlog_csv;
  size_t body = 0;
  if (!BaselineBodySize(h, true, &body)) return 1;
  std::printf("baseline: bare libcurl sender, %d requests, 64 in flight\n", opt.baseline);
  std::fflush(stdout);
  BaselineResult before = RunBaseline(h.rx, opt.baseline, opt.base_concurrency, opt.phase_timeout,
                                      CurlLoop::kPerform, body);
  PrintBaseline("before", before);
  std::fflush(stdout);

  Server srv;
  Fixture fx;
  ServerSpec spec;
  spec.retry_schedule = "0s";
  h.rx.SetDown(1, 1 + kDown);
  h.rx.SetWatch(1, 1 + kDown);
  if (!h.Fresh(srv, "backlog", spec, {0}, &fx, {"appointment.*"})) {
    std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
    return 1;
  }
  std::vector<int> down_paths;
  std::vector<std::string> down_types, ids;
  for (int i = 1; i <= kDown; ++i) {
    down_paths.push_back(i);
    down_types.push_back("appointment.problem_reported");
  }
  std::string err;
  if (!AddClient(srv, &fx, h.rx.port(), down_paths, down_types, &ids, &err)) {
    std::fprintf(stderr, "e2e_bench: %s\n", err.c_str());
    return 1;
  }
  const std::string db = h.dirs.back() + "/outbound.db";
  h.rx.Reset();
  std::vector<std::string> problems;
  Sampler sampler(srv.pid(), db, 250);

  // ---- fill
  std::printf("fill: %d events x %d down subscriptions (+ /s0)...\n", fill_events, kDown);
  std::fflush(stdout);
  PublishLog fill;
  fill.Init(fill_events);
  const int64_t f0 = NowNs();
  int64_t deadline = f0 + static_cast<int64_t>(opt.stage_timeout * 1e9);
  Publish(srv, fx, fill_events, opt.concurrency, 0, deadline, &fill);
  const uint64_t waiting_target = fill.accepted * kDown;
  {
    uint64_t last = 0;
    int64_t last_change = NowNs();
    while (h.rx.down() < waiting_target && NowNs() < deadline && srv.Alive() &&
           Secs(NowNs() - last_change) < 60) {
      if (h.rx.down() != last) {
        last = h.rx.down();
        last_change = NowNs();
      }
      SleepMs(100);
    }
  }
  bool died = !srv.Alive();
  if (!died) AwaitDeliveries(h.rx, srv, fill.accepted, deadline, 30.0, &died);
  SleepMs(2000);  // the last outcomes reach the store
  const double fill_s = Secs(NowNs() - f0);
  const uint64_t attempts_503 = h.rx.down();
  const uint64_t db_bytes = FileBytes(db), wal_bytes = FileBytes(db + "-wal");
  const double per_waiting = waiting_target > 0 ? static_cast<double>(db_bytes + wal_bytes) /
                                                      static_cast<double>(waiting_target)
                                                : NAN;
  const long fill_rss = sampler.MaxRssKb();
  const long hwm_fill = ProcStatusKb(srv.pid(), "VmHWM:");
  if (fill.accepted < static_cast<uint64_t>(fill_events))
    problems.push_back(std::to_string(fill_events - static_cast<int>(fill.accepted)) + " of " +
                       std::to_string(fill_events) + " fill events not accepted" +
                       (fill.timed_out ? " (stage timed out)" : ""));
  if (attempts_503 < waiting_target)
    problems.push_back(std::to_string(waiting_target - attempts_503) +
                       " first attempts never made during the fill");
  std::printf("fill done: %" PRIu64 " events accepted in %.1f s, %" PRIu64
              " deliveries waiting (503s %" PRIu64 "); db %.1f MB + WAL %.1f MB\n",
              fill.accepted, fill_s, waiting_target, attempts_503,
              static_cast<double>(db_bytes) / 1e6, static_cast<double>(wal_bytes) / 1e6);
  std::fflush(stdout);

  // ---- drain
  sampler.NewStage();
  h.rx.SetDown(0, 0);
  const uint64_t watched0 = h.rx.watched();
  PublishLog live;
  const int live_n =
      static_cast<int>(std::min(10'000'000.0, opt.backlog_rate * (opt.stage_timeout + 60)));
  live.Init(live_n);
  live.started_every = 1;
  const int64_t d0 = NowNs();
  deadline = d0 + static_cast<int64_t>(opt.stage_timeout * 1e9);
  std::thread live_thread([&] {
    Publish(srv, fx, live_n, 16, opt.backlog_rate, deadline + 30'000'000'000LL, &live, fill_events);
  });
  std::atomic<bool> drained{false};
  std::vector<std::string> csv_rows;
  std::thread csv_thread([&] {
    uint64_t prev = 0;
    int64_t t_prev = d0;
    // Bounded by the stage deadline; a sample a second.
    while (!drained.load() && NowNs() < deadline + 5'000'000'000LL) {
      SleepMs(1000);
      const int64_t t = NowNs();
      const uint64_t got = h.rx.watched() - watched0;
      const double rate = static_cast<double>(got - prev) / Secs(t - t_prev);
      const uint64_t depth = waiting_target > got ? waiting_target - got : 0;
      const long rss = ProcStatusKb(srv.pid(), "VmRSS:");
      csv_rows.push_back(Fmt("%.3f", Secs(t - d0)) + "," + Fmt("%.1f", rate) + "," +
                         std::to_string(depth) + "," +
                         Fmt("%.1f", static_cast<double>(rss) / 1024.0));
      prev = got;
      t_prev = t;
    }
  });
  Api api(srv.base());
  uint64_t recovered = 0;
  std::string recover_errors;
  const std::string since = R"({"sinceUtc":"2000-01-01T00:00:00Z"})";
  for (const std::string& id : ids) {
    Resp r = api.Call("POST", "/v1/subscriptions/" + id + "/recover", fx.tenant_key, &since,
                      static_cast<long>(opt.stage_timeout * 1000));
    if (r.status != 202) {
      recover_errors += "recover " + id + ": HTTP " + std::to_string(r.status) + " " + r.error +
                        " " + r.body.substr(0, 200) + "; ";
      continue;
    }
    std::string_view b = r.body;
    size_t k = b.find("\"recovered\"");
    if (k != std::string::npos)
      recovered += std::strtoull(r.body.c_str() + b.find(':', k) + 1, nullptr, 10);
  }
  const double recover_s = Secs(NowNs() - d0);
  std::printf("recover: %zu calls took %.2f s, %" PRIu64 " deliveries re-queued\n", ids.size(),
              recover_s, recovered);
  std::fflush(stdout);
  {
    uint64_t last = 0;
    int64_t last_change = NowNs();
    // Not srv.Alive() (waitpid): the live publisher's thread checks that; a reaped or zombie
    // process has no VmRSS line.
    while (h.rx.watched() - watched0 < waiting_target && NowNs() < deadline &&
           ProcStatusKb(srv.pid(), "VmRSS:") >= 0 && Secs(NowNs() - last_change) < 60) {
      if (h.rx.watched() != last) {
        last = h.rx.watched();
        last_change = NowNs();
      }
      SleepMs(50);
    }
  }
  drained = true;
  live.stop_new_ns = NowNs();
  live_thread.join();
  csv_thread.join();
  died = died || live.server_died || !srv.Alive();
  // The live events' last deliveries, bounded.
  for (int i = 0; i < 100 && srv.Alive(); ++i) SleepMs(20);
  const long drain_rss = sampler.MaxRssKb();
  sampler.Stop();
  const long hwm = srv.Alive() ? ProcStatusKb(srv.pid(), "VmHWM:") : -1;
  std::vector<Received> recs = h.rx.Take();
  SignatureTally sigs = CheckSamples(h.rx.Samples(), fx);
  h.Finish(srv, "backlog");

  // Unique (eventId, path) of B's deliveries of accepted fill events, and their last arrival.
  std::unordered_set<std::string> fill_ids;
  for (size_t i = 0; i < fill.event_id.size(); ++i)
    if (fill.acked[i] > 0 && !fill.event_id[i].empty()) fill_ids.insert(fill.event_id[i]);
  std::unordered_set<std::string> pairs;
  uint64_t dup = 0, body_sum = 0;
  int64_t last_t = 0;
  for (const Received& r : recs) {
    if (r.path < 1 || r.path > kDown) continue;
    std::string id(r.id.data());
    if (!fill_ids.count(id)) continue;
    if (!pairs.insert(id + "/" + std::to_string(r.path)).second) {
      dup++;
      continue;
    }
    body_sum += r.body_len;
    last_t = std::max(last_t, r.t_ns);
  }
  const uint64_t drained_n = pairs.size();
  const double drain_s = last_t > d0 ? Secs(last_t - d0) : NAN;
  const double drain_rate = drain_s > 0 ? static_cast<double>(drained_n) / drain_s : 0;
  const double after_recover_s = last_t > d0 ? drain_s - recover_s : NAN;
  const double after_recover_rate =
      after_recover_s > 0 ? static_cast<double>(drained_n) / after_recover_s : NAN;
  std::vector<double> lat_fill = LatenciesMs(fill, recs, 0, 0, fill_events);
  std::vector<double> lat_drain = LatenciesMs(live, recs, 0, 0, static_cast<int>(live.started));
  if (!recover_errors.empty()) problems.push_back(recover_errors);
  if (recovered < waiting_target)
    problems.push_back(std::to_string(waiting_target - recovered) + " of " +
                       std::to_string(waiting_target) + " waiting deliveries not recovered");
  if (drained_n < waiting_target)
    problems.push_back(std::to_string(waiting_target - drained_n) + " of " +
                       std::to_string(waiting_target) + " recovered deliveries never received");
  if (died) problems.push_back("server died");
  if (!sigs.ok()) problems.push_back("signatures: " + sigs.Text());

  // Baseline after, with the bodies the drain sent.
  const size_t body_after =
      drained_n > 0 ? static_cast<size_t>(body_sum / drained_n) : static_cast<size_t>(body);
  BaselineResult after = RunBaseline(h.rx, opt.baseline, opt.base_concurrency, opt.phase_timeout,
                                     CurlLoop::kPerform, body_after);

  std::ofstream csv(csv_path);
  csv << "seconds,deliveries_per_s,waiting,rss_mb\n";
  for (auto& row : csv_rows) csv << row << "\n";
  csv.close();

  std::printf("\n================ Outbound backlog benchmark ================\n");
  PrintBaseline("before", before);
  PrintBaseline("after", after);
  const double base = std::max(before.rps, after.rps);
  std::printf("  reference (the higher): %.0f req/s\n", base);
  const bool complete = problems.empty();
  std::vector<std::string> why = problems;
  if (waiting_target < 1'000'000)
    why.push_back(std::to_string(waiting_target) + " waiting, the goal is stated at 1,000,000");
  const std::string incomplete = "NOT MET (INCOMPLETE: " + JoinReasons(why) + ")";
  auto verdict = [&](bool ok) { return !why.empty() ? incomplete : ok ? "met" : "NOT MET"; };
  const double peak_mb = static_cast<double>(std::max({fill_rss, drain_rss, hwm})) / 1024;
  std::printf("waiting deliveries: %" PRIu64 " (%d events x %d subscriptions; %" PRIu64
              " answered 503 during the fill)%s\n",
              waiting_target, static_cast<int>(fill.accepted), kDown, attempts_503,
              complete ? "" : "   INCOMPLETE");
  std::printf("  fill: %.1f s (%.0f events/s accepted)\n", fill_s,
              static_cast<double>(fill.accepted) / fill_s);
  std::printf(
      "resident memory: fill max %.1f MB, drain max %.1f MB, VmHWM %.1f MB (after fill "
      "%.1f MB)   goal < %.0f MB: %s\n",
      static_cast<double>(fill_rss) / 1024, static_cast<double>(drain_rss) / 1024,
      static_cast<double>(hwm) / 1024, static_cast<double>(hwm_fill) / 1024, kGoalRssMb,
      verdict(peak_mb < kGoalRssMb).c_str());
  std::printf(
      "disk per waiting delivery: %.0f B (db %.1f MB + WAL %.1f MB after the fill)   "
      "goal <= %.0f B: %s\n",
      per_waiting, static_cast<double>(db_bytes) / 1e6, static_cast<double>(wal_bytes) / 1e6,
      kGoalBytes, verdict(per_waiting <= kGoalBytes).c_str());
  std::printf("drain: %" PRIu64 " of %" PRIu64 " received (%" PRIu64
              " duplicates) in %.2f s from the first recover call: %.0f deliveries/s = %.3f x "
              "bare   goal >= %.1f: %s\n",
              drained_n, waiting_target, dup, drain_s, drain_rate, base > 0 ? drain_rate / base : 0,
              kGoalDrain, verdict(base > 0 && drain_rate / base >= kGoalDrain).c_str());
  std::printf("  the recover calls took %.2f s; after them %.0f deliveries/s; CSV: %s (%zu rows)\n",
              recover_s, after_recover_rate, csv_path.c_str(), csv_rows.size());
  const double p99_fill = lat_fill.empty() ? INFINITY : Percentile(lat_fill, 0.99);
  const double p99_drain = lat_drain.empty() ? INFINITY : Percentile(lat_drain, 0.99);
  std::printf("healthy /s0 (other client), publish sent -> received:\n");
  std::printf("  during the fill:  %s\n", LatencyText(lat_fill).c_str());
  std::printf("  during the drain: %s (%d events/s)\n", LatencyText(lat_drain).c_str(),
              opt.backlog_rate);
  std::printf("  goal p99 < %.0f ms in both: %s\n", kGoalP99Ms,
              verdict(p99_fill < kGoalP99Ms && p99_drain < kGoalP99Ms).c_str());
  std::printf("signatures: %s\n", sigs.Text().c_str());
  if (!complete) std::printf("INCOMPLETE: %s\n", JoinReasons(problems).c_str());
  PrintServers(h);
  return 0;
}

}  // namespace bench
