// The baseline: a bare libcurl multi sender with Standard Webhooks signing per request.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "curl_pool.h"
#include "receiver.h"

namespace bench {

struct BaselineResult {
  uint64_t ok = 0, failed = 0, received = 0, connections = 0;
  double seconds = 0, rps = 0;
  double bench_cpu = 0, receiver_cpu = 0, machine_busy_pct = 0;
  double body_bytes = 0;  // average body of the requests sent
  bool timed_out = false;
  CurlLoop loop = CurlLoop::kSocket;
  bool raw = false;  // RunRawBaseline's: no libcurl (reference only, never a ratio's base)
};

// What a baseline run measures from its start: the bench's and the receiver's CPU, the
// machine's, the clock. Finish() fills `r`'s rates and CPU from it and waits (at most 1 s) for
// the receiver to count what was answered.
class BaselineMeter {
 public:
  explicit BaselineMeter(const Receiver& rx);
  int64_t start_ns() const { return t0_; }
  void Finish(BaselineResult& r, Receiver& rx, int64_t t_last, int64_t sent,
              uint64_t bytes_sent) const;

 private:
  double cpu0_, rcpu0_;
  MachineCpu m0_;
  int64_t t0_;
};

// Filler text of n bytes (event descriptions, the baseline's body).
std::string Pad(size_t n);
// A body of the baseline's shape for request `seq`, exactly `body_bytes` long (when it can be;
// the filler makes up for the digits of the id), padded from `pad` (Pad(body_bytes)).
std::string BaselineBodyOfSize(int64_t seq, size_t body_bytes, std::string_view pad);
// Sets `s` up to send `body` as a signed webhook of the baseline (Standard Webhooks headers
// signed with `key`, id from s->seq); returns the body's length.
size_t PrepareBaselineRequest(Slot* s, const std::string& key, std::string body);
// `body_bytes`: the length of every request body (give it Outbound's webhook body length).
BaselineResult RunBaseline(Receiver& rx, int n, int concurrency, double time_limit, CurlLoop loop,
                           size_t body_bytes);
// The same requests without libcurl: one writev per request and Beast's parser for the answer,
// on `concurrency` kept-alive connections to `rx` (raw_sender.cpp). Reference only.
BaselineResult RunRawBaseline(Receiver& rx, int n, int concurrency, double time_limit,
                              size_t body_bytes);
void PrintBaseline(const std::string& when, const BaselineResult& b);

}  // namespace bench
