#include "harness.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "publish.h"

namespace bench {

void Inspect(Server& srv, ServerReport* rep) {
  std::string log = srv.ReadLog();
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    rep->log_lines++;
    std::string lower = line;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    bool err = lower.find("error") != std::string::npos ||
               lower.find("[critical]") != std::string::npos ||
               lower.find("fatal") != std::string::npos || lower.find("abort") != std::string::npos;
    bool warn = lower.find("warn") != std::string::npos;
    if (err) rep->log_errors++;
    if (warn) rep->log_warnings++;
    if ((err || warn) && rep->log_samples.size() < 5)
      rep->log_samples.push_back(line.substr(0, 300));
  }
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (srv.db_path().empty()) break;  // PostgreSQL
    auto sz = std::filesystem::file_size(srv.db_path() + suffix, ec);
    if (!ec) rep->db_bytes += sz;
  }
}

double SampleValue(const std::string& exposition, const std::string& name) {
  const std::string key = "\n" + name + " ";
  const size_t k = ("\n" + exposition).find(key);
  return k == std::string::npos ? NAN
                                : std::strtod(exposition.c_str() + k - 1 + key.size(), nullptr);
}

ServerSpec BaseSpec(const Options& opt) {
  ServerSpec spec;
  if (opt.request_timeout > 0)
    spec.extra = {"--request-timeout", std::to_string(opt.request_timeout) + "s"};
  return spec;
}

CommitCounts ScrapeCommits(Server& srv) {
  CommitCounts c;
  Api api(srv.base());
  Resp r = api.Call("GET", "/metrics", kOperatorToken, nullptr, 5000);
  if (r.status != 200) return c;
  c.commits = SampleValue(r.body, "outbound_store_commit_duration_seconds_count");
  c.seconds = SampleValue(r.body, "outbound_store_commit_duration_seconds_sum");
  c.tasks = SampleValue(r.body, "outbound_store_committed_tasks_total");
  c.round_trips = SampleValue(r.body, "outbound_store_round_trips_total");
  if (std::isnan(c.round_trips)) c.round_trips = 0;
  c.wal_syncs = SampleValue(r.body, "outbound_sqlite_wal_sync_duration_seconds_count");
  c.wal_sync_seconds = SampleValue(r.body, "outbound_sqlite_wal_sync_duration_seconds_sum");
  if (std::isnan(c.wal_syncs) || std::isnan(c.wal_sync_seconds)) {
    c.wal_syncs = 0;
    c.wal_sync_seconds = 0;
  }
  if (std::isnan(c.commits) || std::isnan(c.seconds) || std::isnan(c.tasks)) return c;
  const std::string bucket = "\noutbound_store_commit_duration_seconds_bucket{le=\"";
  for (size_t k = r.body.find(bucket); k != std::string::npos; k = r.body.find(bucket, k + 1)) {
    const char* le = r.body.c_str() + k + bucket.size();
    const double bound = std::strncmp(le, "+Inf", 4) == 0 ? INFINITY : std::strtod(le, nullptr);
    const size_t sp = r.body.find("} ", k);
    if (sp == std::string::npos) return c;
    c.buckets.emplace_back(bound, std::strtod(r.body.c_str() + sp + 2, nullptr));
  }
  c.ok = !c.buckets.empty();
  return c;
}

std::string CommitText(const CommitCounts& before, const CommitCounts& after) {
  if (!before.ok || !after.ok) {
    return "not read (the server is gone, did not answer /metrics in 5 s, or does not expose "
           "its commits)";
  }
  if (before.buckets.size() != after.buckets.size()) return "not read (the buckets changed)";
  const double commits = after.commits - before.commits;
  if (commits <= 0) return "no commit";
  auto quantile = [&](double q) {
    for (size_t i = 0; i < after.buckets.size(); ++i) {
      if (after.buckets[i].second - before.buckets[i].second >= q * commits) {
        if (!std::isinf(after.buckets[i].first)) {
          return std::string("<= ") + Fmt("%g", 1e3 * after.buckets[i].first) + " ms";
        }
        return i == 0 ? std::string("(no finite bucket)")
                      : std::string("> ") + Fmt("%g", 1e3 * after.buckets[i - 1].first) + " ms";
      }
    }
    return std::string("?");
  };
  return Fmt("%.0f commits", commits) +
         Fmt(" of %.1f tasks on average", (after.tasks - before.tasks) / commits) +
         Fmt("; COMMIT mean %.3f ms", 1e3 * (after.seconds - before.seconds) / commits) + ", p50 " +
         quantile(0.5) + ", p99 " + quantile(0.99) + ", p99.9 " + quantile(0.999) +
         (after.round_trips > before.round_trips
              ? Fmt("; %.1f round trips per commit",
                    (after.round_trips - before.round_trips) / commits)
              : std::string()) +
         (after.wal_syncs > before.wal_syncs
              ? Fmt("; %.0f WAL syncs", after.wal_syncs - before.wal_syncs) +
                    Fmt(", mean %.3f ms", 1e3 * (after.wal_sync_seconds - before.wal_sync_seconds) /
                                              (after.wal_syncs - before.wal_syncs))
              : std::string());
}

