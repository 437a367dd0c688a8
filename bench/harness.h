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
  long rss_kb = -1, hwm_kb = -1;
  std::string signature_check;
  uint64_t rx_connections = 0, expect100 = 0;
};

struct IsolationResult {
  bool hang = false;
  uint64_t accepted = 0, healthy_expected = 0, healthy_unique = 0, hung = 0;
  double healthy_per_s = 0, seconds = 0;
  bool complete = false, server_died = false;
  std::vector<std::string> errors;
};

struct LatencyResult {
  uint64_t published = 0, accepted = 0, failed = 0, delivered = 0, missing = 0,
           received_before_ack = 0;
  double ack_p[5] = {}, sent_p[5] = {};  // p50 p90 p99 p99.9 max, milliseconds
  double achieved_rate = 0, max_late_ms = 0;
  bool server_died = false;
  std::vector<std::string> errors;
  CpuWindow cpu;
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
  void Finish(Server& srv, const char* label);
  bool Throughput(int k, ThroughputResult* out);  // throughput.cpp
  // One isolation run: K = opt.iso_k subscriptions; when `hang`, every tenth never answers.
  bool Isolation(bool hang, IsolationResult* out);  // isolation.cpp
  bool Latency(LatencyResult* out);                 // latency.cpp
};

// The modes (main.cpp picks one).
int RunEndToEnd(Harness& h, double idle_busy_pct);  // e2e.cpp: baseline, throughput, latency
int RunIsolation(Harness& h);                       // isolation.cpp
int RunScaleout(Harness& h, double idle_busy_pct);  // scaleout.cpp
void PrintThroughput(const std::vector<ThroughputResult>& tputs, double base);
void PrintLatency(const Options& opt, const LatencyResult& lat);
// Stops the throwaway PostgreSQL cluster of --scaleout if one runs (scaleout.cpp).
void StopCluster();

}  // namespace bench
