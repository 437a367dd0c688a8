// Scale-out on PostgreSQL (--scaleout): one SQLite process, one PostgreSQL process, three `all`,
// one `api` plus two `worker`s, each on a fresh database, against the same receiver.
#include <fcntl.h>
#include <libpq-fe.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>

#include "baseline.h"
#include "harness.h"
#include "pg.h"
#include "publish.h"

namespace bench {

// Two counters of GET /metrics (lines "NAME VALUE"): round trips and stale-lease writes; NAN
// when the process does not answer within 5 s (a wedged process must not hold the bench up).
struct StoreCounters {
  double round_trips = NAN, stale = NAN;
};
StoreCounters ScrapeStoreCounters(const std::string& base) {
  StoreCounters c;
  Api api(base);
  Resp r = api.Call("GET", "/metrics", kOperatorToken, nullptr, 5000);
  if (r.status != 200) return c;
  c.round_trips = SampleValue(r.body, "outbound_store_round_trips_total");
  c.stale = SampleValue(r.body, "outbound_stale_lease_writes_total");
  return c;
}

struct ScaleScenario {
  std::string label;
  bool pg = false;
  std::vector<std::string> roles;  // one per process: all, api, worker
};

struct ScaleProc {
  std::string role;
  double cpu = NAN;                                     // CPU seconds over the load window
  double round_trips = NAN, stale = NAN;                // counter deltas over the load window
  std::vector<std::pair<std::string, double>> threads;  // CPU seconds by thread name, busiest first
};

struct ScaleResult {
  std::string label;
  bool pg = false;
  int k = 0, events = 0;
  uint64_t accepted = 0, failed = 0, retried = 0, status503 = 0;
  uint64_t expected = 0, unique = 0, duplicates = 0, unknown = 0;
  double deliveries_per_s = 0, e2e_seconds = 0, ingest_rate = 0, drain_after_last_ack = 0;
  double mid_rate = 0;
  // the load window: first publish sent -> all deliveries in (or given up) + 200 ms
  double wall = 0, outbound_cpu = NAN, pg_cpu = NAN, bench_cpu = 0, receiver_cpu = 0;
  double machine_busy_pct = 0;
  double round_trips = NAN, stale = NAN;  // summed over the processes
  // 2 s before the load, nothing published: the background (claim and config polls, leases)
  double idle_seconds = 0, idle_round_trips = NAN, idle_pg_cpu = NAN, idle_outbound_cpu = NAN;
  double avg_body = 0, avg_head = 0;
  uint64_t loopback_bytes = 0;
  bool complete = false, server_died = false, publish_timed_out = false;
  std::vector<std::string> errors;
  std::vector<ScaleProc> procs;
  SignatureTally signatures;  // sampled webhooks (every 50th), each verified

  double PerDelivery(double v) const { return unique > 0 ? v / static_cast<double>(unique) : NAN; }
  double PerEvent(double v) const { return accepted > 0 ? v / static_cast<double>(accepted) : NAN; }
  // Round trips per event without the background rate measured while idle.
  double LoadRoundTripsPerEvent() const {
    if (std::isnan(round_trips) || std::isnan(idle_round_trips) || idle_seconds <= 0) return NAN;
    return PerEvent(std::max(0.0, round_trips - idle_round_trips / idle_seconds * wall));
  }
};

// CPU seconds by thread name (the pool's threads share a name), from `before` to now.
std::vector<std::pair<std::string, double>> ThreadCpuByName(
    pid_t pid, const std::unordered_map<int, std::pair<std::string, double>>& before) {
  std::map<std::string, double> by_name;
  for (auto& [tid, v] : ThreadCpu(pid)) {
    auto it = before.find(tid);
    by_name[v.first] += v.second - (it == before.end() ? 0 : it->second.second);
  }
  std::vector<std::pair<std::string, double>> out(by_name.begin(), by_name.end());
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.second > b.second; });
  if (out.size() > 4) out.resize(4);
  return out;
}

