#include "publish.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <string>
#include <thread>
#include <unordered_set>

#include "baseline.h"

namespace bench {

const std::string& Description() {
  static const std::string d = Pad(300);
  return d;
}

std::string StartedEventBody(int64_t seq, int64_t target) {
  return R"({"eventType":"appointment.started","targetId":)" + std::to_string(target) +
         R"(,"occurredAtUtc":"2026-06-25T14:31:00Z","data":{"appointmentId":)" +
         std::to_string(seq + 1) + R"(,"startedAtUtc":"2026-06-25T14:30:00Z"}})";
}

std::string EventBody(int64_t seq, int64_t target) {
  std::string b;
  b.reserve(600);
  b += R"({"eventType":"appointment.problem_reported","targetId":)";
  b += std::to_string(target);
  b += R"(,"occurredAtUtc":"2026-06-25T14:31:00Z","data":{"appointmentId":)";
  b += std::to_string(seq + 1);
  b += R"(,"problem":{"code":"PART_MISSING","description":")";
  b += Description();
  b += R"("}}})";
  return b;
}

void Publish(const std::vector<Server*>& servers, const Fixture& fx, int n, int concurrency,
             double rate, int64_t deadline_ns, PublishLog* log, int seq_offset) {
  int64_t next_alive_check = NowNs() + 100'000'000;
  MultiPool pool(concurrency, CurlLoop::kSocket);
  std::vector<std::string> urls;
  urls.reserve(servers.size());
  for (Server* srv : servers) urls.push_back(srv->base() + "/v1/events");
  curl_slist* common = nullptr;
  common = curl_slist_append(common, ("Authorization: Bearer " + fx.tenant_key).c_str());
  common = curl_slist_append(common, "Content-Type: application/json");
  common = curl_slist_append(common, "Expect:");
  size_t slot_index = 0;
  for (auto& s : pool.slots()) {
    curl_easy_setopt(s.easy, CURLOPT_URL, urls[slot_index++ % urls.size()].c_str());
    curl_easy_setopt(s.easy, CURLOPT_HTTPHEADER, common);
    curl_easy_setopt(s.easy, CURLOPT_WRITEFUNCTION, KeepWrite);
    curl_easy_setopt(s.easy, CURLOPT_WRITEDATA, &s.resp);
  }
  struct Retry {
    int64_t seq;
    int64_t not_before;
    int attempt;
  };
  std::deque<Retry> retries;
  int64_t next = 0;
  uint64_t finished = 0;
  auto start = [&](Slot* s, int64_t seq, int attempt) {
    s->seq = seq;
    s->attempt = attempt;
    const int64_t target = fx.targets[static_cast<size_t>(seq) % fx.targets.size()];
    s->body = log->started_every > 0 && seq % log->started_every == log->started_every - 1
                  ? StartedEventBody(seq + seq_offset, target)
                  : EventBody(seq + seq_offset, target);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body.data());
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(s->body.size()));
    int64_t now = NowNs();
    s->t_sent = now;
    if (log->sent[static_cast<size_t>(seq)] == 0) log->sent[static_cast<size_t>(seq)] = now;
    if (log->t_first_send == 0) log->t_first_send = now;
    pool.Start(s);
  };
  auto error = [&](std::string e) {
    if (log->errors.size() < 8) log->errors.push_back(std::move(e));
  };
  const int64_t t0 = NowNs();
  auto sched = [&](int64_t i) {
    return t0 + static_cast<int64_t>(static_cast<double>(i) * 1e9 / rate);
  };
  // The time new sends stop (0: not set), read once where it is used.
  auto stop_new = [&] { return log->stop_new_ns.load(std::memory_order_relaxed); };
  auto done = [&] {
    const int64_t stop = stop_new();
    return finished >= static_cast<uint64_t>(n) ||
           (stop > 0 && NowNs() >= stop && finished >= static_cast<uint64_t>(next) &&
            retries.empty());
  };
  while (!done()) {
    int64_t now = NowNs();
    if (now > deadline_ns) {
      log->timed_out = true;
      break;
    }
    if (now > next_alive_check) {
      next_alive_check = now + 100'000'000;
      if (std::any_of(servers.begin(), servers.end(), [](Server* srv) { return !srv->Alive(); })) {
        log->server_died = true;
        break;
      }
    }
    // retries first (503 / transport errors), then new events
    while (!retries.empty() && retries.front().not_before <= now) {
      Slot* s = pool.Free();
      if (!s) break;
      Retry r = retries.front();
      retries.pop_front();
      start(s, r.seq, r.attempt);
    }
    const int64_t stop = stop_new();
    while (next < n && (rate <= 0 || sched(next) <= now) && (stop == 0 || now < stop)) {
      Slot* s = pool.Free();
      if (!s) break;
      if (rate > 0) log->max_late_ns = std::max(log->max_late_ns, now - sched(next));
      start(s, next++, 1);
    }
    pool.Pump([&](Slot* s, CURLcode rc, long status) {
      int64_t t = NowNs();
      size_t i = static_cast<size_t>(s->seq);
      if (rc == CURLE_OK && status == 202) {
        log->acked[i] = t;
        log->t_last_ack = std::max(log->t_last_ack, t);
        log->event_id[i] = std::string(JsonStringField(s->resp, "eventId"));
        if (log->event_id[i].empty()) error("202 without eventId: " + s->resp.substr(0, 200));
        log->accepted++;
        finished++;
        return;
      }
      bool retryable = (rc != CURLE_OK) || status == 503 || status == 429;
      if (status == 503) log->status503++;
      if (retryable && s->attempt < 20) {
        log->retried++;
        if (rc != CURLE_OK) error(std::string("transport error: ") + curl_easy_strerror(rc));
        retries.push_back({s->seq, t + 100'000'000LL, s->attempt + 1});  // 100 ms back-off
        return;
      }
      error("HTTP " + std::to_string(status) +
            (rc != CURLE_OK ? std::string(" ") + curl_easy_strerror(rc) : "") + ": " +
            s->resp.substr(0, 300));
      log->failed++;
      finished++;
    });
    if (done()) break;
    const int64_t now_ns = NowNs();
    const int64_t stop_ns = stop_new();
    // A new send could start now: events left, a free slot, new sends not stopped.
    const bool room = next < n && pool.busy() < concurrency && (stop_ns == 0 || now_ns < stop_ns);
    // Unpaced, a slot that the transfers just finished freed is filled at once (the loop goes
    // round; each round after the first starts a transfer), as the baseline's sender starts its
    // next request from the finished one's callback. Until 6 Dec the loop first waited for the
    // next transfer to move (at most 5 ms): the slots that a batch of answers freed, and
    // Outbound answers per group commit, sat idle until then, often until the next commit's
    // answers.
    if (rate <= 0 && room) continue;
    // Until the next paced send, when one can start (a free slot, new sends not stopped), or a
    // retry's time, at most 5 ms; else until a transfer moves, at most 5 ms. Slept, never spun
    // (MultiPool::WaitNs).
    const bool can_send = rate > 0 && room;
    int64_t wait_ns = 5'000'000;
    if (can_send) wait_ns = std::clamp<int64_t>(sched(next) - now_ns, 0, wait_ns);
    if (!retries.empty() && pool.busy() < concurrency) {
      wait_ns = std::clamp<int64_t>(retries.front().not_before - now_ns, 0, wait_ns);
    }
    if (pool.busy() > 0) {
      pool.WaitNs(wait_ns);
    } else if (wait_ns > 0) {
      std::this_thread::sleep_for(std::chrono::nanoseconds(wait_ns));
    }
  }
  log->started = static_cast<uint64_t>(next);
  curl_slist_free_all(common);
}

