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
// --stores sqlite,pg: the same fill and drain on each store in turn, between one baseline before
// and one after, the figures side by side. On PostgreSQL "disk" is the database's tables
// (pg_total_relation_size, indexes and TOAST included) + the files in pg_wal after the fill (what
// is on disk, as SQLite's db + -wal files); the WAL generated during the fill (the
// pg_current_wal_lsn difference) is printed too. CPU: Outbound's, plus the PostgreSQL server's.
// pg3: PostgreSQL with one `api` process (takes the API, fans out) and two `worker`s (claim and
// send), as --scaleout's "1 api + 2 worker"; RSS and CPU are the three processes' sums.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "baseline.h"
#include "harness.h"
#include "scenario.h"
#include "stores.h"

namespace bench {
namespace {

constexpr int kDown = 10;
constexpr double kGoalRssMb = 200, kGoalBytes = 500, kGoalDrain = 0.5, kGoalP99Ms = 50;

struct BacklogResult {
  std::string store, csv_path;
  bool pg = false;
  int fill_events = 0;
  uint64_t fill_accepted = 0, waiting_target = 0, attempts_503 = 0, recovered = 0, drained = 0,
           duplicates = 0, body_sum = 0;
  double fill_s = 0, recover_s = 0, drain_s = NAN, drain_rate = 0, after_recover_rate = NAN;
  uint64_t after_recover = 0;  // recovered deliveries received after the last recover call
  StoreSizes sizes;            // after the fill
  uint64_t wal_generated = 0;  // PostgreSQL: WAL written during the fill (LSN difference)
  double per_waiting = NAN;
  long fill_rss = 0, drain_rss = 0, hwm = -1, hwm_fill = -1;
  // CPU seconds over the fill and over the drain: Outbound's, the PostgreSQL server's.
  double fill_cpu = NAN, fill_pg_cpu = 0, drain_cpu = NAN, drain_pg_cpu = 0;
  // CPU seconds of the store's writer thread (ob-store-write; SQLite only): over the fill, over
  // the recover calls, and over the whole drain (the calls included).
  double writer_fill = NAN, writer_recover = NAN, writer_drain = NAN;
  std::string drain_threads;  // the first process's busiest threads over the drain
  std::vector<double> lat_fill, lat_drain;
  // The fill's healthy latency split at the publisher's 202: sent -> 202, and 202 -> received
  // at /s0 (negative when the delivery arrived before the answer did).
  std::vector<double> fill_to_ack, fill_after_ack;
  size_t csv_rows = 0;
  SignatureTally sigs;
  std::vector<std::string> problems;
};

// The CSV of the first store goes to `path`; the next ones to "<stem>-pg.csv", "<stem>-pg3.csv".
std::string CsvPath(const std::string& path, bool first, const char* store) {
  if (first) return path;
  const size_t dot = path.rfind('.');
  const std::string tag = std::string("-") + store;
  return dot == std::string::npos || path.find('/', dot) != std::string::npos
             ? path + tag
             : path.substr(0, dot) + tag + path.substr(dot);
}

// One fill and drain on a fresh store. False (h.failure set) only when the harness cannot work.
bool FillAndDrain(Harness& h, const StoreChoice& choice, int index, BacklogResult* out) {
  const Options& opt = h.opt;
  BacklogResult& res = *out;
  const uint64_t want = static_cast<uint64_t>(opt.backlog_waiting);
  const int fill_events = static_cast<int>((want + kDown - 1) / kDown);
  res.fill_events = fill_events;
  RunStore store(choice.pg, "backlog_" + std::to_string(index),
                 opt.KeepPgDatabases());  // outlives the servers
  res.store = choice.scaled ? "PG api+2w" : store.Name();
  res.pg = store.pg();
  if (!store.ok()) {
    h.failure = res.store + ": " + store.error();
    return false;
  }
  Server srv;
  Fixture fx;
  ServerSpec spec;
  spec.retry_schedule = "0s";
  if (choice.scaled) spec.role = "api";
  store.Apply(&spec);
  h.rx.SetDown(1, 1 + kDown);
  h.rx.SetWatch(1, 1 + kDown);
  if (!h.Fresh(srv, "backlog", spec, {0}, &fx, {"appointment.*"})) return false;
  store.SetDir(h.dirs.back());
  std::string err;
  // pg3: two `worker`s on the same database claim and send what the `api` process fans out (the
  // layout of --scaleout's "1 api + 2 worker"); memory and CPU are the three processes' sums.
  std::vector<std::unique_ptr<Server>> workers;
  std::vector<pid_t> pids = {srv.pid()};
  for (int i = 1; choice.scaled && i <= 2; ++i) {
    ServerSpec w = spec;
    w.role = "worker";
    w.name = "worker" + std::to_string(i);
    workers.push_back(std::make_unique<Server>());
    if (!workers.back()->Start(opt.bin, h.dirs.back(), w, &err)) {
      h.failure = res.store + ": " + w.name + ": " + err;
      return false;
    }
    pids.push_back(workers.back()->pid());
  }
  std::vector<int> down_paths;
  std::vector<std::string> down_types, ids;
  for (int i = 1; i <= kDown; ++i) {
    down_paths.push_back(i);
    down_types.push_back("appointment.problem_reported");
  }
  if (!AddClient(srv, &fx, h.rx.port(), down_paths, down_types, &ids, &err)) {
    h.failure = err;
    return false;
  }
  // Another process's caches (fan-out lists, subscriptions) follow a change within 2 s.
  if (!workers.empty()) SleepMs(2500);
  h.rx.Reset();
  std::vector<std::string>& problems = res.problems;
  Sampler sampler(pids, store.Probe(), 250);
  // Summed over the processes.
  auto outbound_cpu = [&] {
    double sum = 0;
    for (pid_t pid : pids) sum += ProcCpuSeconds("/proc/" + std::to_string(pid) + "/stat");
    return sum;
  };
  // The SQLite writer thread's CPU (NAN when there is none: PostgreSQL).
  auto writer_cpu = [&] {
    double sum = NAN;
    for (pid_t pid : pids)
      for (const auto& [tid, v] : ThreadCpu(pid))
        if (v.first == "ob-store-write") sum = (std::isnan(sum) ? 0 : sum) + v.second;
    return sum;
  };
  auto sum_kb = [&](const char* key) {
    long sum = 0;
    for (pid_t pid : pids) sum += std::max(0L, ProcStatusKb(pid, key));
    return sum;
  };

  // ---- fill
  std::printf("%s fill: %d events x %d down subscriptions (+ /s0)...\n", res.store.c_str(),
              fill_events, kDown);
  std::fflush(stdout);
  PublishLog fill;
  fill.Init(fill_events);
  const uint64_t lsn0 = store.WalPosition();
  const double cpu0 = outbound_cpu(), pg0 = store.ServerCpu(), w0 = writer_cpu();
  const int64_t f0 = NowNs();
  int64_t deadline = f0 + static_cast<int64_t>(opt.stage_timeout * 1e9);
  Publish(srv, fx, fill_events, opt.concurrency, 0, deadline, &fill);
  res.fill_accepted = fill.accepted;
  const uint64_t waiting_target = fill.accepted * kDown;
  res.waiting_target = waiting_target;
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
  // Every outcome recorded before the recover calls: a delivery still being recorded when its
  // subscription's recover runs is not recovered, and never arrives. (PostgreSQL's single
  // connection for the dispatcher's writes may lag seconds behind a fill whose publishes it no
  // longer slows.) Bounded by the stage deadline; then what is missing is said below.
  SleepMs(200);
  for (int64_t dead = 0; !died && NowNs() < deadline;) {
    dead = store.CountDead();
    if (dead < 0 || static_cast<uint64_t>(dead) >= waiting_target) break;
    SleepMs(500);
  }
  res.fill_s = Secs(NowNs() - f0);
  const double cpu1 = outbound_cpu(), pg1 = store.ServerCpu(), w1 = writer_cpu();
  res.fill_cpu = cpu1 - cpu0;
  res.writer_fill = w1 - w0;
  const auto threads_d0 = ThreadCpu(srv.pid());
  res.fill_pg_cpu = pg1 - pg0;
  res.attempts_503 = h.rx.down();
  res.sizes = store.Sizes();
  if (store.pg()) res.wal_generated = store.WalPosition() - lsn0;
  res.per_waiting = waiting_target > 0 ? static_cast<double>(res.sizes.data + res.sizes.wal) /
                                             static_cast<double>(waiting_target)
                                       : NAN;
  res.fill_rss = sampler.MaxRssKb();
  res.hwm_fill = sum_kb("VmHWM:");
  if (fill.accepted < static_cast<uint64_t>(fill_events))
    problems.push_back(std::to_string(fill_events - static_cast<int>(fill.accepted)) + " of " +
                       std::to_string(fill_events) + " fill events not accepted" +
                       (fill.timed_out ? " (stage timed out)" : ""));
  if (res.attempts_503 < waiting_target)
    problems.push_back(std::to_string(waiting_target - res.attempts_503) +
                       " first attempts never made during the fill");
  std::printf("%s fill done: %" PRIu64 " events accepted in %.1f s, %" PRIu64
              " deliveries waiting (503s %" PRIu64 "); %s %.1f MB + %s %.1f MB\n",
              res.store.c_str(), fill.accepted, res.fill_s, waiting_target, res.attempts_503,
              store.DataName(), static_cast<double>(res.sizes.data) / 1e6, store.WalName(),
              static_cast<double>(res.sizes.wal) / 1e6);
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
      const long rss = sum_kb("VmRSS:");
      csv_rows.push_back(Fmt("%.3f", Secs(t - d0)) + "," + Fmt("%.1f", rate) + "," +
                         std::to_string(depth) + "," +
                         Fmt("%.1f", static_cast<double>(rss) / 1024.0));
      prev = got;
      t_prev = t;
    }
  });
  Api api(srv.base());
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
      res.recovered += std::strtoull(r.body.c_str() + b.find(':', k) + 1, nullptr, 10);
  }
  res.recover_s = Secs(NowNs() - d0);
  res.writer_recover = writer_cpu() - w1;
  std::printf("%s recover: %zu calls took %.2f s, %" PRIu64 " deliveries re-queued\n",
              res.store.c_str(), ids.size(), res.recover_s, res.recovered);
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
  for (auto& w : workers) died = died || !w->Alive();
  // The live events' last deliveries, bounded.
  for (int i = 0; i < 100 && srv.Alive(); ++i) SleepMs(20);
  res.drain_cpu = outbound_cpu() - cpu1;
  res.drain_pg_cpu = store.ServerCpu() - pg1;
  res.writer_drain = writer_cpu() - w1;
  {
    std::map<std::string, double> by_name;
    for (const auto& [tid, v] : ThreadCpu(srv.pid())) {
      auto it = threads_d0.find(tid);
      by_name[v.first] += v.second - (it == threads_d0.end() ? 0 : it->second.second);
    }
    std::vector<std::pair<std::string, double>> top(by_name.begin(), by_name.end());
    std::sort(top.begin(), top.end(), [](auto& a, auto& b) { return a.second > b.second; });
    for (size_t i = 0; i < top.size() && i < 5; ++i)
      res.drain_threads += (i ? ", " : "") + top[i].first + Fmt(" %.2f s", top[i].second);
  }
  res.drain_rss = sampler.MaxRssKb();
  sampler.Stop();
  res.hwm = srv.Alive() ? sum_kb("VmHWM:") : -1;
  std::vector<Received> recs = h.rx.Take();
  res.sigs = CheckSamples(h.rx.Samples(), fx);
  h.Finish(srv, (res.store + " backlog").c_str());
  for (size_t i = 0; i < workers.size(); ++i)
    h.Finish(*workers[i], (res.store + " worker" + std::to_string(i + 1)).c_str());

  // Unique (eventId, path) of B's deliveries of accepted fill events, and their last arrival.
  std::unordered_set<std::string> fill_ids;
  for (size_t i = 0; i < fill.event_id.size(); ++i)
    if (fill.acked[i] > 0 && !fill.event_id[i].empty()) fill_ids.insert(fill.event_id[i]);
  std::unordered_set<std::string> pairs;
  int64_t last_t = 0;
  const int64_t recover_end = d0 + static_cast<int64_t>(res.recover_s * 1e9);
  uint64_t after_recover = 0;  // received after the last recover call answered
  for (const Received& r : recs) {
    if (r.path < 1 || r.path > kDown) continue;
    std::string id(r.id.data());
    if (!fill_ids.count(id)) continue;
    if (!pairs.insert(id + "/" + std::to_string(r.path)).second) {
      res.duplicates++;
      continue;
    }
    res.body_sum += r.body_len;
    last_t = std::max(last_t, r.t_ns);
    if (r.t_ns > recover_end) after_recover++;
  }
  res.drained = pairs.size();
  res.drain_s = last_t > d0 ? Secs(last_t - d0) : NAN;
  res.drain_rate = res.drain_s > 0 ? static_cast<double>(res.drained) / res.drain_s : 0;
  // The drain after the recover calls (none when it ended with them: chunked recovery sends
  // while it re-queues): what arrived after the last call, over the time it took.
  res.after_recover = after_recover;
  const double after_recover_s = last_t > recover_end ? Secs(last_t - recover_end) : 0;
  res.after_recover_rate =
      after_recover_s >= 1 ? static_cast<double>(after_recover) / after_recover_s : NAN;
  res.lat_fill = LatenciesMs(fill, recs, 0, 0, fill_events);
  {
    std::unordered_map<std::string, int64_t> at_s0;  // eventId -> first arrival at /s0
    for (const Received& r : recs) {
      if (r.path != 0) continue;
      auto [it, fresh] = at_s0.emplace(std::string(r.id.data()), r.t_ns);
      if (!fresh) it->second = std::min(it->second, r.t_ns);
    }
    for (size_t i = 0; i < fill.acked.size(); ++i) {
      if (fill.acked[i] <= 0) continue;
      res.fill_to_ack.push_back(static_cast<double>(fill.acked[i] - fill.sent[i]) / 1e6);
      auto it = at_s0.find(fill.event_id[i]);
      if (it != at_s0.end())
        res.fill_after_ack.push_back(static_cast<double>(it->second - fill.acked[i]) / 1e6);
    }
    std::sort(res.fill_to_ack.begin(), res.fill_to_ack.end());
    std::sort(res.fill_after_ack.begin(), res.fill_after_ack.end());
  }
  res.lat_drain = LatenciesMs(live, recs, 0, 0, static_cast<int>(live.started));
  if (!recover_errors.empty()) problems.push_back(recover_errors);
  if (res.recovered < waiting_target)
    problems.push_back(std::to_string(waiting_target - res.recovered) + " of " +
                       std::to_string(waiting_target) + " waiting deliveries not recovered");
  if (res.drained < waiting_target)
    problems.push_back(std::to_string(waiting_target - res.drained) + " of " +
                       std::to_string(waiting_target) + " recovered deliveries never received");
  if (died) problems.push_back("server died");
  if (!res.sigs.ok()) problems.push_back("signatures: " + res.sigs.Text());

  std::ofstream csv(res.csv_path);
  csv << "seconds,deliveries_per_s,waiting,rss_mb\n";
  for (auto& row : csv_rows) csv << row << "\n";
  res.csv_rows = csv_rows.size();
  return true;
}