// One scale-out scenario: fresh store (a new database on the server, or a new SQLite file), the
// processes of `sc`, K subscriptions, an idle window, then N events published to the processes
// that take the API (all, api) and every delivery awaited. False (h.failure set) only when the
// harness cannot do its job.
bool RunScaleScenario(Harness& h, const ScaleScenario& sc, int k, const PgServer& server, int index,
                      ScaleResult* out) {
  const pid_t postmaster = server.postmaster;
  const Options& opt = h.opt;
  ScaleResult& r = *out;
  r.label = sc.label;
  r.pg = sc.pg;
  r.k = k;
  r.events = opt.events;
  std::string dir = MakeTempDir(opt.tmp, "scale");
  if (dir.empty()) {
    h.failure = "mkdtemp in " + opt.tmp + ": " + std::strerror(errno);
    return false;
  }
  h.dirs.push_back(dir);
  std::string dsn, err;
  // Declared before the servers: dropped after they stopped, on every path.
  std::optional<PgDatabase> database;
  if (sc.pg) {
    database.emplace(server,
                     "outbound_bench_" + std::to_string(getpid()) + "_" + std::to_string(index),
                     h.opt.KeepPgDatabases());
    if (!database->ok()) {
      h.failure = sc.label + ": " + database->error();
      return false;
    }
    dsn = database->dsn();
  }
  std::vector<std::unique_ptr<Server>> servers;
  std::vector<Server*> all, api;
  for (size_t i = 0; i < sc.roles.size(); ++i) {
    ServerSpec spec = BaseSpec(opt);
    spec.name = sc.roles[i] + std::to_string(i + 1);
    spec.role = sc.roles[i];
    if (sc.pg) {
      spec.db = dsn;
      spec.secrets_key = kBenchSecretsKey;
    }
    servers.push_back(std::make_unique<Server>());
    // One after the other: the first migrates the new database (the others would wait for its
    // advisory lock anyway).
    if (!servers.back()->Start(opt.bin, dir, spec, &err)) {
      h.failure = sc.label + ": " + spec.name + ": " + err;
      servers.clear();
      return false;
    }
    all.push_back(servers.back().get());
    if (spec.role != "worker") api.push_back(servers.back().get());
  }
  Fixture fx;
  if (api.empty() || !SetUp(*api[0], h.rx.port(), k, 100, &fx, &err)) {
    h.failure = sc.label + ": set-up failed: " + err + "\n--- server log tail ---\n" +
                (api.empty() ? std::string("(no API process)") : api[0]->LogTail(30));
    servers.clear();
    return false;
  }
  // Another process's caches (fan-out lists, subscriptions) follow a change within 2 s.
  if (all.size() > 1) SleepMs(2500);

  auto round_trips = [&](std::vector<double>* per, std::vector<double>* stale) {
    double sum = 0;
    for (Server* s : all) {
      StoreCounters c = sc.pg ? ScrapeStoreCounters(s->base()) : StoreCounters{};
      per->push_back(c.round_trips);
      stale->push_back(c.stale);
      sum += c.round_trips;
    }
    return sum;
  };
  auto outbound_cpu = [&](std::vector<double>* per) {
    double sum = 0;
    for (Server* s : all) {
      double v = ProcCpuSeconds("/proc/" + std::to_string(s->pid()) + "/stat");
      if (per) per->push_back(v);
      sum += v;
    }
    return sum;
  };
  auto pg_cpu = [&] { return sc.pg && postmaster > 0 ? TreeCpuSeconds(postmaster) : NAN; };

  // Idle: what the processes and the server cost with nothing to do.
  {
    std::vector<double> a, b;
    double rt0 = round_trips(&a, &b), pg0 = pg_cpu(), ob0 = outbound_cpu(nullptr);
    int64_t t0 = NowNs();
    SleepMs(2000);
    a.clear();
    b.clear();
    double rt1 = round_trips(&a, &b), pg1 = pg_cpu(), ob1 = outbound_cpu(nullptr);
    r.idle_seconds = Secs(NowNs() - t0);
    r.idle_round_trips = rt1 - rt0;
    r.idle_pg_cpu = pg1 - pg0;
    r.idle_outbound_cpu = ob1 - ob0;
  }

  // The load.
  h.rx.Reset();
  PublishLog log;
  log.Init(opt.events);
  std::vector<double> rt_before, stale_before, cpu_before;
  std::vector<std::unordered_map<int, std::pair<std::string, double>>> threads_before;
  threads_before.reserve(all.size());
  for (Server* s : all) threads_before.push_back(ThreadCpu(s->pid()));
  round_trips(&rt_before, &stale_before);
  outbound_cpu(&cpu_before);
  double pg_before = pg_cpu();
  double bench0 = ProcCpuSeconds("/proc/self/stat");
  double rx0 = ProcCpuSeconds("/proc/self/task/" + std::to_string(h.rx.tid()) + "/stat");
  MachineCpu m0 = ReadMachineCpu();
  uint64_t lo0 = LoopbackBytes();
  int64_t t0 = NowNs();
  int64_t deadline = t0 + static_cast<int64_t>(opt.phase_timeout * 1e9);
  Publish(api, fx, opt.events, opt.concurrency, 0, deadline, &log);
  r.accepted = log.accepted;
  r.failed = log.failed;
  r.retried = log.retried;
  r.status503 = log.status503;
  r.errors = log.errors;
  r.publish_timed_out = log.timed_out;
  r.server_died = log.server_died;
  r.expected = log.accepted * static_cast<uint64_t>(k);
  if (!r.server_died) AwaitDeliveries(h.rx, all, r.expected, deadline, 10.0, &r.server_died);
  SleepMs(200);  // late duplicates, if any
  std::vector<double> cpu_after, rt_after, stale_after;
  r.outbound_cpu = outbound_cpu(&cpu_after);
  double pg_after = pg_cpu();
  r.bench_cpu = ProcCpuSeconds("/proc/self/stat") - bench0;
  r.receiver_cpu = ProcCpuSeconds("/proc/self/task/" + std::to_string(h.rx.tid()) + "/stat") - rx0;
  MachineCpu m1 = ReadMachineCpu();
  r.loopback_bytes = LoopbackBytes() - lo0;
  r.wall = Secs(NowNs() - t0);
  r.machine_busy_pct = 100.0 * static_cast<double>(m1.busy - m0.busy) /
                       static_cast<double>(std::max<uint64_t>(1, m1.total - m0.total));
  r.pg_cpu = pg_after - pg_before;
  r.outbound_cpu -= std::accumulate(cpu_before.begin(), cpu_before.end(), 0.0);
  for (size_t i = 0; i < all.size(); ++i) {
    ScaleProc p;
    p.role = sc.roles[i];
    if (all[i]->Alive()) {
      p.cpu = cpu_after[i] - cpu_before[i];
      p.threads = ThreadCpuByName(all[i]->pid(), threads_before[i]);
    } else {
      r.server_died = true;
    }
    r.procs.push_back(p);
  }
  round_trips(&rt_after, &stale_after);
  if (sc.pg) {
    r.round_trips = 0;
    r.stale = 0;
    for (size_t i = 0; i < all.size(); ++i) {
      r.procs[i].round_trips = rt_after[i] - rt_before[i];
      r.procs[i].stale = stale_after[i] - stale_before[i];
      r.round_trips += r.procs[i].round_trips;  // NAN when a scrape failed
      r.stale += r.procs[i].stale;
    }
  }
  if (r.server_died) r.outbound_cpu = NAN;  // a dead process's CPU is unknown

  Tally tally = CountDeliveries(h.rx.Take(), log, k);
  r.unique = tally.unique;
  r.duplicates = tally.duplicates;
  r.unknown = tally.unknown;
  r.avg_body = tally.avg_body;
  r.avg_head = tally.avg_head;
  r.signatures = CheckSamples(h.rx.Samples(), fx);
  // Complete (the only figures anything is derived from): every event accepted, every (event,
  // subscription) pair delivered, every sampled signature verified.
  r.complete = !r.server_died && log.accepted == static_cast<uint64_t>(opt.events) &&
               r.unique >= r.expected && r.expected > 0 && r.signatures.ok();
  const std::vector<int64_t>& times = tally.times;
  if (!times.empty() && log.t_first_send > 0) {
    r.e2e_seconds = Secs(times.back() - log.t_first_send);
    r.deliveries_per_s = r.e2e_seconds > 0 ? static_cast<double>(r.unique) / r.e2e_seconds : 0;
    size_t a = times.size() / 10, b = times.size() * 9 / 10;
    if (b > a && times[b] > times[a])
      r.mid_rate = static_cast<double>(b - a) / Secs(times[b] - times[a]);
    if (log.t_last_ack > 0) r.drain_after_last_ack = Secs(times.back() - log.t_last_ack);
  }
  if (log.t_last_ack > log.t_first_send)
    r.ingest_rate = static_cast<double>(log.accepted) / Secs(log.t_last_ack - log.t_first_send);
  for (size_t i = 0; i < servers.size(); ++i)
    h.Finish(*servers[i],
             (sc.label + ", K=" + std::to_string(k) + ": " + sc.roles[i] + std::to_string(i + 1))
                 .c_str());
  servers.clear();
  return true;
}

