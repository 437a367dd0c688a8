// Process-wide counters of the store layer for GET /metrics (like a Prometheus client's default
// registry: every store of the process adds to them). Thread-safe, lock-free.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace outbound::store {

// Upper bounds, in microseconds, of outbound_store_commit_duration_seconds' buckets (one more
// holds what is above the last), also those of outbound_sqlite_wal_sync_duration_seconds. A
// SQLite commit took 0.08-0.10 ms at K=1 in the benchmarks since its WAL is synced apart (before,
// with its fsync, 0.28 ms at 1,000 events/s and 0.7-2.6 ms at full load), a sync of the WAL
// 0.45-0.51 ms; a PostgreSQL commit is a round trip and the server's WAL flush.
inline constexpr std::array<std::int64_t, 11> kCommitBucketsUs = {
    250, 500, 1'000, 2'000, 5'000, 10'000, 25'000, 50'000, 100'000, 250'000, 1'000'000};

struct CounterValues {
  // Requests sent to a database server and answered (PostgreSQL; SQLite has none).
  std::uint64_t round_trips = 0;
  // Outcomes and releases ignored because the row was no longer the caller's (a late process
  // whose lease had been taken over).
  std::uint64_t stale_lease_writes = 0;
  // SQLite virtual-machine steps of every statement run (sqlite3_stmt_status VM_STEP): the
  // work a statement did, deterministic for a given database and query, whatever the machine
  // is doing. Tests use it to prove that a hot path's cost does not grow with history.
  std::uint64_t sqlite_vm_steps = 0;
  // SQLite's PASSIVE WAL checkpoints by the checkpointer thread that copied frames into the
  // database file (each ends with an fsync of that file; passes that found nothing new to copy
  // are not counted).
  std::uint64_t sqlite_checkpoints = 0;
  // fdatasync calls on the SQLite store's WAL that made commits durable before their callbacks
  // ran (the writer commits without syncing; each sync covers every commit made while the one
  // before ran), by duration bucket (kCommitBucketsUs, as commits) with their sum in
  // microseconds; `sqlite_wal_syncs` is the buckets' total.
  std::uint64_t sqlite_wal_syncs = 0;
  std::array<std::uint64_t, kCommitBucketsUs.size() + 1> sqlite_wal_sync_buckets{};
  std::uint64_t sqlite_wal_sync_sum_us = 0;
  // Claimed deliveries not sent because their stored rendering could not be read back (a
  // damaged database): each is logged and given back due 5 s later, and counted every time.
  std::uint64_t unreadable_renderings = 0;
  // Write transactions committed by the store's writer threads (each a group commit of the
  // write tasks queued meanwhile), the tasks they held, and the time of their COMMIT by bucket
  // (not cumulative; index kCommitBucketsUs.size() is above the last bound) with its sum in
  // microseconds; `commits` is the buckets' total. A COMMIT's time is mostly the disk's sync
  // (SQLite) or the server's (PostgreSQL): what every publish waits for before its 202.
  std::uint64_t commits = 0;
  std::uint64_t committed_tasks = 0;
  std::array<std::uint64_t, kCommitBucketsUs.size() + 1> commit_buckets{};
  std::uint64_t commit_sum_us = 0;
};