void Publish(Server& srv, const Fixture& fx, int n, int concurrency, double rate,
             int64_t deadline_ns, PublishLog* log, int seq_offset) {
  Publish(std::vector<Server*>{&srv}, fx, n, concurrency, rate, deadline_ns, log, seq_offset);
}

// ------------------------------------------------------------------------------------------
// Phases against the real service.

void AwaitDeliveries(Receiver& rx, const std::vector<Server*>& servers, uint64_t expected,
                     int64_t deadline_ns, double stall_s, bool* died) {
  uint64_t last = rx.count();
  int64_t last_change = NowNs();
  while (rx.count() < expected && NowNs() < deadline_ns) {
    if (std::any_of(servers.begin(), servers.end(), [](Server* srv) { return !srv->Alive(); })) {
      *died = true;
      return;
    }
    SleepMs(5);
    uint64_t c = rx.count();
    if (c != last) {
      last = c;
      last_change = NowNs();
    } else if (Secs(NowNs() - last_change) > stall_s) {
      return;
    }
  }
}

void AwaitDeliveries(Receiver& rx, Server& srv, uint64_t expected, int64_t deadline_ns,
                     double stall_s, bool* died) {
  AwaitDeliveries(rx, std::vector<Server*>{&srv}, expected, deadline_ns, stall_s, died);
}

Tally CountDeliveries(const std::vector<Received>& recs, const PublishLog& log, int k) {
  Tally t;
  std::unordered_set<std::string> accepted_ids;
  accepted_ids.reserve(log.accepted * 2);
  for (auto& id : log.event_id)
    if (!id.empty()) accepted_ids.insert(id);
  std::unordered_set<std::string> seen;
  seen.reserve(recs.size() * 2);
  t.times.reserve(recs.size());
  double body = 0, head = 0;
  for (auto& rec : recs) {
    std::string id(rec.id.data());
    if (rec.path < 0 || rec.path >= k || !accepted_ids.count(id)) {
      t.unknown++;
      continue;
    }
    t.delivered++;
    body += rec.body_len;
    head += rec.head_len;
    t.times.push_back(rec.t_ns);
    if (!seen.insert(id + "/" + std::to_string(rec.path)).second) t.duplicates++;
  }
  t.unique = seen.size();
  if (t.delivered) {
    t.avg_body = body / static_cast<double>(t.delivered);
    t.avg_head = head / static_cast<double>(t.delivered);
  }
  std::sort(t.times.begin(), t.times.end());
  return t;
}

}  // namespace bench
