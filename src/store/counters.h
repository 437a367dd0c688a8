// Process-wide counters of the store layer for GET /metrics (like a Prometheus client's default
// registry: every store of the process adds to them). Thread-safe, lock-free.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace outbound::store {

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
  // SQLite's PASSIVE WAL checkpoints by the checkpointer thread (each ends with an fsync of the
  // database file).
  std::uint64_t sqlite_checkpoints = 0;
  // Claimed deliveries not sent because their stored rendering could not be read back (a
  // damaged database): each is logged and given back due 5 s later, and counted every time.
  std::uint64_t unreadable_renderings = 0;
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
  static void UnreadableRendering() {
    unreadable_renderings_.fetch_add(1, std::memory_order_relaxed);
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
    return {round_trips_.load(std::memory_order_relaxed),
            stale_lease_writes_.load(std::memory_order_relaxed),
            sqlite_vm_steps_.load(std::memory_order_relaxed),
            sqlite_checkpoints_.load(std::memory_order_relaxed),
            unreadable_renderings_.load(std::memory_order_relaxed)};
  }

 private:
  static inline std::atomic<std::uint64_t> round_trips_{0};
  static inline std::atomic<std::uint64_t> stale_lease_writes_{0};
  static inline std::atomic<std::uint64_t> sqlite_vm_steps_{0};
  static inline std::atomic<std::uint64_t> sqlite_checkpoints_{0};
  static inline std::atomic<std::uint64_t> unreadable_renderings_{0};
  static inline std::mutex fullscan_mu_;
  static inline std::map<std::string, std::uint64_t> fullscan_steps_;
};

}  // namespace outbound::store
