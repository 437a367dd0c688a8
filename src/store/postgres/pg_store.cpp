#include "store/postgres/pg_store.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <random>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/thread_name.h"
#include "store/counters.h"
#include "store/delivery_counters.h"
#include "store/internal/guarded.h"
#include "store/internal/reader_pool.h"
#include "store/internal/resealer.h"
#include "store/internal/sealing.h"
#include "store/internal/start_store.h"
#include "store/postgres/pg_conn.h"
#include "store/postgres/pg_schema.h"
#include "store/sql/sql_txn.h"

namespace outbound::store {
namespace {

using internal::Guarded;
using internal::Sealer;
using postgres::PgConn;
using sql::SqlTxn;

// How often a task that lost a race runs again before it fails with kAborted.
constexpr int kMaxTaskRuns = 5;
// After a task failed, this many of the next batches on its connection run their tasks with a
// savepoint each from the start instead of running again once one fails (RunBatch).
constexpr int kSavepointBatchesAfterFailure = 16;
// The channel of the due hint (Store::SetDueHint), and how often this process announces on it
// at most.
constexpr std::string_view kDueChannel = "outbound_due";
constexpr auto kAnnounceEvery = std::chrono::milliseconds(20);
// How long a writer or reader waits between attempts to reconnect.
constexpr auto kReconnectPause = std::chrono::milliseconds(250);

core::Error Closed() {
  core::Error e = core::Error::Unavailable("the store is closed");
  e.code = "store_closed";
  return e;
}

core::Error Unreachable() {
  core::Error e = core::Error::Unavailable("the database cannot be reached");
  e.code = "store_unavailable";
  return e;
}
std::string MakeOwner() {
  char host[64] = {0};
  ::gethostname(host, sizeof host - 1);
  std::random_device rd;
  char buf[160];
  std::snprintf(buf, sizeof buf, "pg-%s-%d-%08x", host, static_cast<int>(::getpid()), rd());
  return buf;
}

bool Lost(const core::Error& e) { return e.code == "store_unavailable"; }

// One connection and its Txn; reconnects when the connection was lost.
class Session {
 public:
  // writer: its transactions write (rows read to be written back are locked).
  Session(std::string dsn, const Sealer& sealer, bool writer)
      : dsn_(std::move(dsn)), sealer_(sealer), writer_(writer) {}

  // A usable session, or kUnavailable.
  Result<SqlTxn*> Get() {
    if (conn_ && conn_->Broken()) {
      txn_.reset();
      conn_.reset();
    }
    if (!conn_) {
      auto conn = PgConn::Open(dsn_);
      if (!conn) return core::Fail(std::move(conn.error()));
      conn_ = std::move(*conn);
      txn_ = std::make_unique<SqlTxn>(*conn_, sealer_, sql::Sharing::kShared);
      if (writer_) {
        txn_->LockRowsReadForUpdate();
        // Each tenant's fan-out list read once per transaction, not once per publish: other
        // processes change the tables, so nothing is kept past the transaction.
        txn_->EnableFanoutCache(/*per_transaction=*/true);
      }
    }
    return txn_.get();
  }
  // The transaction of the connection open now, if it is usable; never connects.
  SqlTxn* Current() const { return conn_ && !conn_->Broken() ? txn_.get() : nullptr; }
  PgConn& conn() { return *conn_; }
  void Drop() {
    txn_.reset();
    conn_.reset();
  }

