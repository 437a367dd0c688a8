// Internal to store/: a thread that runs the `done` callbacks of committed write tasks, so that
// the writer thread hands a whole group commit's callbacks over at once and goes on with the
// next transaction (issue 8, K=1: waking each publish's waiting handler thread from the writer
// took a tenth of the writer's time, one futex wake-up per task).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "store/store.h"

namespace outbound::store::internal {

class Completer {
 public:
  using Done = std::function<void(const Status&)>;
  // What makes committed work durable before its callbacks run (the SQLite store's sync of its
  // WAL). It does not fail: a sync that cannot be made ends the process (SqliteStore::SyncWal).
  using Sync = std::function<void()>;

  // Starts the thread, named `thread_name` (at most 15 characters). With `sync`, the thread
  // calls it once for everything handed over while it was busy (a group of group commits)
  // before it runs their callbacks, on this thread: so a commit's callbacks never run before a
  // sync that began after the commit.
  explicit Completer(std::string thread_name, Sync sync = nullptr);
  ~Completer();
  Completer(const Completer&) = delete;
  Completer& operator=(const Completer&) = delete;

  // Runs `dones[i](results[i])` on the completer's thread, after everything handed over before,
  // in this order: callbacks run in the order their tasks committed. Wakes the thread only when
  // it was idle. After Stop, runs them on the caller's thread instead (after the sync).
  void Hand(std::vector<Done> dones, std::vector<Status> results);
  // Callbacks handed over and not run yet.
  std::size_t Pending() const;
  // Blocks until at most `n` callbacks are pending (at once after Stop): the writer's
  // backpressure, so that a slow sync fills the writer's queue (which then refuses work) instead
  // of the callbacks' backlog.
  void WaitUntilPendingAtMost(std::size_t n);
  // Runs what was handed over, then stops the thread. Idempotent.
  void Stop();

 private:
  struct Work {
    std::vector<Done> dones;
    std::vector<Status> results;
  };
  void Loop();
  // Calls sync_ (when set and anything is to run), then the callbacks of `work` in order.
  void SyncThenRun(std::deque<Work>& work);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable drained_;  // pending_ fell (WaitUntilPendingAtMost)
  std::deque<Work> queue_;           // guarded by mu_
  std::size_t pending_ = 0;          // guarded by mu_: callbacks handed over, not yet run
  bool busy_ = false;                // guarded by mu_: the thread is running callbacks, not waiting
  bool stopping_ = false;            // guarded by mu_
  const Sync sync_;
  std::thread thread_;
};

}  // namespace outbound::store::internal
