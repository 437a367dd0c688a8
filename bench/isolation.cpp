// Endpoint isolation (--isolation): a tenth of the endpoints hang; the healthy ones' throughput
// against runs where nothing hangs.
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <unordered_set>

#include "harness.h"
#include "publish.h"

namespace bench {

bool Harness::Isolation(bool hang, IsolationResult* out) {
  Server srv;
  Fixture fx;
  const int k = opt.iso_k;
  if (!Fresh(srv, hang ? "iso-hang" : "iso-calm", k, &fx)) return false;
  IsolationResult& r = *out;
  r.hang = hang;
  auto is_hanging = [](int path) { return path % 10 == 9; };  // the same set in every run
  int healthy = 0;
  for (int i = 0; i < k; ++i) healthy += is_hanging(i) ? 0 : 1;
  rx.Reset();
  rx.SetHangEvery(hang ? 10 : 0);
  PublishLog log;
  log.Init(opt.iso_events);
  int64_t deadline = NowNs() + static_cast<int64_t>(opt.phase_timeout * 1e9);
  Publish(srv, fx, opt.iso_events, opt.concurrency, 0, deadline, &log);
  r.accepted = log.accepted;
  r.errors = log.errors;
  r.server_died = log.server_died;
  r.healthy_expected = log.accepted * static_cast<uint64_t>(healthy);
  uint64_t all = hang ? r.healthy_expected : log.accepted * static_cast<uint64_t>(k);
  if (!r.server_died) AwaitDeliveries(rx, srv, all, deadline, 10.0, &r.server_died);
  r.hung = rx.hung();
  std::unordered_set<std::string> accepted_ids(log.event_id.begin(), log.event_id.end());
  std::unordered_set<std::string> seen;
  int64_t last = 0;
  for (auto& rec : rx.Take()) {
    std::string id(rec.id.data());
    if (rec.path < 0 || rec.path >= k || is_hanging(rec.path) || !accepted_ids.count(id)) {
      continue;
    }
    if (seen.insert(id + "/" + std::to_string(rec.path)).second) last = std::max(last, rec.t_ns);
  }
  r.healthy_unique = seen.size();
  r.complete = r.healthy_unique >= r.healthy_expected && r.healthy_expected > 0;
  if (last > log.t_first_send && log.t_first_send > 0) {
    r.seconds = Secs(last - log.t_first_send);
    r.healthy_per_s = static_cast<double>(r.healthy_unique) / r.seconds;
  }
  rx.SetHangEvery(0);
  Finish(srv, hang ? "isolation, hanging" : "isolation, calm");
  return true;
}

int RunIsolation(Harness& h) {
  const Options& opt = h.opt;
  if (access(opt.bin.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "e2e_bench: %s is not an executable (--bin PATH or OUTBOUND_BIN)\n",
                 opt.bin.c_str());
    return 1;
  }
  std::vector<IsolationResult> runs;
  for (bool hang : {false, true, false}) {
    std::printf("running: isolation, %s, K=%d, %d events...\n", hang ? "hanging" : "calm",
                opt.iso_k, opt.iso_events);
    std::fflush(stdout);
    IsolationResult r;
    if (!h.Isolation(hang, &r)) {
      std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
      return 1;
    }
    runs.push_back(r);
  }
  std::printf("\n================ Outbound isolation benchmark ================\n");
  std::printf(
      "K=%d subscriptions on one receiver; in the hanging run every tenth (s9, s19, ...) "
      "is read and never answered; %d events fanned out to all K\n",
      opt.iso_k, opt.iso_events);
  std::printf("%-22s %16s %22s %10s %8s\n", "run", "healthy deliv./s", "healthy unique/expected",
              "hung reqs", "seconds");
  for (auto& r : runs) {
    std::printf("%-22s %16.0f %11" PRIu64 "/%-10" PRIu64 " %10" PRIu64 " %8.2f%s%s\n",
                r.hang ? "hanging" : "calm", r.healthy_per_s, r.healthy_unique, r.healthy_expected,
                r.hung, r.seconds, r.complete ? "" : "   INCOMPLETE",
                r.server_died ? "   SERVER DIED" : "");
    for (auto& e : r.errors) std::printf("      error sample: %s\n", e.c_str());
  }
  double calm = (runs[0].healthy_per_s + runs[2].healthy_per_s) / 2;
  double ratio = calm > 0 ? runs[1].healthy_per_s / calm : 0;
  std::printf(
      "healthy throughput, hanging / calm (mean of the two calm runs): %.3f   goal >= 0.9: "
      "%s\n",
      ratio, ratio >= 0.9 && runs[1].complete ? "met" : "NOT MET");
  for (auto& s : h.servers) {
    std::string stop = s.was_dead           ? std::string("had already died")
                       : s.stop_seconds < 0 ? std::string("SIGTERM ignored for 15 s, SIGKILLed")
                                            : Fmt("SIGTERM -> exit %.2f s", s.stop_seconds);
    std::printf("  server %-20s %s (%s%s)\n", s.label.c_str(), stop.c_str(), s.exit_text.c_str(),
                s.clean ? ", clean" : ", NOT CLEAN");
  }
  return 0;
}

}  // namespace bench
