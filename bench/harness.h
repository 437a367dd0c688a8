// The harness: the options, the receiver, fresh servers and what each phase measured; the entry
// points of the bench's modes (one file each).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common.h"
#include "options.h"
#include "receiver.h"
#include "server.h"

namespace bench {

class RunStore;  // stores.h

// The value of the sample `name` (with its labels, as printed: `a_bucket{le="+Inf"}`) in a
// Prometheus text exposition, from its line "NAME VALUE"; NAN when there is none.
double SampleValue(const std::string& exposition, const std::string& name);

// The spec every scenario's server starts from: --request-timeout when the run gives one.
ServerSpec BaseSpec(const Options& opt);

// The store's group commits (GET /metrics: outbound_store_commit_duration_seconds and
// outbound_store_committed_tasks_total), read at a phase's start and end. A server that does not
// expose them, or does not answer, leaves ok false.
struct CommitCounts {
  bool ok = false;
  double commits = 0, tasks = 0, seconds = 0;
  double round_trips = 0;  // outbound_store_round_trips_total (PostgreSQL; 0 on SQLite)
  // outbound_sqlite_wal_sync_duration_seconds' _count and _sum (SQLite; 0 on PostgreSQL and on
  // builds from before 7 Dec, whose commits synced the WAL themselves)
  double wal_syncs = 0, wal_sync_seconds = 0;
  std::vector<std::pair<double, double>> buckets;  // (upper bound in s, cumulative); +inf last
};
CommitCounts ScrapeCommits(Server& srv);
// "1530 commits of 13.6 tasks on average; COMMIT mean 1.018 ms, p50 <= 1 ms, p99 <= 5 ms, p99.9
// <= 10 ms" (and, when the store counts them, "; 4.2 round trips per commit" and "; 812 WAL
// syncs, mean 0.51 ms")
// over the window between `before` and `after` (the percentiles as the buckets' bounds).
std::string CommitText(const CommitCounts& before, const CommitCounts& after);

struct ThroughputResult {
  int k = 0;
  int events = 0;
  uint64_t accepted = 0, failed = 0, retried = 0, status503 = 0;
  uint64_t expected = 0, delivered = 0, unique = 0, duplicates = 0, unknown = 0;
  double ingest_rate = 0, ingest_seconds = 0;
  double deliveries_per_s = 0, e2e_seconds = 0, mid_rate = 0, drain_after_last_ack = 0;
  double avg_body = 0;
  bool complete = false, publish_timed_out = false, server_died = false;
  std::vector<std::string> errors;
  CpuWindow cpu;
  CommitCounts commits_before, commits_after;
  long rss_kb = -1, hwm_kb = -1;
  SignatureTally signatures;  // sampled webhooks (every 50th), each verified
  uint64_t rx_connections = 0, expect100 = 0;
  // Throughput(k, out, /*held=*/true): the subscriptions were paused while publishing (each
  // delivery stored and held, nothing sent), resumed after the last 202; `cpu` is then the
  // publish's window alone. Deliveries received while paused, and the PATCHes' errors.
  uint64_t received_while_paused = 0;
  std::string pause_errors;
  // Why the figures of this run cannot support a "met" ("" when none): a server that died, a
  // publish that timed out, events not accepted, (event, subscription) pairs missing, sampled
  // signatures that failed or none verified.
  std::string Problems() const;
};

struct IsolationResult {
  bool hang = false;
  int k = 0, healthy_k = 0;  // subscriptions, of which healthy (never hang)
  uint64_t target = 0;       // events the run was to publish
  uint64_t accepted = 0, failed = 0, healthy_expected = 0, healthy_unique = 0, hung = 0;
  // Per hung subscription, what arrived within the window (first publish -> last healthy
  // delivery): its requests, those with ordinavo-attempt >= 2, the highest attempt.
  struct HungLane {
    int path = 0;
    std::string event_types;
    uint64_t attempts = 0, retries = 0;
    int max_attempt = 0;
  };
  std::vector<HungLane> lanes;
  uint64_t Retries() const {
    uint64_t n = 0;
    for (auto& l : lanes) n += l.retries;
    return n;
  }
  double healthy_per_s = 0, seconds = 0;
  bool complete = false, server_died = false, publish_timed_out = false;
  std::vector<std::string> errors;
  SignatureTally signatures;
  // Why this run cannot support a "met" ("" when none); `request_timeout` in seconds.
  std::string Problems(double request_timeout) const;
};

struct LatencyResult {
  // published: events the run was to send; failed: publishes answered with an error;
  // unanswered: not sent or no answer before the phase ended; missing: accepted, never received.
  uint64_t published = 0, accepted = 0, failed = 0, unanswered = 0, delivered = 0, missing = 0,
           received_before_ack = 0;
  // p50 p90 p99 p99.9 max in milliseconds over every published event, the failed, unanswered and
  // missing ones counted as infinitely late. sent: publish sent -> received (the headline);
  // ack: 202 received -> webhook received, negative when the webhook came first.
  double ack_p[5] = {}, sent_p[5] = {};
  SignatureTally signatures;
  double achieved_rate = 0, max_late_ms = 0;
  bool server_died = false;
  std::vector<std::string> errors;
  CpuWindow cpu;
  CommitCounts commits_before, commits_after;
  uint64_t rx_connections = 0, expect100 = 0;
};

struct ServerReport {
  std::string label;
  double stop_seconds = 0;
  bool was_dead = false;
  std::string exit_text;
  bool clean = false;
  size_t log_lines = 0, log_errors = 0, log_warnings = 0;
  std::vector<std::string> log_samples;
  uint64_t db_bytes = 0;
};

void Inspect(Server& srv, ServerReport* rep);
std::string MakeTempDir(const std::string& parent, const char* tag);

struct Harness {
  Options opt;
  Receiver rx;
  std::vector<ServerReport> servers;
  std::vector<std::string> dirs;
  std::string failure;

