// Retention (CONTRACT §13, --retention): a background thread that deletes, in small batches,
// the events accepted longer ago than the retention whose deliveries are all finished
// (succeeded, dead or cancelled), with their deliveries and attempts, and the idempotency keys
// older than 24 hours.
//
// Never stalls delivery: each batch is one short write task (at most kBatch events) queued like
// any other, and the thread pauses between batches, so the dispatcher's writes go in between.
// Space: SQLite puts the deleted pages on its freelist and reuses them for new rows (the file
// stops growing; nothing runs VACUUM); PostgreSQL's autovacuum makes the dead tuples reusable.
// Shared databases: every process that sends (role all or worker) runs it. That is safe (each
// batch deletes only what is still finished, and a second process finds nothing left to do) and
// cheap (an idle pass is two index range reads that find nothing).
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/clock.h"
#include "store/store.h"

namespace outbound::app {

struct RetentionOptions {
  core::UnixMs retention_ms = 30LL * 24 * 3600 * 1000;
  core::UnixMs idempotency_ms = 24LL * 3600 * 1000;  // CONTRACT §13: whatever the retention
  int batch = 500;                                   // events (or keys) per transaction
  core::UnixMs pause_ms = 20;                        // between two batches
  // Between passes. Default: a tenth of the retention, between 1 s and 1 min.
  core::UnixMs interval_ms = 0;
};

struct RetentionPass {
  std::int64_t events = 0;
  std::int64_t deliveries = 0;
  std::int64_t attempts = 0;
  std::int64_t kept = 0;  // old enough but a delivery is still pending or failed
  std::int64_t idempotency_keys = 0;
  int batches = 0;
  std::int64_t longest_batch_ms = 0;  // the longest single transaction (wall time of its Write)
};

class RetentionService {
 public:
  RetentionService(store::Store& store, const core::Clock& clock, RetentionOptions options);
  ~RetentionService();
  RetentionService(const RetentionService&) = delete;
  RetentionService& operator=(const RetentionService&) = delete;

  void Start();
  void Stop();  // waits for the batch in progress
  // One whole pass, on the caller's thread (tests); a store error ends it early.
  core::Result<RetentionPass> RunPass();

 private:
  void Loop();
  bool Pause(core::UnixMs ms);  // false when stopping

  store::Store& store_;
  const core::Clock& clock_;
  RetentionOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace outbound::app