std::string Us(double seconds_per_item) {
  return std::isnan(seconds_per_item) ? "n/a" : Fmt("%.0f", seconds_per_item * 1e6);
}

void PrintScaleResult(const ScaleResult& r) {
  std::printf("  %s, K=%d: accepted %" PRIu64 "/%d (failed %" PRIu64 ", retried %" PRIu64
              ", 503s %" PRIu64 "); deliveries %" PRIu64 " unique of %" PRIu64 " expected, %" PRIu64
              " duplicates, %" PRIu64 " unknown%s\n",
              r.label.c_str(), r.k, r.accepted, r.events, r.failed, r.retried, r.status503,
              r.unique, r.expected, r.duplicates, r.unknown, r.complete ? "" : "; NOT COMPLETE");
  std::printf(
      "      first publish -> last delivery %.2f s; ingest %.0f events/s; last 202 -> last "
      "delivery %.2f s; middle 80%% of deliveries at %.0f/s\n",
      r.e2e_seconds, r.ingest_rate, r.drain_after_last_ack, r.mid_rate);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  double others =
      std::max(0.0, r.machine_busy_pct - 100 *
                                             ((std::isnan(r.outbound_cpu) ? 0 : r.outbound_cpu) +
                                              (std::isnan(r.pg_cpu) ? 0 : r.pg_cpu) + r.bench_cpu) /
                                             std::max(1e-9, r.wall) / static_cast<double>(cores));
  std::printf(
      "      CPU over %.2f s: outbound %s s, PostgreSQL %s s, bench %.2f s (receiver %.2f s = %s "
      "us/delivery); machine busy %.0f%% of %ld cores (others ~%.0f%%)\n",
      r.wall, Fmt("%.2f", r.outbound_cpu).c_str(), r.pg ? Fmt("%.2f", r.pg_cpu).c_str() : "-",
      r.bench_cpu, r.receiver_cpu, Us(r.PerDelivery(r.receiver_cpu)).c_str(), r.machine_busy_pct,
      cores, others);
  for (size_t i = 0; i < r.procs.size(); ++i) {
    const ScaleProc& p = r.procs[i];
    std::printf("      %-7s CPU %s s (%s%% of a core)", (p.role + std::to_string(i + 1)).c_str(),
                Fmt("%.2f", p.cpu).c_str(),
                Fmt("%.0f", 100 * p.cpu / std::max(1e-9, r.wall)).c_str());
    if (r.pg)
      std::printf(", round trips %s, stale-lease writes %s", Fmt("%.0f", p.round_trips).c_str(),
                  Fmt("%.0f", p.stale).c_str());
    std::printf("; threads:");
    for (auto& [name, sec] : p.threads) std::printf(" %s %.2fs", name.c_str(), sec);
    std::printf("\n");
  }
  if (r.pg)
    std::printf(
        "      idle %.1f s before the load: %s round trips/s, PostgreSQL %s%% of a core, outbound "
        "%s%% of a core\n",
        r.idle_seconds, Fmt("%.0f", r.idle_round_trips / std::max(1e-9, r.idle_seconds)).c_str(),
        Fmt("%.1f", 100 * r.idle_pg_cpu / std::max(1e-9, r.idle_seconds)).c_str(),
        Fmt("%.1f", 100 * r.idle_outbound_cpu / std::max(1e-9, r.idle_seconds)).c_str());
  std::printf(
      "      webhook request %.0f B (head %.0f + body %.0f); loopback %.0f B per delivery "
      "(machine-wide: publish, webhook, database); signatures of sampled webhooks: %s%s%s\n",
      r.avg_head + r.avg_body, r.avg_head, r.avg_body,
      r.unique ? static_cast<double>(r.loopback_bytes) / static_cast<double>(r.unique) : 0.0,
      r.signatures.Text().c_str(), r.server_died ? "; SERVER DIED" : "",
      r.publish_timed_out ? "; PUBLISH TIMED OUT" : "");
  std::vector<std::pair<std::string, int>> errors;  // the samples, identical ones counted
  for (auto& e : r.errors) {
    auto it = std::find_if(errors.begin(), errors.end(), [&](auto& x) { return x.first == e; });
    if (it == errors.end())
      errors.emplace_back(e, 1);
    else
      it->second++;
  }
  for (auto& [e, n] : errors)
    std::printf("      error sample%s: %s\n", n > 1 ? Fmt(" (x%.0f)", n).c_str() : "", e.c_str());
}