// The verdicts of one store's run against the bare sender's `base` req/s.
struct BacklogVerdicts {
  std::string rss, disk, drain, latency;
  double peak_mb = NAN, p99_fill = INFINITY, p99_drain = INFINITY;
};
BacklogVerdicts Judge(const BacklogResult& r, double base) {
  BacklogVerdicts v;
  std::vector<std::string> why = r.problems;
  if (r.waiting_target < 1'000'000)
    why.push_back(std::to_string(r.waiting_target) + " waiting, the goal is stated at 1,000,000");
  const std::string incomplete = "NOT MET (INCOMPLETE: " + JoinReasons(why) + ")";
  auto verdict = [&](bool ok) { return !why.empty() ? incomplete : ok ? "met" : "NOT MET"; };
  v.peak_mb = static_cast<double>(std::max({r.fill_rss, r.drain_rss, r.hwm})) / 1024;
  v.p99_fill = r.lat_fill.empty() ? INFINITY : Percentile(r.lat_fill, 0.99);
  v.p99_drain = r.lat_drain.empty() ? INFINITY : Percentile(r.lat_drain, 0.99);
  v.rss = verdict(v.peak_mb < kGoalRssMb);
  v.disk = verdict(r.per_waiting <= kGoalBytes);
  v.drain = verdict(base > 0 && r.drain_rate / base >= kGoalDrain);
  v.latency = verdict(v.p99_fill < kGoalP99Ms && v.p99_drain < kGoalP99Ms);
  return v;
}

