#include "options.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace bench {

[[noreturn]] void Usage(const char* why) {
  std::fprintf(
      stderr,
      "e2e_bench: %s\nusage: e2e_bench [--bin PATH] [--events N] [--quick] [--baseline N]\n"
      "  [--concurrency C] [--rate R] [--latency-seconds S] [--phase-timeout S]\n"
      "  [--total-timeout S] [--only-baseline] [--raw-sender] [--baseline-body B]\n"
      "  [--request-timeout S]\n"
      "  [--isolation [--isolation-events N | --isolation-window S] [--isolation-sparse-every M]]\n"
      "  [--scaleout [--scaleout-k K,...] [--pg-dsn URL] [--pg-script PATH]]\n"
      "  [--history [--history-rows N] [--history-events M] [--pg-vacuum]]\n"
      "  [--backlog [--backlog-waiting N] [--backlog-rate R] [--backlog-csv PATH]]\n"
      "  [--stage-timeout S] [--wal [--wal-seconds S] [--wal-k K] [--wal-lease S]]\n"
      "  [--stores sqlite,pg,pg3 (--history, --backlog, --wal, --batch, --latency-floor, "
      "--isolation; default sqlite)] "
      "[--pg-max-wal-size "
      "SIZE]\n"
      "  [--batch [--batch-events N] [--batch-size B] [--batch-concurrency C] [--batch-k K] "
      "[--batch-held]]\n"
      "  [--latency-floor [--latency-runs R]] [--latency-csv PATH]\n"
      "  [--tmp DIR] [--keep-logs]\n",
      why);
  std::exit(2);
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  if (const char* e = std::getenv("OUTBOUND_BIN")) o.bin = e;
  if (o.bin.empty()) o.bin = "./build/outbound";
  if (const char* t = std::getenv("TMPDIR")) o.tmp = t;
  if (o.tmp.empty()) o.tmp = "/tmp";
#ifdef OUTBOUND_SOURCE_DIR
  o.pg_script = OUTBOUND_SOURCE_DIR "/scripts/pg-test-cluster.sh";
#endif
  bool events_set = false, baseline_set = false, total_set = false, quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    auto num = [&](double lo, double hi) {
      std::string v = next();
      char* end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(d >= lo && d <= hi))
        Usage(("bad value for " + a).c_str());
      return d;
    };
    if (a == "--bin")
      o.bin = next();
    else if (a == "--events") {
      o.events = static_cast<int>(num(1, 10'000'000));
      events_set = true;
    } else if (a == "--baseline") {
      o.baseline = static_cast<int>(num(1, 100'000'000));
      baseline_set = true;
    } else if (a == "--concurrency")
      o.concurrency = static_cast<int>(num(1, 1024));
    else if (a == "--rate")
      o.rate = static_cast<int>(num(1, 100000));
    else if (a == "--latency-seconds")
      o.latency_seconds = num(0.1, 600);
    else if (a == "--phase-timeout")
      o.phase_timeout = num(1, 3600);
    else if (a == "--total-timeout") {
      o.total_timeout = num(10, 86400);
      total_set = true;
    } else if (a == "--scaleout")
      o.scaleout = true;
    else if (a == "--scaleout-k") {
      std::string v = next();
      o.scaleout_k.clear();
      std::istringstream in(v);
      std::string one;
      while (std::getline(in, one, ',')) {
        char* end = nullptr;
        long k = std::strtol(one.c_str(), &end, 10);
        if (one.empty() || *end != '\0' || k < 1 || k > 100) Usage("bad value for --scaleout-k");
        o.scaleout_k.push_back(static_cast<int>(k));
      }
      if (o.scaleout_k.empty()) Usage("bad value for --scaleout-k");
    } else if (a == "--pg-dsn")
      o.pg_dsn = next();
    else if (a == "--pg-max-wal-size") {
      o.pg_max_wal_size = next();
      // A size as PostgreSQL reads it: digits and a unit (kB, MB, GB); nothing else reaches SQL.
      size_t d = o.pg_max_wal_size.find_first_not_of("0123456789");
      std::string unit = d == std::string::npos ? "" : o.pg_max_wal_size.substr(d);
      if (d == 0 || (unit != "kB" && unit != "MB" && unit != "GB"))
        Usage("bad value for --pg-max-wal-size (e.g. 48MB)");
    } else if (a == "--pg-script")
      o.pg_script = next();
    else if (a == "--tmp")
      o.tmp = next();
    else if (a == "--only-baseline")
      o.only_baseline = true;
    else if (a == "--raw-sender")
      o.raw_sender = true;
    else if (a == "--isolation")
      o.isolation = true;
    else if (a == "--isolation-events") {
      o.iso_events = static_cast<int>(num(1, 1'000'000));
      o.iso_events_set = true;
    } else if (a == "--isolation-sparse-every")
      o.iso_sparse_every = static_cast<int>(num(2, 1'000'000));
    else if (a == "--isolation-window")
      o.iso_window = num(1, 3600);
    else if (a == "--baseline-body")
      o.baseline_body = static_cast<int>(num(200, 1'000'000));
    else if (a == "--request-timeout")
      o.request_timeout = static_cast<int>(num(1, 600));
    else if (a == "--history")
      o.history = true;
    else if (a == "--history-rows")
      o.history_rows = static_cast<int>(num(0, 100'000'000));
    else if (a == "--pg-vacuum")
      o.pg_vacuum = true;
    else if (a == "--history-events")
      o.history_events = static_cast<int>(num(10, 10'000'000));
    else if (a == "--backlog")
      o.backlog = true;
    else if (a == "--backlog-waiting")
      o.backlog_waiting = static_cast<int>(num(10, 100'000'000));
    else if (a == "--backlog-rate")
      o.backlog_rate = static_cast<int>(num(1, 10000));
    else if (a == "--backlog-csv")
      o.backlog_csv = next();
    else if (a == "--latency-csv")
      o.latency_csv = next();
    else if (a == "--stage-timeout")
      o.stage_timeout = num(10, 86400);
    else if (a == "--wal")
      o.wal = true;
    else if (a == "--wal-seconds")
      o.wal_seconds = num(1, 86400);
    else if (a == "--wal-lease")
      o.wal_lease = static_cast<int>(num(1, 3600));
    else if (a == "--wal-k")
      o.wal_k = static_cast<int>(num(1, 100));
    else if (a == "--stores") {
      std::istringstream in(next());
      std::string one;
      o.stores.clear();
      while (std::getline(in, one, ',')) {
        if (one == "postgres" || one == "postgresql") one = "pg";
        if (one != "sqlite" && one != "pg" && one != "pg3")
          Usage("bad value for --stores (sqlite, pg, pg3)");
        o.stores.push_back(one);
      }
      if (o.stores.empty()) Usage("bad value for --stores (sqlite, pg, pg3)");
    } else if (a == "--keep-logs")
      o.keep_logs = true;
    else if (a == "--batch")
      o.batch = true;
    else if (a == "--batch-events")
      o.batch_events = static_cast<int>(num(1, 100'000'000));
    else if (a == "--batch-size")
      o.batch_size = static_cast<int>(num(1, 1000));
    else if (a == "--batch-concurrency")
      o.batch_concurrency = static_cast<int>(num(1, 64));
    else if (a == "--batch-k")
      o.batch_k = static_cast<int>(num(1, 100));
    else if (a == "--batch-held")
      o.batch_held = true;
    else if (a == "--latency-floor")
      o.latency_floor = true;
    else if (a == "--latency-runs")
      o.latency_runs = static_cast<int>(num(1, 15));
    else if (a == "--quick") {
      quick = true;
      if (!events_set) o.events = 2000;
      if (!baseline_set) o.baseline = 20000;
      o.latency_seconds = 2.0;
      o.warmup_seconds = 0.2;
      o.phase_timeout = 30.0;
    } else if (a == "-h" || a == "--help")
      Usage("help");
    else
      Usage(("unknown argument " + a).c_str());
  }
  if (o.scaleout) {
    // Four servers per K and a baseline before and after: smaller defaults than the full run.
    if (!events_set) o.events = quick ? 1000 : 5000;
    if (!baseline_set) o.baseline = quick ? 10000 : 30000;
    if (!total_set) o.total_timeout = 1800;
  }
  for (const std::string& st : o.stores)
    if (st == "pg3" && (!o.backlog || o.isolation || o.latency_floor))
      Usage("--stores pg3 (1 api + 2 worker) is for --backlog only");
  if (o.batch_held && !o.batch) Usage("--batch-held is for --batch only");
  // Per store: the modes run once on each.
  const double stores = static_cast<double>(o.stores.size());
  if ((o.history || o.backlog) && !total_set)
    o.total_timeout = (4 * o.stage_timeout + 600) * stores;
  if (o.batch && !total_set) o.total_timeout = (2 * o.stage_timeout + 600) * stores;
  if (o.wal && !total_set) o.total_timeout = (o.wal_seconds + 900) * stores;
  if ((o.latency_floor || o.isolation) && !total_set) o.total_timeout = 900 * stores;
  return o;
}

}  // namespace bench