int RunScaleout(Harness& h, double idle_busy_pct) {
  const Options& opt = h.opt;
  if (access(opt.bin.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "e2e_bench: %s is not an executable (--bin PATH or OUTBOUND_BIN)\n",
                 opt.bin.c_str());
    return 1;
  }
  // The server: an existing one (--pg-dsn), or a throwaway cluster stopped whatever happens.
  ClusterStopper stopper;
  PgServer server;
  std::string err;
  if (!OpenPgServer(h, &server, &err)) {
    std::fprintf(stderr, "e2e_bench: %s\n", err.c_str());
    return 1;
  }

  std::vector<BaselineResult> bases;
  size_t body = 0;
  if (!BaselineBodySize(h, true, &body)) return 1;
  auto baseline = [&](const char* when) {
    for (CurlLoop loop : {CurlLoop::kPerform, CurlLoop::kSocket}) {
      bases.push_back(
          RunBaseline(h.rx, opt.baseline, opt.base_concurrency, opt.phase_timeout, loop, body));
      PrintBaseline(when, bases.back());
      std::fflush(stdout);
    }
  };
  baseline("before");
  if (bases[0].ok == 0 || bases[1].ok == 0) {
    std::fprintf(stderr, "e2e_bench: the baseline sender delivered nothing: harness failure\n");
    return 1;
  }

  const std::vector<ScaleScenario> scenarios = {
      {"SQLite, 1 process", false, {"all"}},
      {"PostgreSQL, 1 process", true, {"all"}},
      {"PostgreSQL, 3 x all", true, {"all", "all", "all"}},
      {"PostgreSQL, 1 api + 2 worker", true, {"api", "worker", "worker"}},
  };
  std::vector<ScaleResult> results;
  int index = 0;
  for (int k : opt.scaleout_k) {
    for (const ScaleScenario& sc : scenarios) {
      std::printf("running: %s, K=%d, %d events...\n", sc.label.c_str(), k, opt.events);
      std::fflush(stdout);
      ScaleResult r;
      if (!RunScaleScenario(h, sc, k, server, ++index, &r)) {
        std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
        return 1;
      }
      results.push_back(r);
    }
  }
  baseline("after");
  const BaselineResult* ref = &bases[0];
  for (auto& b : bases)
    if (b.rps > ref->rps) ref = &b;
  const double base = ref->rps;
  const double base_cpu =
      ref->ok ? (ref->bench_cpu - ref->receiver_cpu) / static_cast<double>(ref->ok) : NAN;

  std::printf("\n================ Outbound scale-out benchmark ================\n");
  std::printf("machine: %ld cores; busy before the run (other processes): %.0f%%\n",
              sysconf(_SC_NPROCESSORS_ONLN), idle_busy_pct);
  std::printf("%s\n", server.Text().c_str());
  std::printf(
      "baseline: bare libcurl multi sender, %d in flight, keep-alive, signed bodies of %zu B\n",
      opt.base_concurrency, body);
  const char* whens[] = {"before", "before", "after", "after"};
  for (size_t i = 0; i < bases.size(); ++i) PrintBaseline(whens[i % 4], bases[i]);
  std::printf(
      "  reference (the highest): %.0f req/s; its sender CPU per request (bench minus receiver): "
      "%s us\n",
      base, Us(base_cpu).c_str());
  std::printf(
      "\nper scenario: N=%d events published over %d connections shared out among the processes "
      "that take the API; CPU per delivery = CPU seconds over the load window / unique "
      "deliveries; round trips = delta of outbound_store_round_trips_total summed over the "
      "processes (SQLite: none, the store is in the process); 'load only' subtracts the rate "
      "measured idle just before\n",
      opt.events, opt.concurrency);
  for (int k : opt.scaleout_k) {
    std::printf("\nK=%d subscription%s\n", k, k == 1 ? "" : "s");
    std::printf("  %-30s %9s %8s %10s %10s %10s %9s %9s  %s\n", "scenario", "deliv/s", "vs bare",
                "outbound", "PostgreSQL", "together", "RT/event", "RT/event", "");
    std::printf("  %-30s %9s %8s %10s %10s %10s %9s %9s  %s\n", "", "", "", "us/deliv", "us/deliv",
                "us/deliv", "", "load only", "status");
    std::printf("  %-30s %9.0f %8.3f %10s %10s %10s %9s %9s  %s\n", "bare libcurl sender", base,
                1.0, Us(base_cpu).c_str(), "-", Us(base_cpu).c_str(), "-", "-",
                "reference (sender only)");
    const ScaleResult* pg1 = nullptr;
    for (auto& r : results) {
      if (r.k != k) continue;
      double ob = r.PerDelivery(r.outbound_cpu), pg = r.pg ? r.PerDelivery(r.pg_cpu) : NAN;
      std::printf("  %-30s %9.0f %8.3f %10s %10s %10s %9s %9s  %s\n", r.label.c_str(),
                  r.deliveries_per_s, base > 0 ? r.deliveries_per_s / base : 0.0, Us(ob).c_str(),
                  r.pg ? Us(pg).c_str() : "-", Us(r.pg ? ob + pg : ob).c_str(),
                  r.pg ? Fmt("%.1f", r.PerEvent(r.round_trips)).c_str() : "-",
                  r.pg ? Fmt("%.1f", r.LoadRoundTripsPerEvent()).c_str() : "-",
                  r.complete ? "complete" : "NOT COMPLETE");
      if (r.pg && r.procs.size() == 1) pg1 = &r;
    }
    for (auto& r : results) {
      if (r.k != k || !r.pg || r.procs.size() < 2 || !pg1) continue;
      std::printf(
          "  %s / PostgreSQL, 1 process: deliveries/s %.2f x, outbound CPU per delivery "
          "%s x%s\n",
          r.label.c_str(),
          pg1->deliveries_per_s > 0 ? r.deliveries_per_s / pg1->deliveries_per_s : 0.0,
          Fmt("%.2f", r.PerDelivery(r.outbound_cpu) / pg1->PerDelivery(pg1->outbound_cpu)).c_str(),
          r.complete && pg1->complete ? "" : " (from NOT COMPLETE data)");
    }
    std::printf("  if CPU were the only limit (1 / CPU per delivery): deliveries/s per core of\n");
    for (auto& r : results) {
      if (r.k != k) continue;
      double ob = r.PerDelivery(r.outbound_cpu), pg = r.pg ? r.PerDelivery(r.pg_cpu) : NAN;
      std::printf("    %-30s Outbound %8s   PostgreSQL %8s%s\n", r.label.c_str(),
                  Fmt("%.0f", 1.0 / ob).c_str(), r.pg ? Fmt("%.0f", 1.0 / pg).c_str() : "-",
                  r.complete ? "" : "   (NOT COMPLETE)");
    }
  }
  std::printf("\n");
  for (auto& r : results) PrintScaleResult(r);
  std::printf("\nservers:\n");
  for (auto& s : h.servers) {
    std::string stop = s.was_dead           ? std::string("had already died")
                       : s.stop_seconds < 0 ? std::string("SIGTERM ignored for 15 s, SIGKILLed")
                                            : Fmt("SIGTERM -> exit %.2f s", s.stop_seconds);
    std::printf("  %-46s %s (%s%s); log %zu lines, %zu error-ish, %zu warning-ish\n",
                s.label.c_str(), stop.c_str(), s.exit_text.c_str(),
                s.clean ? ", clean" : ", NOT CLEAN", s.log_lines, s.log_errors, s.log_warnings);
    for (auto& l : s.log_samples) std::printf("      log: %s\n", l.c_str());
  }
  bool all_complete =
      std::all_of(results.begin(), results.end(), [](const ScaleResult& r) { return r.complete; });
  std::printf("%s\n", all_complete ? "every scenario complete"
                                   : "NOT COMPLETE: some deliveries are missing (see above)");
  if (opt.keep_logs) {
    for (auto& d : h.dirs) std::printf("kept: %s\n", d.c_str());
  }
  return 0;
}

}  // namespace bench
