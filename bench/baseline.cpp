#include "baseline.h"

#include <cinttypes>
#include <cstdio>
#include <ctime>

#include "core/signing.h"

namespace bench {

namespace core = outbound::core;

std::string Pad(size_t n) {
  std::string s;
  static const char* words[] = {"pump",  "seal",  "sensor",  "cold",     "room",   "compressor",
                                "spare", "parts", "checked", "customer", "report", "signed"};
  for (size_t i = 0; s.size() < n; ++i) {
    if (!s.empty()) s.push_back(' ');
    s += words[i % 12];
  }
  s.resize(n);
  return s;
}

std::string BaselineBody(int64_t seq, std::string_view pad) {
  char id[40];
  std::snprintf(id, sizeof id, "evt_%026" PRId64, seq);
  char del[40];
  std::snprintf(del, sizeof del, "del_%026" PRId64, seq);
  std::string b;
  b.reserve(1100);
  b += "{\"eventId\":\"";
  b += id;
  b += "\",\"eventType\":\"appointment.problem_reported\",\"eventVersion\":\"v1\",\"tenantId\":1,"
       "\"occurredAtUtc\":\"2026-06-25T14:31:00Z\",\"deliveryId\":\"";
  b += del;
  b += "\",\"source\":\"ordinavo\",\"data\":{\"targetId\":991,\"externalId\":\"DEL-2026-000918\","
       "\"sourceSystem\":\"logistics_erp\",\"appointmentId\":";
  b += std::to_string(seq);
  b += ",\"problem\":{\"code\":\"PART_MISSING\",\"description\":\"";
  b += pad;
  b += "\"},\"status\":\"ProblemReported\"}}";
  return b;
}

size_t PrepareBaselineRequest(Slot* s, const std::string& key, std::string body) {
  s->body = std::move(body);
  int64_t ts = static_cast<int64_t>(std::time(nullptr));
  char id[40];
  std::snprintf(id, sizeof id, "evt_%026" PRId64, s->seq);
  std::string sig = core::Sign(key, id, ts, s->body);
  if (s->headers) curl_slist_free_all(s->headers);
  s->headers = nullptr;
  s->headers = curl_slist_append(s->headers, "Content-Type: application/json");
  s->headers = curl_slist_append(s->headers, "User-Agent: Outbound-baseline/0.1");
  s->headers = curl_slist_append(s->headers, (std::string("webhook-id: ") + id).c_str());
  s->headers = curl_slist_append(s->headers, ("webhook-timestamp: " + std::to_string(ts)).c_str());
  s->headers = curl_slist_append(s->headers, ("webhook-signature: " + sig).c_str());
  s->headers = curl_slist_append(s->headers, "ordinavo-event-type: appointment.problem_reported");
  s->headers =
      curl_slist_append(s->headers, (std::string("ordinavo-delivery-id: del_") + (id + 4)).c_str());
  s->headers = curl_slist_append(s->headers, "ordinavo-attempt: 1");
  s->headers = curl_slist_append(s->headers, "Expect:");
  curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
  curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body.data());
  curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(s->body.size()));
  return s->body.size();
}

std::string BaselineBodyOfSize(int64_t seq, size_t body_bytes, std::string_view pad) {
  static const size_t base0 = BaselineBody(0, "").size();
  const size_t len = base0 + std::to_string(seq).size() - 1;
  return BaselineBody(seq,
                      std::string_view(pad).substr(0, body_bytes > len ? body_bytes - len : 0));
}