  ~Harness();
  // Starts a fresh server with K subscriptions; on failure sets `failure`.
  bool Fresh(Server& srv, const char* tag, int k, Fixture* fx);
  // The same with one subscription to "/sN" for each N of `paths` (to `event_types[i]`, default
  // "appointment.*").
  bool Fresh(Server& srv, const char* tag, const std::vector<int>& paths, Fixture* fx,
             const std::vector<std::string>& event_types = {});
  // The same on a server started as `spec` says (its store in a new directory: dirs.back()).
  bool Fresh(Server& srv, const char* tag, const ServerSpec& spec, const std::vector<int>& paths,
             Fixture* fx, const std::vector<std::string>& event_types = {});
  void Finish(Server& srv, const char* label);
  // `held`: the subscriptions paused while publishing (see ThroughputResult's
  // received_while_paused).
  bool Throughput(int k, ThroughputResult* out, bool held = false);  // throughput.cpp
  // One isolation run (isolation.cpp): the healthy subscriptions of K = opt.iso_k, plus, when
  // `hang`, every tenth, which never answers; `events` events, or (0) as many as are accepted in
  // opt.iso_window seconds.
  // `store`: where the server keeps its data (RunStore::Apply); null: a fresh SQLite store.
  bool Isolation(bool hang, int events, IsolationResult* out, const RunStore* store = nullptr);
  // `spec`: the server's store and flags (RunStore::Apply); null: a fresh SQLite store.
  bool Latency(LatencyResult* out, const ServerSpec* spec = nullptr);  // latency.cpp
  int latency_phases = 0;  // Latency() calls so far: the phase column of --latency-csv
  // The body length of the webhooks Outbound sends in the throughput scenario (a fresh server,
  // K = 1, a few events published with appointment ids of the run's typical length), for the
  // baseline's bodies; 0 with `failure` set when it cannot be measured.
  size_t ProbeBodySize();
};

// The body length the baseline sends: --baseline-body, else Outbound's (ProbeBodySize), else
// (no binary, --only-baseline) 1,024 bytes; printed. False (printed) when the probe fails.
bool BaselineBodySize(Harness& h, bool have_bin, size_t* bytes);

// The modes (main.cpp picks one).
int RunEndToEnd(Harness& h, double idle_busy_pct);  // e2e.cpp: baseline, throughput, latency
int RunIsolation(Harness& h);                       // isolation.cpp
int RunScaleout(Harness& h, double idle_busy_pct);  // scaleout.cpp
int RunHistory(Harness& h);                         // history.cpp
int RunBacklog(Harness& h);                         // backlog.cpp
int RunWal(Harness& h);                             // wal.cpp
int RunBatch(Harness& h);                           // batch.cpp
int RunLatencyFloor(Harness& h);                    // floor.cpp
void PrintThroughput(const std::vector<ThroughputResult>& tputs, double base);
void PrintLatency(const Options& opt, const LatencyResult& lat);
// Stops the throwaway PostgreSQL cluster (--scaleout, --stores pg) if one runs (pg.cpp).
void StopCluster();

}  // namespace bench