// "met", "NOT MET" or "INCOMPLETE" (the side-by-side table; the reasons are printed above it).
std::string Short(const std::string& verdict) {
  return verdict.find("INCOMPLETE") != std::string::npos ? "INCOMPLETE" : verdict;
}

void PrintBacklog(const BacklogResult& r, double base) {
  const BacklogVerdicts v = Judge(r, base);
  const bool complete = r.problems.empty();
  std::printf("\n---- %s ----\n", r.store.c_str());
  std::printf("waiting deliveries: %" PRIu64 " (%d events x %d subscriptions; %" PRIu64
              " answered 503 during the fill)%s\n",
              r.waiting_target, static_cast<int>(r.fill_accepted), kDown, r.attempts_503,
              complete ? "" : "   INCOMPLETE");
  std::printf("  fill: %.1f s (%.0f events/s accepted)\n", r.fill_s,
              static_cast<double>(r.fill_accepted) / r.fill_s);
  std::printf("  CPU: fill outbound %.2f s%s, drain outbound %.2f s%s\n", r.fill_cpu,
              r.pg ? Fmt(" + PostgreSQL %.2f s", r.fill_pg_cpu).c_str() : "", r.drain_cpu,
              r.pg ? Fmt(" + PostgreSQL %.2f s", r.drain_pg_cpu).c_str() : "");
  if (!std::isnan(r.writer_drain))
    std::printf(
        "  writer thread (ob-store-write) CPU: fill %.2f s (%.1f us per waiting delivery); "
        "during the recover calls %.2f s; whole drain %.2f s (%.1f us per recovered "
        "delivery)\n",
        r.writer_fill,
        r.waiting_target ? r.writer_fill * 1e6 / static_cast<double>(r.waiting_target) : NAN,
        r.writer_recover, r.writer_drain,
        r.recovered ? r.writer_drain * 1e6 / static_cast<double>(r.recovered) : NAN);
  if (!r.drain_threads.empty()) std::printf("  drain CPU by thread: %s\n", r.drain_threads.c_str());
  std::printf(
      "resident memory (Outbound): fill max %.1f MB, drain max %.1f MB, VmHWM %.1f MB (after "
      "fill %.1f MB)   goal < %.0f MB: %s\n",
      static_cast<double>(r.fill_rss) / 1024, static_cast<double>(r.drain_rss) / 1024,
      static_cast<double>(r.hwm) / 1024, static_cast<double>(r.hwm_fill) / 1024, kGoalRssMb,
      v.rss.c_str());
  if (r.pg)
    std::printf(
        "disk per waiting delivery: %.0f B (tables %.1f MB + pg_wal %.1f MB after the fill; WAL "
        "generated during the fill %.1f MB = %.0f B per waiting delivery)   goal <= %.0f B: %s\n",
        r.per_waiting, static_cast<double>(r.sizes.data) / 1e6,
        static_cast<double>(r.sizes.wal) / 1e6, static_cast<double>(r.wal_generated) / 1e6,
        r.waiting_target
            ? static_cast<double>(r.wal_generated) / static_cast<double>(r.waiting_target)
            : NAN,
        kGoalBytes, v.disk.c_str());
  else
    std::printf(
        "disk per waiting delivery: %.0f B (db %.1f MB + WAL %.1f MB after the fill)   "
        "goal <= %.0f B: %s\n",
        r.per_waiting, static_cast<double>(r.sizes.data) / 1e6,
        static_cast<double>(r.sizes.wal) / 1e6, kGoalBytes, v.disk.c_str());
  std::printf("drain: %" PRIu64 " of %" PRIu64 " received (%" PRIu64
              " duplicates) in %.2f s from the first recover call: %.0f deliveries/s = %.3f x "
              "bare   goal >= %.1f: %s\n",
              r.drained, r.waiting_target, r.duplicates, r.drain_s, r.drain_rate,
              base > 0 ? r.drain_rate / base : 0, kGoalDrain, v.drain.c_str());
  std::printf("  the recover calls took %.2f s; after them %" PRIu64
              " deliveries arrived (%s); CSV: "
              "%s (%zu rows)\n",
              r.recover_s, r.after_recover,
              std::isnan(r.after_recover_rate) ? "less than a second after the last call"
                                               : Fmt("%.0f/s", r.after_recover_rate).c_str(),
              r.csv_path.c_str(), r.csv_rows);
  std::printf("healthy /s0 (other client), publish sent -> received:\n");
  std::printf("  during the fill:  %s\n", LatencyText(r.lat_fill).c_str());
  if (!r.fill_to_ack.empty() && !r.fill_after_ack.empty()) {
    std::printf(
        "    of which sent -> 202: p50 %.1f ms, p99 %.1f ms; 202 -> received: p50 %.1f ms, "
        "p99 %.1f ms\n",
        Percentile(r.fill_to_ack, 0.5), Percentile(r.fill_to_ack, 0.99),
        Percentile(r.fill_after_ack, 0.5), Percentile(r.fill_after_ack, 0.99));
  }
  std::printf("  during the drain: %s\n", LatencyText(r.lat_drain).c_str());
  std::printf("  goal p99 < %.0f ms in both: %s\n", kGoalP99Ms, v.latency.c_str());
  std::printf("signatures: %s\n", r.sigs.Text().c_str());
  if (!complete) std::printf("INCOMPLETE: %s\n", JoinReasons(r.problems).c_str());
}

}  // namespace