BaselineResult RunBaseline(Receiver& rx, int n, int concurrency, double time_limit, CurlLoop loop,
                           size_t body_bytes) {
  BaselineResult r;
  r.loop = loop;
  rx.Reset();
  std::string key = core::DecodeSecret(core::NewSecret()).value();
  std::string url = "http://127.0.0.1:" + std::to_string(rx.port()) + "/base";
  // Every body is exactly `body_bytes` long (as long as Outbound's webhook body in the same
  // scenario): the filler makes up for the digits of the appointment id.
  const std::string pad = Pad(body_bytes);
  auto body_of = [&](int64_t seq) { return BaselineBodyOfSize(seq, body_bytes, pad); };
  uint64_t bytes_sent = 0;
  MultiPool pool(concurrency, loop);
  for (auto& s : pool.slots()) {
    curl_easy_setopt(s.easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(s.easy, CURLOPT_WRITEFUNCTION, DiscardWrite);
  }
  int64_t next = 0;
  auto prepare = [&](Slot* s) {
    s->seq = next++;
    bytes_sent += PrepareBaselineRequest(s, key, body_of(s->seq));
  };
  const BaselineMeter meter(rx);
  const int64_t t0 = meter.start_ns();
  const int64_t deadline = t0 + static_cast<int64_t>(time_limit * 1e9);
  int64_t t_last = t0;
  while (next < n && pool.busy() < concurrency) {
    Slot* s = pool.Free();
    prepare(s);
    pool.Start(s);
  }
  uint64_t done = 0;
  while (done < static_cast<uint64_t>(n)) {
    if (NowNs() > deadline) {
      r.timed_out = true;
      break;
    }
    pool.Pump([&](Slot* s, CURLcode rc, long status) {
      done++;
      t_last = NowNs();
      if (rc == CURLE_OK && status == 200)
        r.ok++;
      else
        r.failed++;
      if (next < n) {
        Slot* f = pool.Free();
        (void)s;
        prepare(f);
        pool.Start(f);
      }
    });
    if (done < static_cast<uint64_t>(n)) pool.Wait(100);
  }
  meter.Finish(r, rx, t_last, next, bytes_sent);
  return r;
}

BaselineMeter::BaselineMeter(const Receiver& rx)
    : cpu0_(ProcCpuSeconds("/proc/self/stat")),
      rcpu0_(ProcCpuSeconds("/proc/self/task/" + std::to_string(rx.tid()) + "/stat")),
      m0_(ReadMachineCpu()),
      t0_(NowNs()) {}

void BaselineMeter::Finish(BaselineResult& r, Receiver& rx, int64_t t_last, int64_t sent,
                           uint64_t bytes_sent) const {
  r.seconds = Secs(t_last - t0_);
  r.body_bytes = sent > 0 ? static_cast<double>(bytes_sent) / static_cast<double>(sent) : 0;
  r.rps = r.seconds > 0 ? static_cast<double>(r.ok) / r.seconds : 0;
  r.bench_cpu = ProcCpuSeconds("/proc/self/stat") - cpu0_;
  r.receiver_cpu = ProcCpuSeconds("/proc/self/task/" + std::to_string(rx.tid()) + "/stat") - rcpu0_;
  const MachineCpu m1 = ReadMachineCpu();
  r.machine_busy_pct = 100.0 * static_cast<double>(m1.busy - m0_.busy) /
                       static_cast<double>(std::max<uint64_t>(1, m1.total - m0_.total));
  for (int i = 0; i < 100 && rx.count() < r.ok; ++i) SleepMs(10);
  r.received = rx.count();
  r.connections = rx.connections();
}

// ------------------------------------------------------------------------------------------
// The outbound child process.

void PrintBaseline(const std::string& when, const BaselineResult& b) {
  std::string label = when + ", " + (b.raw ? "raw epoll, no libcurl" : LoopName(b.loop));
  std::printf(
      "  %-42s %8.0f req/s  (%" PRIu64 " ok, %" PRIu64 " failed, %" PRIu64 " received over %" PRIu64
      " connections, %.2f s, body %.0f B; CPU: bench %.2f s of which receiver %.2f s, the sender "
      "%.1f us per request, machine busy %.0f%%%s)\n",
      label.c_str(), b.rps, b.ok, b.failed, b.received, b.connections, b.seconds, b.body_bytes,
      b.bench_cpu, b.receiver_cpu,
      b.ok > 0 ? (b.bench_cpu - b.receiver_cpu) * 1e6 / static_cast<double>(b.ok) : 0.0,
      b.machine_busy_pct, b.timed_out ? ", TIMED OUT" : "");
}

}  // namespace bench
