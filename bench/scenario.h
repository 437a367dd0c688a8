// Shared by the store-history modes (--history, --backlog, --wal; issue 8): a second client with
// its own subscriptions, file sizes, a /proc sampler of the server, latencies of one subscription.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "publish.h"
#include "receiver.h"
#include "server.h"
#include "stores.h"

namespace bench {

// Adds a client of the fixture's tenant with its own API key and one subscription to
// "http://127.0.0.1:<rx_port>/sN" for each N of `paths` (event types `types[i]`). The secrets
// and paths are appended to `fx` (so CheckSamples knows them); the subscription ids go to `ids`.
bool AddClient(Server& srv, Fixture* fx, int rx_port, const std::vector<int>& paths,
               const std::vector<std::string>& types, std::vector<std::string>* ids,
               std::string* err);

// Size of a file in bytes, 0 when it does not exist.
uint64_t FileBytes(const std::string& path);

// Samples a process's VmRSS and its store's size and WAL's (stores.h: a SQLite file's, or a
// PostgreSQL database's tables and pg_wal) every `period_ms` on its own thread (reads /proc,
// stat, or asks the database: never waits for the child), keeping the maxima of the current stage.
class Sampler {
 public:
  Sampler(pid_t pid, SizeProbe probe, int period_ms)
      : Sampler(std::vector<pid_t>{pid}, std::move(probe), period_ms) {}
  // Several processes: VmRSS is their sum.
  Sampler(std::vector<pid_t> pids, SizeProbe probe, int period_ms);
  ~Sampler() { Stop(); }
  void Stop();
  // Starts a new stage: forgets the maxima of the previous one.
  void NewStage();
  long MaxRssKb() const { return max_rss_kb_.load(); }
  uint64_t MaxWal() const { return max_wal_.load(); }
  uint64_t MaxDb() const { return max_db_.load(); }
  // (seconds since start, WAL bytes) of every sample (for a short trace in the output).
  std::vector<std::pair<double, uint64_t>> WalTrace();

 private:
  std::vector<pid_t> pids_;
  SizeProbe probe_;
  std::atomic<bool> stop_{false};
  std::atomic<long> max_rss_kb_{0};
  std::atomic<uint64_t> max_wal_{0}, max_db_{0};
  std::mutex mu_;
  std::vector<std::pair<double, uint64_t>> trace_;
  std::thread thread_;
};

// Publish sent -> received at "/s<path>" in milliseconds for events [from, to) of `log`, sorted;
// an event not accepted or never received there is +infinity.
std::vector<double> LatenciesMs(const PublishLog& log, const std::vector<Received>& recs, int path,
                                int from, int to);
// "p50 1.2 ms, p99 3.4 ms, max 5.6 ms (of 1000; 0 late beyond the run)" (inf shown as "inf").
std::string LatencyText(const std::vector<double>& sorted_ms);

// The value of the first /metrics line whose name contains `needle` (e.g. "vm_step"); NAN when
// the server does not expose one.
double MetricContaining(Server& srv, const std::string& needle);

struct Harness;
// One line per server the harness stopped: how it stopped, its log, its database's size.
void PrintServers(const Harness& h);

// "a; b; c": the reasons joined.
std::string JoinReasons(const std::vector<std::string>& reasons);

}  // namespace bench