int RunBacklog(Harness& h) {
  const Options& opt = h.opt;
  const std::string csv_path =
      opt.backlog_csv.empty() ? opt.tmp + "/outbound-drain.csv" : opt.backlog_csv;
  StoreServers servers;
  if (!OpenStores(h, &servers)) return 1;
  const std::vector<StoreChoice> stores = StoreList(h, servers);
  size_t body = 0;
  if (!BaselineBodySize(h, true, &body)) return 1;
  std::printf("baseline: bare libcurl sender, %d requests, 64 in flight\n", opt.baseline);
  std::fflush(stdout);
  BaselineResult before = RunBaseline(h.rx, opt.baseline, opt.base_concurrency, opt.phase_timeout,
                                      CurlLoop::kPerform, body);
  PrintBaseline("before", before);
  std::fflush(stdout);

  std::vector<BacklogResult> results(stores.size());
  for (size_t i = 0; i < stores.size(); ++i) {
    results[i].csv_path = CsvPath(csv_path, i == 0,
                                  !stores[i].pg      ? "sqlite"
                                  : stores[i].scaled ? "pg3"
                                                     : "pg");
    if (!FillAndDrain(h, stores[i], static_cast<int>(i + 1), &results[i])) {
      std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
      return 1;
    }
  }

  // Baseline after, with the bodies the first store's drain sent.
  const BacklogResult& first = results.front();
  const size_t body_after = first.drained > 0 ? static_cast<size_t>(first.body_sum / first.drained)
                                              : static_cast<size_t>(body);
  BaselineResult after = RunBaseline(h.rx, opt.baseline, opt.base_concurrency, opt.phase_timeout,
                                     CurlLoop::kPerform, body_after);

  std::printf("\n================ Outbound backlog benchmark ================\n");
  if (servers.pg) std::printf("%s\n", servers.pg->Text().c_str());
  PrintBaseline("before", before);
  PrintBaseline("after", after);
  const double base = std::max(before.rps, after.rps);
  std::printf("  reference (the higher): %.0f req/s\n", base);
  for (const BacklogResult& r : results) PrintBacklog(r, base);

  std::printf("\nper store, side by side (the same scenario, one run; verdicts as above):\n");
  std::printf("  %-10s %9s %9s %10s %9s %9s %9s %9s\n", "store", "waiting", "peak RSS", "B/waiting",
              "drain/s", "x bare", "fill p99", "drain p99");
  for (const BacklogResult& r : results) {
    const BacklogVerdicts v = Judge(r, base);
    std::printf("  %-10s %9" PRIu64 " %6.0f MB %10.0f %9.0f %9.3f %6.1f ms %6.1f ms\n",
                r.store.c_str(), r.waiting_target, v.peak_mb, r.per_waiting, r.drain_rate,
                base > 0 ? r.drain_rate / base : 0, v.p99_fill, v.p99_drain);
    std::printf("  %-10s verdicts: RSS %s, disk %s, drain %s, healthy p99 %s\n", "",
                Short(v.rss).c_str(), Short(v.disk).c_str(), Short(v.drain).c_str(),
                Short(v.latency).c_str());
  }
  PrintServers(h);
  return 0;
}

}  // namespace bench
