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
  bool raw_sender = false;      // also the sender without libcurl (raw_sender.cpp), for reference
  bool isolation = false;       // only the isolation phases
  int iso_events = 2000;        // events per isolation run, when given (--isolation-events)
  bool iso_events_set = false;  // false: the first calm run publishes for iso_window seconds
  int iso_k = 20;               // subscriptions per isolation run; every tenth hangs
  int iso_sparse_every = 200;   // isolation: every Mth event is the one the sparse hung lanes get
  double iso_window = 0;    // isolation: seconds of publishing in the first calm run; 0: 5 timeouts
  int baseline_body = 0;    // bytes per baseline body; 0: measured from Outbound's webhooks
  int request_timeout = 0;  // --request-timeout of the servers, seconds; 0: outbound's default
                            // (isolation: 2 s unless given)
  bool keep_logs = false;
  std::string tmp;
  bool scaleout = false;                  // only the scale-out phases
  std::vector<int> scaleout_k = {1, 10};  // subscriptions per scale-out scenario
  std::string pg_dsn;                     // an existing server; empty: start a throwaway cluster
  std::string pg_script;                  // scripts/pg-test-cluster.sh
  // --keep-logs also keeps each run's PostgreSQL database, on a server of --pg-dsn only (a
  // throwaway cluster is deleted whole at the end of the run).
  bool KeepPgDatabases() const { return keep_logs && !pg_dsn.empty(); }
  // --history (history.cpp): rows seeded before the measured events; events measured per run.
  bool history = false;
  int history_rows = 1'000'000;  // waiting deliveries of a down endpoint (each one failed attempt)
  int history_events = 2000;
  // --pg-vacuum: on PostgreSQL, VACUUM (ANALYZE) the database after the seeding (every run), so
  // the measured events do not share the server with autovacuum's pass over the rows just seeded.
  bool pg_vacuum = false;
  // --backlog (backlog.cpp): waiting deliveries; healthy events/s published during the drain;
  // where the drain's CSV goes (default: <tmp>/outbound-drain.csv).
  bool backlog = false;
  int backlog_waiting = 1'000'000;
  int backlog_rate = 50;
  std::string backlog_csv;
  // --latency-csv: every delivered event of a latency phase as a row (publish sent, 202,
  // received, in ms since the phase's first send), numbered by phase; written anew each run.
  std::string latency_csv;
  double stage_timeout = 3600;  // --history/--backlog: cap of one seeding, fill or drain
  // --wal (wal.cpp): seconds of full load before kill -9; subscriptions.
  bool wal = false;
  double wal_seconds = 600;
  int wal_k = 10;
  // --batch (batch.cpp): events published through POST /v1/events/batch, items per request,
  // requests in flight, subscriptions; the bare SQLite insert uses the same batch size.
  bool batch = false;
  int batch_events = 100'000;
  int batch_size = 500;
  int batch_concurrency = 4;
  int batch_k = 1;
  // --batch-held: the K subscriptions are paused while the batches are published (their
  // deliveries stored and held: the same rows as the bare insert, nothing sent meanwhile), then
  // resumed, and every delivery must still arrive.
  bool batch_held = false;
  // --latency-floor (floor.cpp): runs of (bare paced sender, fsync, Outbound) at --rate.
  bool latency_floor = false;
  int latency_runs = 3;
  int wal_lease = 0;  // --lease of the servers of --wal, seconds; 0: Outbound's default (30 s)
  // --stores (--history, --backlog, --wal, --batch, --latency-floor, --isolation): the stores
  // each scenario runs on, in this order, in one run: "sqlite", "pg" (PostgreSQL, the server of
  // --pg-dsn or a throwaway cluster), "pg3" (--backlog only: PostgreSQL with one `api` and two
  // `worker` processes).
  std::vector<std::string> stores = {"sqlite"};
  // --pg-max-wal-size SIZE (e.g. 48MB): set on the throwaway cluster (ALTER SYSTEM, reloaded)
  // before any run, with min_wal_size 32MB (its least: two 16 MB segments); empty: the server's
  // own settings (PostgreSQL 15: max_wal_size 1GB, min_wal_size 80MB).
  std::string pg_max_wal_size;
};

Options ParseOptions(int argc, char** argv);

}  // namespace bench