std::string MakeTempDir(const std::string& parent, const char* tag) {
  std::string tmpl = parent + "/outbound-bench-" + tag + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) return "";
  return buf.data();
}

Harness::~Harness() {
  std::error_code ec;
  for (auto& d : dirs) {
    if (!opt.keep_logs) std::filesystem::remove_all(d, ec);
  }
}

bool Harness::Fresh(Server& srv, const char* tag, int k, Fixture* fx) {
  return Fresh(srv, tag, FirstPaths(k), fx);
}

bool Harness::Fresh(Server& srv, const char* tag, const std::vector<int>& paths, Fixture* fx,
                    const std::vector<std::string>& event_types) {
  return Fresh(srv, tag, BaseSpec(opt), paths, fx, event_types);
}

bool Harness::Fresh(Server& srv, const char* tag, const ServerSpec& spec,
                    const std::vector<int>& paths, Fixture* fx,
                    const std::vector<std::string>& event_types) {
  std::string dir = MakeTempDir(opt.tmp, tag);
  if (dir.empty()) {
    failure = "mkdtemp in " + opt.tmp + ": " + std::strerror(errno);
    return false;
  }
  dirs.push_back(dir);
  std::string err;
  if (!srv.Start(opt.bin, dir, spec, &err)) {
    failure = std::string(tag) + ": " + err;
    return false;
  }
  if (!SetUp(srv, rx.port(), paths, 100, fx, &err, event_types)) {
    failure = std::string(tag) + ": set-up failed: " + err + "\n--- server log tail ---\n" +
              srv.LogTail(30);
    return false;
  }
  return true;
}

void Harness::Finish(Server& srv, const char* label) {
  ServerReport rep;
  rep.label = label;
  rep.was_dead = !srv.Alive();
  rep.stop_seconds = srv.Stop();
  rep.exit_text = srv.ExitText();
  rep.clean = srv.clean_exit();
  Inspect(srv, &rep);
  servers.push_back(rep);
}

size_t Harness::ProbeBodySize() {
  Server srv;
  Fixture fx;
  if (!Fresh(srv, "probe", 1, &fx)) return 0;
  rx.Reset();
  // Webhook bodies differ in the target (event i names target i % 100) and the appointment id
  // (seq + 1): one event per target, with appointment ids of the run's typical length.
  const int n = static_cast<int>(fx.targets.size());
  PublishLog log;
  log.Init(n);
  Publish(srv, fx, n, 8, 0, NowNs() + 20'000'000'000LL, &log, opt.events / 2);
  bool died = false;
  AwaitDeliveries(rx, srv, log.accepted, NowNs() + 20'000'000'000LL, 5.0, &died);
  std::vector<Received> recs = rx.Take();
  srv.Stop();
  if (recs.empty()) {
    failure = "body probe: no webhook arrived (" + std::to_string(log.accepted) + " of " +
              std::to_string(n) + " events accepted)";
    return 0;
  }
  uint64_t sum = 0;
  for (auto& rec : recs) sum += rec.body_len;
  return static_cast<size_t>((sum + recs.size() / 2) / recs.size());
}

bool BaselineBodySize(Harness& h, bool have_bin, size_t* bytes) {
  if (h.opt.baseline_body > 0) {
    *bytes = static_cast<size_t>(h.opt.baseline_body);
    std::printf("baseline body: %zu B (--baseline-body)\n", *bytes);
    return true;
  }
  if (!have_bin) {
    *bytes = 1024;
    std::printf("baseline body: 1024 B (no outbound binary to measure its webhook body against)\n");
    return true;
  }
  std::printf("measuring the body of Outbound's webhooks for the baseline...\n");
  std::fflush(stdout);
  *bytes = h.ProbeBodySize();
  if (*bytes == 0) {
    std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
    return false;
  }
  std::printf("baseline body: %zu B, the length of Outbound's webhook body in this scenario\n",
              *bytes);
  return true;
}

}  // namespace bench