class Counters {
 public:
  static void RoundTrip() { round_trips_.fetch_add(1, std::memory_order_relaxed); }
  static void StaleLeaseWrites(std::uint64_t n) {
    stale_lease_writes_.fetch_add(n, std::memory_order_relaxed);
  }
  static void SqliteVmSteps(std::uint64_t n) {
    sqlite_vm_steps_.fetch_add(n, std::memory_order_relaxed);
  }
  static void SqliteCheckpoint() { sqlite_checkpoints_.fetch_add(1, std::memory_order_relaxed); }
  // A sync of the SQLite WAL that took `took`.
  static void SqliteWalSynced(std::chrono::steady_clock::duration took) {
    Observe(took, sqlite_wal_sync_buckets_, sqlite_wal_sync_sum_us_);
  }
  static void UnreadableRendering() {
    unreadable_renderings_.fetch_add(1, std::memory_order_relaxed);
  }
  // A write transaction of `tasks` tasks committed; its COMMIT took `took`.
  static void Committed(std::size_t tasks, std::chrono::steady_clock::duration took) {
    Observe(took, commit_buckets_, commit_sum_us_);
    committed_tasks_.fetch_add(tasks, std::memory_order_relaxed);
  }
  // Steps of full table scans (sqlite3_stmt_status FULLSCAN_STEP), by statement text. Only
  // statements that scanned are recorded (a mutex then; none of the hot path does), so that a
  // test can name the statement whose cost grows with a table
  // (SqliteStore.HotPathNeverScansATable).
  static void SqliteFullScan(const char* sql, std::uint64_t steps) {
    std::lock_guard lock(fullscan_mu_);
    fullscan_steps_[sql != nullptr ? sql : ""] += steps;
  }
  static std::map<std::string, std::uint64_t> SqliteFullScans() {
    std::lock_guard lock(fullscan_mu_);
    return fullscan_steps_;
  }
  static CounterValues Read() {
    constexpr auto kRelaxed = std::memory_order_relaxed;
    CounterValues v;
    v.round_trips = round_trips_.load(kRelaxed);
    v.stale_lease_writes = stale_lease_writes_.load(kRelaxed);
    v.sqlite_vm_steps = sqlite_vm_steps_.load(kRelaxed);
    v.sqlite_checkpoints = sqlite_checkpoints_.load(kRelaxed);
    v.sqlite_wal_sync_sum_us = sqlite_wal_sync_sum_us_.load(kRelaxed);
    v.unreadable_renderings = unreadable_renderings_.load(kRelaxed);
    v.committed_tasks = committed_tasks_.load(kRelaxed);
    v.commit_sum_us = commit_sum_us_.load(kRelaxed);
    for (std::size_t i = 0; i < v.commit_buckets.size(); ++i) {
      v.commit_buckets[i] = commit_buckets_[i].load(kRelaxed);
      v.commits += v.commit_buckets[i];
      v.sqlite_wal_sync_buckets[i] = sqlite_wal_sync_buckets_[i].load(kRelaxed);
      v.sqlite_wal_syncs += v.sqlite_wal_sync_buckets[i];
    }
    return v;
  }

 private:
  using Buckets = std::array<std::atomic<std::uint64_t>, kCommitBucketsUs.size() + 1>;
  static void Observe(std::chrono::steady_clock::duration took, Buckets& buckets,
                      std::atomic<std::uint64_t>& sum_us) {
    const std::int64_t ns = std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::nanoseconds>(took).count());
    std::size_t b = 0;
    while (b < kCommitBucketsUs.size() && ns > kCommitBucketsUs[b] * 1'000) ++b;
    buckets[b].fetch_add(1, std::memory_order_relaxed);
    sum_us.fetch_add(static_cast<std::uint64_t>(ns / 1'000), std::memory_order_relaxed);
  }

  static inline std::atomic<std::uint64_t> round_trips_{0};
  static inline std::atomic<std::uint64_t> stale_lease_writes_{0};
  static inline std::atomic<std::uint64_t> sqlite_vm_steps_{0};
  static inline std::atomic<std::uint64_t> sqlite_checkpoints_{0};
  static inline Buckets sqlite_wal_sync_buckets_{};
  static inline std::atomic<std::uint64_t> sqlite_wal_sync_sum_us_{0};
  static inline std::atomic<std::uint64_t> unreadable_renderings_{0};
  static inline std::atomic<std::uint64_t> committed_tasks_{0};
  static inline Buckets commit_buckets_{};
  static inline std::atomic<std::uint64_t> commit_sum_us_{0};
  static inline std::mutex fullscan_mu_;
  static inline std::map<std::string, std::uint64_t> fullscan_steps_;
};

}  // namespace outbound::store