 private:
  const std::string dsn_;
  const Sealer& sealer_;
  const bool writer_;
  std::unique_ptr<PgConn> conn_;
  std::unique_ptr<SqlTxn> txn_;
};

class PgStore final : public Store {
 public:
  PgStore(PostgresOptions options, Sealer sealer)
      : options_(std::move(options)),
        owner_(MakeOwner()),
        sealer_(std::move(sealer)),
        reader_pool_(static_cast<std::size_t>(std::max(options_.reader_connections, 1))) {
    const int readers = std::max(options_.reader_connections, 1);
    for (int i = 0; i < readers; ++i) {
      readers_.push_back(std::make_unique<Session>(options_.dsn, sealer_, /*writer=*/false));
    }
    const int writers = std::max(options_.writer_connections, 1);
    queues_.resize(static_cast<std::size_t>(writers));
    // A thread that cannot be created (std::system_error) must not leave the ones before it
    // running: a joinable std::thread destroyed with the half-built store ends the process.
    // Close stops and joins whatever started.
    try {
      writer_threads_.reserve(static_cast<std::size_t>(writers));
      for (int i = 0; i < writers; ++i) {
        writer_threads_.emplace_back([this, i] {
          core::NameThisThread("ob-store-write");
          WriterLoop(static_cast<std::size_t>(i));
        });
      }
      if (sealer_.KeyCount() > 1) resealer_ = std::make_unique<internal::Resealer>(*this);
    } catch (...) {
      Close();
      throw;
    }
  }

  ~PgStore() override { Close(); }

  void Submit(WriteTask task) override {
    bool closed = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed = closing_;
      if (!closed && queued_ < options_.max_queue) {
        // A key always goes to the same connection (store.h). The dispatcher's tasks
        // (kDeliveryKey: claims, outcomes, releases) have the first connection to themselves
        // when there are several: a drain's outcome batches kept a quarter of the publishes
        // (those whose target's key fell on the same connection) waiting behind them, a healthy
        // client's p99 of 1.6 s during a backlog (issue 8). Other keys share the rest; keyless
        // tasks go to the shortest of those queues.
        const std::size_t n = queues_.size();
        std::size_t q = 0;
        if (n > 1 && task.key != kDeliveryKey) {
          if (task.key != 0) {
            q = 1 + static_cast<std::size_t>(task.key % (n - 1));
          } else {
            q = 1;
            for (std::size_t i = 2; i < n; ++i) {
              if (queues_[i].size() < queues_[q].size()) q = i;
            }
          }
        }
        queues_[q].push_back(std::move(task));
        ++queued_;
        cv_.notify_all();
        return;
      }
    }
    core::Error e = closed ? Closed() : core::Error::Unavailable("the store's write queue is full");
    if (!closed) e.code = "store_busy";
    if (task.done) task.done(core::Fail(std::move(e)));
  }

  Status Read(const std::function<Status(Txn&)>& fn) override {
    return reader_pool_.With([&](std::size_t slot) { return RunRead(*readers_[slot], fn); });
  }

  std::string_view Owner() const override { return owner_; }

  std::uint64_t UncertainCommits() const override {
    return uncertain_commits_.load(std::memory_order_relaxed);
  }

  void SetChangeHint(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(hint_mu_);
      hint_ = std::move(fn);
    }
    StartListener();
  }

