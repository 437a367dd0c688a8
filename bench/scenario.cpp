#include "scenario.h"

#include <sys/stat.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "harness.h"

namespace bench {

namespace json = boost::json;

bool AddClient(Server& srv, Fixture* fx, int rx_port, const std::vector<int>& paths,
               const std::vector<std::string>& types, std::vector<std::string>* ids,
               std::string* err) {
  Api api(srv.base());
  std::string body = R"({"name":"Bench second client","sourceSystem":"bench_other"})";
  Resp r = api.Call("POST", "/v1/clients", fx->tenant_key, &body);
  std::string client_id = Field(r.body, "clientId");
  if (r.status != 201 || client_id.empty()) {
    *err = "POST /v1/clients: HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 300);
    return false;
  }
  r = api.Call("POST", "/v1/clients/" + client_id + "/keys", fx->tenant_key, nullptr);
  std::string key = Field(r.body, "apiKey");
  if (r.status != 201 || key.empty()) {
    *err = "POST /v1/clients/{id}/keys: HTTP " + std::to_string(r.status);
    return false;
  }
  for (size_t i = 0; i < paths.size(); ++i) {
    body = json::serialize(json::object{
        {"url", "http://127.0.0.1:" + std::to_string(rx_port) + "/s" + std::to_string(paths[i])},
        {"eventTypes", json::array{json::string(i < types.size() ? types[i] : "appointment.*")}},
        {"description", "bench second client " + std::to_string(paths[i])}});
    r = api.Call("POST", "/v1/subscriptions", key, &body);
    std::string secret = Field(r.body, "secret"), id = Field(r.body, "subscriptionId");
    if (id.empty()) id = Field(r.body, "id");
    if (r.status != 201 || secret.empty() || id.empty()) {
      *err = "POST /v1/subscriptions (second client): HTTP " + std::to_string(r.status) + " " +
             r.body.substr(0, 300);
      return false;
    }
    fx->secrets.push_back(secret);
    fx->paths.push_back(paths[i]);
    ids->push_back(id);
  }
  return true;
}

uint64_t FileBytes(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_size);
}

Sampler::Sampler(std::vector<pid_t> pids, SizeProbe probe, int period_ms)
    : pids_(std::move(pids)), probe_(std::move(probe)) {
  thread_ = std::thread([this, period_ms] {
    const int64_t t0 = NowNs();
    // Bounded: stops when asked (every mode does, on every path) or after a day.
    for (int64_t i = 0; !stop_.load() && i < 86'400'000 / std::max(1, period_ms); ++i) {
      long rss = 0;
      for (pid_t pid : pids_) rss += std::max(0L, ProcStatusKb(pid, "VmRSS:"));
      if (rss > max_rss_kb_.load()) max_rss_kb_ = rss;
      const StoreSizes sizes = probe_();
      const uint64_t wal = sizes.wal, db = sizes.data;
      if (wal > max_wal_.load()) max_wal_ = wal;
      if (db > max_db_.load()) max_db_ = db;
      {
        std::lock_guard<std::mutex> l(mu_);
        trace_.emplace_back(Secs(NowNs() - t0), wal);
      }
      SleepMs(period_ms);
    }
  });
}

void Sampler::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void Sampler::NewStage() {
  max_rss_kb_ = 0;
  max_wal_ = 0;
  max_db_ = 0;
}

std::vector<std::pair<double, uint64_t>> Sampler::WalTrace() {
  std::lock_guard<std::mutex> l(mu_);
  return trace_;
}

std::vector<double> LatenciesMs(const PublishLog& log, const std::vector<Received>& recs, int path,
                                int from, int to) {
  std::unordered_map<std::string, int64_t> first;  // eventId -> first arrival at the path
  first.reserve(recs.size());
  for (const Received& r : recs) {
    if (r.path != path) continue;
    auto [it, fresh] = first.emplace(std::string(r.id.data()), r.t_ns);
    if (!fresh) it->second = std::min(it->second, r.t_ns);
  }
  std::vector<double> out;
  for (int i = std::max(0, from); i < to && static_cast<size_t>(i) < log.sent.size(); ++i) {
    const size_t k = static_cast<size_t>(i);
    double ms = INFINITY;
    if (log.acked[k] > 0 && !log.event_id[k].empty()) {
      auto it = first.find(log.event_id[k]);
      if (it != first.end()) ms = static_cast<double>(it->second - log.sent[k]) / 1e6;
    }
    out.push_back(ms);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string LatencyText(const std::vector<double>& s) {
  if (s.empty()) return "no event";
  size_t late = static_cast<size_t>(std::count(s.begin(), s.end(), INFINITY));
  auto f = [](double v) { return std::isinf(v) ? std::string("inf") : Fmt("%.1f", v); };
  return "p50 " + f(Percentile(s, 0.5)) + " ms, p99 " + f(Percentile(s, 0.99)) + " ms, max " +
         f(s.back()) + " ms (of " + std::to_string(s.size()) + " events; " + std::to_string(late) +
         " not accepted or never received)";
}

double MetricContaining(Server& srv, const std::string& needle) {
  Api api(srv.base());
  Resp r = api.Call("GET", "/metrics", "", nullptr, 5000);
  size_t p = 0;
  while (r.status == 200 && p < r.body.size()) {
    size_t e = r.body.find('\n', p);
    if (e == std::string::npos) e = r.body.size();
    std::string line = r.body.substr(p, e - p);
    p = e + 1;
    if (line.empty() || line[0] == '#') continue;
    size_t sp = line.rfind(' ');
    if (sp != std::string::npos && line.substr(0, sp).find(needle) != std::string::npos)
      return std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return NAN;
}

void PrintServers(const Harness& h) {
  for (const ServerReport& s : h.servers)
    std::printf(
        "  server %-8s %s (%s%s); log %zu lines, %zu error-ish, %zu warning-ish; db %s\n",
        s.label.c_str(),
        s.was_dead ? "had already died" : Fmt("SIGTERM -> exit %.2f s", s.stop_seconds).c_str(),
        s.exit_text.c_str(), s.clean ? ", clean" : ", NOT CLEAN", s.log_lines, s.log_errors,
        s.log_warnings,
        s.db_bytes > 0 ? (Fmt("%.1f", static_cast<double>(s.db_bytes) / 1e6) + " MB").c_str()
                       : "(no file: PostgreSQL, or none)");
  for (const ServerReport& s : h.servers)
    for (const std::string& line : s.log_samples)
      std::printf("    %s log: %s\n", s.label.c_str(), line.c_str());
}

std::string JoinReasons(const std::vector<std::string>& reasons) {
  std::string out;
  for (auto& s : reasons) out += (out.empty() ? "" : "; ") + s;
  return out;
}

}  // namespace bench
