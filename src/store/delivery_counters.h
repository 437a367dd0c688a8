// Process-wide counters of what this process's committed store transactions did, for GET
// /metrics (CONTRACT §13): events accepted, attempts by outcome with their durations, deliveries
// that went dead or were cancelled. Like store/counters.h they belong to the process (every
// store of the process adds to them); on a shared database each process counts its own.
//
// Why here and not in the dispatcher or the API: only the store knows what committed. A write
// task's `run` may be run more than once, and a task whose savepoint or transaction is rolled
// back changed nothing, so SqlTxn notes what a task did in a TxnTally, and the backend adds the
// tallies of the tasks that committed (PublishCommitted, after COMMIT and before the tasks'
// `done` callbacks, so a caller that saw its write confirmed also sees it counted).
// Thread-safe, lock-free.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/result.h"

namespace outbound::store {

// What one run of one write task did.
struct TxnTally {
  std::uint64_t events_accepted = 0;
  std::uint64_t dead = 0;
  std::uint64_t cancelled = 0;
  // Durations of the attempts recorded, in milliseconds, by outcome.
  std::vector<std::int64_t> succeeded_ms;
  std::vector<std::int64_t> failed_ms;
  // Not a metric: the task left deliveries due and unleased (for any process's claim), which
  // PostgreSQL announces at the commit (Store::SetDueHint).
  bool due_rows_added = false;

  bool Empty() const {
    return events_accepted == 0 && dead == 0 && cancelled == 0 && succeeded_ms.empty() &&
           failed_ms.empty();
  }
};

// Upper bounds (seconds) of outbound_attempt_duration_seconds' buckets; +Inf is implied. The
// request timeout is 15 s by default: the last finite bucket holds every attempt that ended
// before it.
inline constexpr std::array<double, 14> kAttemptBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                           1,     2.5,  5,     10,   15,  30,   60};

struct DeliveryCounterValues {
  std::uint64_t events_accepted = 0;
  std::uint64_t succeeded = 0;  // attempts answered 2xx
  std::uint64_t failed = 0;     // every other attempt
  std::uint64_t dead = 0;       // deliveries that went dead
  std::uint64_t cancelled = 0;  // deliveries cancelled (subscription disabled or deleted)
  // Attempts by bucket (not cumulative; index kAttemptBuckets.size() is above the last bound),
  // and the sum of their durations in milliseconds.
  std::array<std::uint64_t, kAttemptBuckets.size() + 1> duration_buckets{};
  std::uint64_t duration_sum_ms = 0;
};

class DeliveryCounters {
 public:
  static void Add(const TxnTally& t) {
    constexpr auto kRelaxed = std::memory_order_relaxed;
    if (t.events_accepted) events_accepted_.fetch_add(t.events_accepted, kRelaxed);
    if (t.dead) dead_.fetch_add(t.dead, kRelaxed);
    if (t.cancelled) cancelled_.fetch_add(t.cancelled, kRelaxed);
    if (!t.succeeded_ms.empty()) succeeded_.fetch_add(t.succeeded_ms.size(), kRelaxed);
    if (!t.failed_ms.empty()) failed_.fetch_add(t.failed_ms.size(), kRelaxed);
    for (const auto* list : {&t.succeeded_ms, &t.failed_ms}) {
      for (std::int64_t ms : *list) {
        const std::int64_t clamped = ms < 0 ? 0 : ms;
        buckets_[BucketOf(clamped)].fetch_add(1, kRelaxed);
        duration_sum_ms_.fetch_add(static_cast<std::uint64_t>(clamped), kRelaxed);
      }
    }
  }

  // Adds the tallies of the tasks whose result is ok (they committed).
  static void PublishCommitted(const std::vector<TxnTally>& tallies,
                               const std::vector<core::Status>& results) {
    for (std::size_t i = 0; i < tallies.size() && i < results.size(); ++i) {
      if (results[i] && !tallies[i].Empty()) Add(tallies[i]);
    }
  }

  static DeliveryCounterValues Read() {
    constexpr auto kRelaxed = std::memory_order_relaxed;
    DeliveryCounterValues v;
    v.events_accepted = events_accepted_.load(kRelaxed);
    v.succeeded = succeeded_.load(kRelaxed);
    v.failed = failed_.load(kRelaxed);
    v.dead = dead_.load(kRelaxed);
    v.cancelled = cancelled_.load(kRelaxed);
    for (std::size_t i = 0; i < v.duration_buckets.size(); ++i) {
      v.duration_buckets[i] = buckets_[i].load(kRelaxed);
    }
    v.duration_sum_ms = duration_sum_ms_.load(kRelaxed);
    return v;
  }

 private:
  static std::size_t BucketOf(std::int64_t ms) {
    for (std::size_t i = 0; i < kAttemptBuckets.size(); ++i) {
      if (static_cast<double>(ms) <= kAttemptBuckets[i] * 1000) return i;
    }
    return kAttemptBuckets.size();
  }

  static inline std::atomic<std::uint64_t> events_accepted_{0};
  static inline std::atomic<std::uint64_t> succeeded_{0};
  static inline std::atomic<std::uint64_t> failed_{0};
  static inline std::atomic<std::uint64_t> dead_{0};
  static inline std::atomic<std::uint64_t> cancelled_{0};
  static inline std::array<std::atomic<std::uint64_t>, kAttemptBuckets.size() + 1> buckets_{};
  static inline std::atomic<std::uint64_t> duration_sum_ms_{0};
};

}  // namespace outbound::store
