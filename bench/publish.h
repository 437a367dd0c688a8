// Publishing events through POST /v1/events, waiting for their deliveries, and counting what
// the receiver got.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "receiver.h"
#include "server.h"

namespace bench {

// The body of POST /v1/events: an appointment.problem_reported (about 500 bytes), or a short
// appointment.started.
std::string EventBody(int64_t seq, int64_t target);
std::string StartedEventBody(int64_t seq, int64_t target);

struct PublishLog {
  std::vector<int64_t> sent, acked;   // per seq; 0 = never
  std::vector<std::string> event_id;  // per seq
  uint64_t accepted = 0, failed = 0, retried = 0, status503 = 0;
  std::vector<std::string> errors;  // first few error samples
  int64_t t_first_send = 0, t_last_ack = 0;
  int64_t max_late_ns = 0;  // latency phase: worst lateness of a send against its schedule
  // When set (steady clock, ns): no new event is sent from then on; those in flight finish.
  // `started` then tells how many of the n were sent. Atomic: the backlog scenario sets it from
  // its main thread while the publisher's thread reads it.
  std::atomic<int64_t> stop_new_ns{0};
  // When > 0: event seq is an appointment.started when seq % started_every == started_every - 1
  // (the others appointment.problem_reported).
  int64_t started_every = 0;
  uint64_t started = 0;
  bool timed_out = false, server_died = false;
  void Init(int n) {
    sent.assign(static_cast<size_t>(n), 0);
    acked.assign(static_cast<size_t>(n), 0);
    event_id.assign(static_cast<size_t>(n), std::string());
  }
};

// Publishes `n` events through `pool`. When `rate` > 0, event i is sent at t0 + i/rate (as close
// as the loop gets); otherwise as fast as the pool allows. Bounded by `deadline_ns`. With several
// servers, the connections are shared out among them (slot i publishes to servers[i % n]).
void Publish(const std::vector<Server*>& servers, const Fixture& fx, int n, int concurrency,
             double rate, int64_t deadline_ns, PublishLog* log, int seq_offset = 0);
void Publish(Server& srv, const Fixture& fx, int n, int concurrency, double rate,
             int64_t deadline_ns, PublishLog* log, int seq_offset = 0);

// Waits until the receiver holds `expected` deliveries, the deadline passes, nothing arrives for
// `stall_s`, or a server dies.
void AwaitDeliveries(Receiver& rx, const std::vector<Server*>& servers, uint64_t expected,
                     int64_t deadline_ns, double stall_s, bool* died);
void AwaitDeliveries(Receiver& rx, Server& srv, uint64_t expected, int64_t deadline_ns,
                     double stall_s, bool* died);

// What the receiver got in one phase, against the events accepted: deliveries to "/s0".."/sK-1"
// of accepted events, unique (eventId, subscription) pairs, duplicates and the rest ("unknown").
struct Tally {
  uint64_t delivered = 0, unique = 0, duplicates = 0, unknown = 0;
  double avg_body = 0, avg_head = 0;  // bytes per delivery received
  std::vector<int64_t> times;         // receive times of the deliveries, sorted
};

Tally CountDeliveries(const std::vector<Received>& recs, const PublishLog& log, int k);

}  // namespace bench
