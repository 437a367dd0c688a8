// The command line of e2e_bench.
#pragma once

#include <string>
#include <vector>

namespace bench {

// ------------------------------------------------------------------------------------------
// Options

struct Options {
  std::string bin;
  int events = 20000;
  int baseline = 100000;
  int concurrency = 48;       // publish connections
  int base_concurrency = 64;  // baseline transfers in flight
  int rate = 1000;            // latency phase, events/s
  double latency_seconds = 5.0;
  double warmup_seconds = 0.5;
  double phase_timeout = 60.0;   // hard cap per phase (publish + drain), seconds
  double total_timeout = 900.0;  // watchdog for the whole program
  bool only_baseline = false;
  bool isolation = false;  // only the isolation phases
  int iso_events = 2000;   // events per isolation run
  int iso_k = 20;          // subscriptions per isolation run; every tenth hangs
  bool keep_logs = false;
  std::string tmp;
  bool scaleout = false;                  // only the scale-out phases
  std::vector<int> scaleout_k = {1, 10};  // subscriptions per scale-out scenario
  std::string pg_dsn;                     // an existing server; empty: start a throwaway cluster
  std::string pg_script;                  // scripts/pg-test-cluster.sh
};

Options ParseOptions(int argc, char** argv);

}  // namespace bench