  void SetDueHint(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(hint_mu_);
      due_hint_ = std::move(fn);
    }
    StartListener();
  }

  std::size_t QueueDepth() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return queued_ + in_batch_;
  }

  void Close() override {
    std::call_once(close_once_, [this] {
      if (resealer_) resealer_->Stop();
      listen_stop_ = true;
      if (listener_.joinable()) listener_.join();
      {
        std::lock_guard<std::mutex> lock(mu_);
        closing_ = true;
      }
      cv_.notify_all();
      for (std::thread& t : writer_threads_) {
        if (t.joinable()) t.join();
      }
      reader_pool_.Close();  // waits for reads in progress; later ones fail
      for (auto& r : readers_) r->Drop();
    });
  }

 private:
  static Status RunRead(Session& session, const std::function<Status(Txn&)>& fn) {
    constexpr const char* kBegin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    auto txn = session.Get();
    if (!txn) return core::Fail(std::move(txn.error()));
    Status begin = session.conn().Exec(kBegin);
    if (!begin && Lost(begin.error())) {  // stale while idle: one fresh try
      session.Drop();
      txn = session.Get();
      if (!txn) return core::Fail(std::move(txn.error()));
      begin = session.conn().Exec(kBegin);
    }
    if (!begin) return begin;
    PgConn& conn = session.conn();
    Status result = Guarded(fn, **txn);
    Status ended = conn.Exec(result ? "COMMIT" : "ROLLBACK");
    if (!ended && result) result = ended;
    return result;
  }

  void WriterLoop(std::size_t index) {
    Session session(options_.dsn, sealer_, /*writer=*/true);
    std::vector<WriteTask> batch;
    bool owed = false;          // a commit left deliveries due and its announcement was held back
    int savepoint_batches = 0;  // batches still to start with task savepoints (RunBatch)
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        std::deque<WriteTask>& queue = queues_[index];
        auto ready = [&] { return closing_ || !queue.empty(); };
        while (owed && !ready()) {
          // Announce what the held-back commits left due when the window ends, unless a batch
          // comes first (its commit then carries the announcement).
          if (cv_.wait_until(lock, NextAnnouncement(), ready)) break;
          lock.unlock();
          Announce(session);  // a hint: not tried again when it fails (the workers poll)
          owed = false;
          lock.lock();
        }
        cv_.wait(lock, ready);
        if (queue.empty()) {  // closing and drained
          lock.unlock();
          LookAgainAtClose(session);
          return;
        }
        std::size_t n = std::min(queue.size(), std::max<std::size_t>(options_.max_batch, 1));
        for (std::size_t i = 0; i < n; ++i) {
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
        queued_ -= n;
        in_batch_ += n;
      }
      const std::size_t n = batch.size();
      RunBatch(session, batch, owed, savepoint_batches);
      {
        std::lock_guard<std::mutex> lock(mu_);
        in_batch_ -= n;
      }
      batch.clear();
    }
  }

  // The heads this connection's last transactions held rows behind or closed rows of, which its
  // next claim would look at again (SqlTxn::RecheckHeads), looked at in a transaction of their
  // own: otherwise a process that stops after its last outcomes leaves a row held behind a head
  // it closed while another process's outcome closed the one before it, and only the sweep
  // (minutes at tens of thousands of targets with open rows) lets go of it. On the connection
  // open now only, never a new one (which would know nothing of them, and could hold the stop
  // up while the server is unreachable), and bounded: a row locked elsewhere, or a slow server,
  // leaves them to the sweep after a few seconds instead of holding the stop up.
  static void LookAgainAtClose(Session& session) {
    SqlTxn* txn = session.Current();
    if (txn == nullptr || !txn->HeadsLeftToLookAt()) return;
    PgConn& conn = session.conn();
    if (!conn.Exec("BEGIN; SET LOCAL lock_timeout = '2s'; SET LOCAL statement_timeout = '5s'")) {
      return;  // nothing began, or the connection is gone
    }
    txn->TransactionEnded(false);  // what the last transaction left becomes pending
    Status st = txn->LookAtHeadsLeft();
    if (st) st = conn.Flush();
    if (st) st = conn.Exec("COMMIT");
    if (!st) {
      (void)conn.Exec("ROLLBACK");
      spdlog::warn(
          "store: looking at ordered deliveries' heads once more at the stop failed "
          "(the sweep lets go of what it would have): {}",
          st.error().message);
    }
  }

  // A claim found deliveries big and without statistics (SqlTxn::ClaimDueAsStored): the table
  // is analyzed, outside any transaction and after the batch's callbacks, so that the claims'
  // plans stop guessing; at most once per kAnalyzeEvery in this process (a role that does not
  // own the table analyzes nothing, and the claims would keep asking). SKIP_LOCKED: a VACUUM,
  // an index build or another process's ANALYZE holding the table's lock makes it skip, not
  // wait; the next claim asks again.
  void AnalyzeDeliveries(PgConn& conn) {
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    auto last = last_analyze_.load();
    if (last != 0 && std::chrono::steady_clock::duration(now - last) < kAnalyzeEvery) return;
    if (!last_analyze_.compare_exchange_strong(last, now)) return;  // another writer's
    const auto began = std::chrono::steady_clock::now();
    if (Status st = conn.Exec("ANALYZE (SKIP_LOCKED) deliveries"); !st) {
      spdlog::warn("store: analyzing deliveries, which had no statistics, failed: {}",
                   st.error().message);
      return;
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - began)
                        .count();
    // Whether it did (the server's warnings are not read): a skip, or a role that does not own
    // the table, leaves no time of an analysis.
    auto done = conn.Prepare(
        "SELECT (pg_stat_get_last_analyze_time('deliveries'::regclass) IS NOT NULL)::int");
    auto row = done ? done->Step() : Result<bool>(core::Fail(done.error()));
    if (row && *row && done->Int(0) != 0) {
      spdlog::info("store: deliveries had no statistics yet: analyzed it in {} ms", ms);
    } else {
      spdlog::warn(
          "store: deliveries has no statistics, and ANALYZE did not give it any (the "
          "table locked, or the role does not own it); autovacuum's will");
    }
  }

  // One transaction for the batch. Its tasks first run without a savepoint of their own, as on
  // SQLite: a savepoint is a round trip per task, and each one that writes is a subtransaction
  // (past 64 in a transaction, every other backend's snapshots overflow to pg_subtrans). The
  // first task that fails rolls the transaction back, and its tasks run again from the start
  // with a savepoint each (tasks may run more than once: store.h), so that a failed task alone
  // is undone; the next kSavepointBatchesAfterFailure batches start with savepoints. A task that
  // loses a race for a key (a concurrent insert of the same idempotency key or external id) is
  // rolled back to its savepoint and run again: it then sees the row that won. A transaction
  // chosen as a deadlock victim is rolled back whole and its tasks run again from the start: a
  // savepoint would keep the locks of the tasks before it, and the same deadlock would form
  // again. Either gives up after kMaxTaskRuns with kAborted. A lost connection fails the tasks of
  // the open transaction with store_unavailable (the COMMIT never happened, or its outcome is
  // unknown: callers retry, and Idempotency-Key makes that safe).
  void RunBatch(Session& session, std::vector<WriteTask>& batch, bool& owed,
                int& savepoint_batches) {
    std::vector<Status> results(batch.size());
    std::vector<TxnTally> tallies(batch.size());  // for the metrics, once committed
    bool analyze = false;                         // a claim asked for it (AnalyzeDeliveries)
    std::size_t i = 0;
    int victim_runs = 0;
    // Until a task fails; after one, the next batches start with them (a stream of failing
    // tasks would make every batch run twice otherwise).
    bool savepoints = savepoint_batches > 0;
    if (savepoints) --savepoint_batches;
    while (i < batch.size()) {
      auto txn = session.Get();
      if (!txn) {
        for (std::size_t j = i; j < batch.size(); ++j) results[j] = core::Fail(txn.error());
        std::this_thread::sleep_for(kReconnectPause);
        break;
      }
      // BEGIN alone. Sent with the first statement it saved a round trip per transaction, but
      // shorter transactions made the tenants' publish groups smaller and three `all` processes
      // lost a tenth of their K=1 rate (docs/PERFORMANCE.md, 7 Dec).
      Status begin = session.conn().Exec("BEGIN");
      if (!begin && Lost(begin.error())) {
        // A connection that went stale while idle (the server restarted): nothing has run yet,
        // so one fresh connection is tried before the tasks fail.
        session.Drop();
        txn = session.Get();
        begin = txn ? session.conn().Exec("BEGIN") : Status(core::Fail(txn.error()));
      }
      if (!begin) {
        if (Lost(begin.error())) session.Drop();
        for (std::size_t j = i; j < batch.size(); ++j) results[j] = begin;
        break;
      }
      PgConn& conn = session.conn();
      (*txn)->TransactionEnded(false);  // nothing known of an earlier transaction is kept
      const std::size_t start = i;
      std::optional<core::Error> abandoned;
      bool victim = false;
      // A task that succeeded keeps its savepoint until the next task's begins: the release
      // goes in the same round trip (one message of two statements; the second does not run
      // when the first fails), and COMMIT releases the last one. A publish is a handful of
      // statements, so a round trip per task is worth saving.
      bool release_pending = false;
      bool run_again = false;  // a task failed without its savepoint: roll back, run again
      for (; i < batch.size() && !abandoned && !victim && !run_again; ++i) {
        Status r;
        if (!savepoints) {
          (void)(*txn)->TakeTally();
          r = batch[i].run ? Guarded(batch[i].run, **txn) : Status();
          if (r) r = conn.Flush();  // what the task deferred (Stmt::RunLater) fails it alone
          tallies[i] = (*txn)->TakeTally();
          if (!r) {
            savepoint_batches = kSavepointBatchesAfterFailure;
            if (Lost(r.error())) {
              abandoned = r.error();
            } else if (r.error().code == "store_deadlock") {
              victim = true;
            } else {
              run_again = true;
            }
          }
          results[i] = std::move(r);
          continue;
        }
        for (int run = 1;; ++run) {
          const char* begin_task =
              release_pending ? "RELEASE SAVEPOINT task; SAVEPOINT task" : "SAVEPOINT task";
          release_pending = false;
          if (Status sp = conn.Exec(begin_task); !sp) {
            // Also when the previous task's release failed: the transaction is abandoned, and
            // with it every task of it (below), that one included.
            r = sp;
            abandoned = sp.error();
            break;
          }
          (void)(*txn)->TakeTally();
          r = batch[i].run ? Guarded(batch[i].run, **txn) : Status();
          if (r) r = conn.Flush();
          tallies[i] = (*txn)->TakeTally();
          if (r) {
            release_pending = true;
            break;
          }
          if (r.error().code == "store_deadlock") {
            victim = true;
            break;
          }
          Status undo = conn.Exec("ROLLBACK TO SAVEPOINT task; RELEASE SAVEPOINT task");
          (*txn)->TaskUndone();
          if (!undo) {
            abandoned = undo.error();
            break;
          }
          if (r.error().kind != core::ErrorKind::kAborted) break;
          if (run >= kMaxTaskRuns) {
            spdlog::warn("store: a write task lost {} races in a row: {}", run, r.error().message);
            r.error().message = "the store was busy with conflicting changes";
            break;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(run * 2));
        }
        if (!r) savepoint_batches = kSavepointBatchesAfterFailure;
        if (!r && Lost(r.error())) abandoned = r.error();
        results[i] = std::move(r);
      }
      if (run_again) {
        // Should the rollback fail, the next BEGIN must not land in this transaction.
        if (!conn.Exec("ROLLBACK")) session.Drop();
        savepoints = true;
        i = start;
        continue;
      }
      if (victim) {
        (void)conn.Exec("ROLLBACK");
        if (++victim_runs < kMaxTaskRuns) {
          spdlog::debug("store: a transaction of {} tasks was a deadlock victim; running it again",
                        i - start);
          std::this_thread::sleep_for(std::chrono::milliseconds(victim_runs * 3));
          i = start;
          continue;
        }
        spdlog::warn("store: a transaction of {} tasks was a deadlock victim {} times", i - start,
                     victim_runs);
        core::Error e{core::ErrorKind::kAborted,
                      "store_deadlock",
                      "the store was busy with conflicting changes",
                      {},
                      {}};
        for (std::size_t j = start; j < i; ++j) results[j] = core::Fail(e);
        victim_runs = 0;
        continue;
      }
      // A task that left deliveries due for any process's claim: NOTIFY in the COMMIT's
      // message (delivered at the commit, no round trip of its own), at most once per
      // kAnnounceEvery in this process. A commit that NOTIFYs takes a lock that serializes
      // such commits across the database: one per commit cost a busy `api` process 6-10 % of
      // its publishes (docs/PERFORMANCE.md). One held back is owed: announced by the next
      // commit after the window, or by the writer loop when it ends.
      const bool due = std::any_of(tallies.begin() + static_cast<std::ptrdiff_t>(start),
                                   tallies.begin() + static_cast<std::ptrdiff_t>(i),
                                   [](const TxnTally& t) { return t.due_rows_added; });
      const bool announce = (due || owed) && !abandoned && AnnouncementDue();
      const auto commit_began = std::chrono::steady_clock::now();
      Status end = abandoned ? Status(core::Fail(*abandoned))
                             : conn.Exec(announce ? "NOTIFY outbound_due; COMMIT" : "COMMIT");
      if (end) {
        Counters::Committed(i - start, std::chrono::steady_clock::now() - commit_began);
        (*txn)->Committed();
        analyze = analyze || (*txn)->TakeAnalyzeWanted();
      }
      if (announce && end) {
        Announced();
        owed = false;
      } else if (due) {
        owed = true;
      }
      if (!end && !abandoned && Lost(end.error())) {
        // The server may have committed before the connection went: its outcome is unknown.
        uncertain_commits_.fetch_add(1, std::memory_order_relaxed);
      }
      if (!end) {
        if (Lost(end.error()) || session.conn().Broken()) {
          session.Drop();
        } else {
          (void)conn.Exec("ROLLBACK");
        }
        const core::Error err = Lost(end.error()) ? Unreachable() : end.error();
        for (std::size_t j = start; j < i; ++j) {
          if (results[j]) results[j] = core::Fail(err);
        }
        spdlog::error("store: a transaction of {} tasks failed: {}", i - start,
                      end.error().message);
      }
      victim_runs = 0;
    }
    DeliveryCounters::PublishCommitted(tallies, results);
    internal::CallDone(batch, results);
    // After the callbacks: the claim that asked for it is not kept waiting.
    if (analyze && session.Current() != nullptr) AnalyzeDeliveries(session.conn());
  }

  void StartListener() {
    std::call_once(listener_once_, [this] {
      listener_ = std::thread([this] {
        core::NameThisThread("ob-store-listen");
        ListenLoop();
      });
    });
  }

  // Announcements of due deliveries (RunBatch): one per kAnnounceEvery in this process.
  std::chrono::steady_clock::time_point NextAnnouncement() const {
    return std::chrono::steady_clock::time_point(
               std::chrono::steady_clock::duration(last_announcement_.load())) +
           kAnnounceEvery;
  }
  bool AnnouncementDue() const { return std::chrono::steady_clock::now() >= NextAnnouncement(); }
  void Announced() {
    last_announcement_.store(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  // An announcement of its own (autocommitted), for commits that held theirs back.
  void Announce(Session& session) {
    auto txn = session.Get();
    if (txn && session.conn().Exec("NOTIFY outbound_due")) Announced();
  }

  // LISTEN outbound_config (the change triggers NOTIFY it) and outbound_due (RunBatch's commit
  // of a task that left deliveries due and unleased) on a connection of its own; wakes at least
  // every 250 ms to see Close().
  void ListenLoop() {
    std::unique_ptr<PgConn> conn;
    while (!listen_stop_) {
      if (!conn || conn->Broken()) {
        conn.reset();
        auto opened = PgConn::Open(options_.dsn);
        if (!opened || !(*opened)->Exec("LISTEN outbound_config; LISTEN outbound_due")) {
          for (int i = 0; i < 8 && !listen_stop_; ++i) std::this_thread::sleep_for(kReconnectPause);
          continue;
        }
        conn = std::move(*opened);
      }
      PGconn* raw = conn->raw();
      pollfd pfd{PQsocket(raw), POLLIN, 0};
      if (::poll(&pfd, 1, 250) <= 0) continue;
      if (PQconsumeInput(raw) == 0) continue;  // lost: reconnect above
      bool config = false;
      bool due = false;
      while (PGnotify* n = PQnotifies(raw)) {
        (std::string_view(n->relname) == kDueChannel ? due : config) = true;
        PQfreemem(n);
      }
      if (config || due) {
        std::function<void()> hint;
        std::function<void()> due_hint;
        {
          std::lock_guard<std::mutex> lock(hint_mu_);
          if (config) hint = hint_;
          if (due) due_hint = due_hint_;
        }
        if (hint) hint();
        if (due_hint) due_hint();
      }
    }
  }

  const PostgresOptions options_;
  const std::string owner_;
  const Sealer sealer_;

  std::atomic<std::uint64_t> uncertain_commits_{0};
  // steady_clock ticks of the last announcement of due deliveries (NextAnnouncement).
  std::atomic<std::chrono::steady_clock::rep> last_announcement_{0};
  std::mutex hint_mu_;
  std::function<void()> hint_;      // guarded by hint_mu_
  std::function<void()> due_hint_;  // guarded by hint_mu_
  std::once_flag listener_once_;
  std::atomic<bool> listen_stop_{false};
  // AnalyzeDeliveries: its last run (steady_clock ticks; 0: never).
  std::atomic<std::chrono::steady_clock::rep> last_analyze_{0};
  static constexpr std::chrono::minutes kAnalyzeEvery{5};
  std::thread listener_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::deque<WriteTask>> queues_;  // one per writer connection
  std::size_t queued_ = 0;                     // in all queues
  std::size_t in_batch_ = 0;
  bool closing_ = false;

  std::vector<std::unique_ptr<Session>> readers_;
  internal::ReaderPool reader_pool_;  // slots index readers_

  std::once_flag close_once_;
  std::vector<std::thread> writer_threads_;
  std::unique_ptr<internal::Resealer> resealer_;  // while older keys are configured
};

Status CheckKeys(PgConn& conn, const Sealer& sealer) {
  // A wrong --secrets-key is a clear start-up error, never garbage signatures: any one stored
  // secret must open with one of the keys.
  auto probe = conn.Prepare(
      "SELECT secret FROM subscriptions WHERE secret IS NOT NULL AND secret <> '' LIMIT 1");
  if (!probe) return core::Fail(probe.error());
  auto row = probe->Step();
  if (!row) return core::Fail(row.error());
  if (*row) {
    if (auto opened = sealer.Open(probe->Text(0)); !opened) return core::Fail(opened.error());
  }
  return {};
}

}  // namespace

core::Status MigratePostgres(const std::string& dsn) {
  auto conn = PgConn::Open(dsn);
  if (!conn) return core::Fail(conn.error());
  return postgres::Migrate(**conn);
}

std::optional<std::string> PostgresUrlProblem(const std::string& dsn) {
  return postgres::UrlProblem(dsn);
}

core::Result<std::unique_ptr<Store>> OpenPostgres(const PostgresOptions& options) {
  if (options.secrets_keys.empty()) {
    return core::Fail(core::Error::Invalid(
        "secrets_key", "invalid_setting",
        "--secrets-key is required with PostgreSQL: every process of one database must use the "
        "same key"));
  }
  auto sealer = Sealer::FromBase64Keys(options.secrets_keys);
  if (!sealer) return core::Fail(sealer.error());
  auto conn = PgConn::Open(options.dsn);
  if (!conn) return core::Fail(conn.error());
  if (auto s = postgres::Migrate(**conn); !s) return core::Fail(s.error());
  if (auto s = CheckKeys(**conn, *sealer); !s) return core::Fail(s.error());
  return internal::StartStore(
      [&] { return std::unique_ptr<Store>(new PgStore(options, std::move(*sealer))); });
}

}  // namespace outbound::store
