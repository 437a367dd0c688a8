#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "core/thread_name.h"
#include "store/counters.h"
#include "store/delivery_counters.h"
#include "store/internal/completer.h"
#include "store/internal/guarded.h"
#include "store/internal/reader_pool.h"
#include "store/internal/resealer.h"
#include "store/internal/sealing.h"
#include "store/internal/start_store.h"
#include "store/sql/sql_txn.h"
#include "store/sqlite/connection.h"
#include "store/sqlite/schema.h"
#include "store/sqlite/secrets_key.h"
#include "store/sqlite/sql_conn.h"
#include "store/sqlite/wal_vfs.h"

namespace outbound::store {
namespace {

// After a task failed, this many of the next batches run their tasks with a savepoint each from
// the start instead of running again once one fails (RunBatch).
constexpr int kSavepointBatchesAfterFailure = 16;

using internal::Guarded;
using internal::Sealer;
using sql::SqlTxn;
using sqlite::Connection;
using sqlite::SqlConn;

// WAL pages after which the checkpointer is woken (SQLite's own default threshold), at most.
constexpr int kCheckpointPages = 1000;

core::Error Closed() {
  core::Error e = core::Error::Unavailable("the store is closed");
  e.code = "store_closed";
  return e;
}

Status Pragma(Connection& c, const char* sql) {
  auto s = c.Exec(sql);
  if (!s) s.error().message = std::string(sql) + ": " + s.error().message;
  return s;
}

// The lease owner's name (Store::Owner()). One process owns a SQLite file (the lock fd), and
// OpenSqlite clears every lease, lease owner and subscription owner before this store hands its
// name out, so a single character is unique among the processes on the database, also across
// restarts. Short on purpose (issue 8, bytes per waiting delivery): fan-out inserts its rows
// leased, the outcome clears the name, and the bytes that frees in a full page of `deliveries`
// are never reused by the appending inserts (a 21-character name left about 30 % of those
// pages empty; SqliteStore.WaitingDeliveriesShareTheirRenderingOnDisk).
constexpr char kOwner[] = "s";

class SqliteStore final : public Store {
 public:
  SqliteStore(SqliteOptions options, int lock_fd, int wal_fd, Sealer secrets,
              std::unique_ptr<Connection> writer, std::vector<std::unique_ptr<Connection>> readers,
              std::unique_ptr<Connection> checkpointer)
      : options_(std::move(options)),
        owner_(kOwner),
        lock_fd_(lock_fd),
        wal_fd_(wal_fd),
        secrets_(std::move(secrets)),
        writer_conn_(std::move(writer)),
        writer_sql_(*writer_conn_),
        writer_txn_(writer_sql_, secrets_, sql::Sharing::kExclusive),
        reader_conns_(std::move(readers)),
        reader_pool_(reader_conns_.size()),
        checkpoint_conn_(std::move(checkpointer)) {
    for (std::size_t i = 0; i < reader_conns_.size(); ++i) {
      reader_sqls_.push_back(std::make_unique<SqlConn>(*reader_conns_[i]));
      reader_txns_.push_back(
          std::make_unique<SqlTxn>(*reader_sqls_[i], secrets_, sql::Sharing::kExclusive));
    }
    // Before any thread uses the writer's connection.
    if (auto ps = writer_conn_->Prepare("PRAGMA page_size"); ps && ps->Step().value_or(false)) {
      page_size_ = ps->Int(0);
    }
    if (page_size_ > 0) {
      wake_pages_ = static_cast<int>(std::clamp<std::int64_t>(
          static_cast<std::int64_t>(options_.wal_checkpoint_bytes) / page_size_ / 2, 16,
          kCheckpointPages));
    }
    // Our hook replaces SQLite's automatic checkpoint, which would run inside COMMIT on the
    // writer thread: the checkpointer thread does it off the hot path instead.
    sqlite3_wal_hook(writer_conn_->db(), &SqliteStore::WalHook, this);
    // Every change to subscriptions or clients on the writer's connection (the only one that
    // writes) reaches the writer transaction's fan-out cache, and to customers, locations or
    // contacts its directory cache.
    writer_txn_.EnableFanoutCache();
    writer_txn_.EnableDirectoryCache();
    sqlite3_update_hook(writer_conn_->db(), &SqliteStore::UpdateHook, this);
    // A thread that cannot be created (std::system_error) must not leave the ones before it
    // running: a joinable std::thread destroyed with the half-built store ends the process.
    // Close stops and joins whatever started. The lock fd stays the caller's until the store is
    // built (OpenSqlite closes it when opening fails), so Close must not close it here.
    try {
      writer_ = std::thread([this] {
        core::NameThisThread("ob-store-write");
        WriterLoop();
      });
      checkpointer_ = std::thread([this] {
        core::NameThisThread("ob-checkpoint");
        CheckpointLoop();
      });
      if (secrets_.KeyCount() > 1) resealer_ = std::make_unique<internal::Resealer>(*this);
    } catch (...) {
      lock_fd_ = -1;
      wal_fd_ = -1;
      Close();
      throw;
    }
  }

  ~SqliteStore() override { Close(); }

  void Submit(WriteTask task) override {
    bool closed = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed = closing_;
      if (!closed && queue_.size() < options_.max_queue) {
        queue_.push_back(std::move(task));
        // The writer sleeps only on an empty queue.
        if (queue_.size() == 1) cv_.notify_one();
        return;
      }
    }
    core::Error e = closed ? Closed() : core::Error::Unavailable("the store's write queue is full");
    if (!closed) e.code = "store_busy";
    if (task.done) task.done(core::Fail(std::move(e)));
  }

  Status Read(const std::function<Status(Txn&)>& fn) override {
    return reader_pool_.With(
        [&](std::size_t slot) { return RunRead(*reader_conns_[slot], *reader_txns_[slot], fn); });
  }

  std::string_view Owner() const override { return owner_; }

  // One process owns the file: every change is made by this process, whose API invalidates
  // what the dispatcher cached directly.
  void SetChangeHint(std::function<void()>) override {}
  void SetDueHint(std::function<void()>) override {}
  // A failed COMMIT of SQLite did not commit: never uncertain.
  std::uint64_t UncertainCommits() const override { return 0; }

  // Tasks queued, in the running batch, or committed with their `done` not yet run.
  std::size_t QueueDepth() const override {
    std::size_t depth = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      depth = queue_.size() + in_batch_;
    }
    return depth + completer_.Pending();
  }

  void Close() override {
    std::call_once(close_once_, [this] {
      if (resealer_) resealer_->Stop();
      {
        std::lock_guard<std::mutex> lock(mu_);
        closing_ = true;
      }
      cv_.notify_all();
      if (writer_.joinable()) writer_.join();
      completer_.Stop();  // the last batches' callbacks have run
      {
        std::lock_guard<std::mutex> lock(ckpt_mu_);
        ckpt_stop_ = true;
      }
      ckpt_cv_.notify_all();
      if (checkpointer_.joinable()) checkpointer_.join();
      reader_pool_.Close();  // waits for reads in progress; later ones fail
      reader_txns_.clear();
      reader_sqls_.clear();
      reader_conns_.clear();
      checkpoint_conn_.reset();
      sqlite3_wal_hook(writer_conn_->db(), nullptr, nullptr);
      sqlite3_update_hook(writer_conn_->db(), nullptr, nullptr);
      writer_conn_.reset();  // the last connection checkpoints and removes the WAL
      if (wal_fd_ >= 0) {
        ::close(wal_fd_);
        wal_fd_ = -1;
      }
      if (lock_fd_ >= 0) {
        ::close(lock_fd_);  // releases the flock
        lock_fd_ = -1;
      }
    });
  }

 private:
  // Runs on the writer thread, inside the statement that changed the row.
  static void UpdateHook(void* self, int op, const char*, const char* table, sqlite3_int64 rowid) {
    if (op == SQLITE_DELETE && std::strcmp(table, "events") == 0) {
      static_cast<SqliteStore*>(self)->writer_txn_.EventsDeleted();
    } else if (std::strcmp(table, "subscriptions") == 0) {
      static_cast<SqliteStore*>(self)->writer_txn_.SubscriptionChanged(rowid);
    } else if (std::strcmp(table, "clients") == 0) {
      static_cast<SqliteStore*>(self)->writer_txn_.FanoutTablesChanged();
    } else if (std::strcmp(table, "customers") == 0 || std::strcmp(table, "locations") == 0 ||
               std::strcmp(table, "contacts") == 0) {
      static_cast<SqliteStore*>(self)->writer_txn_.DirectoryTablesChanged();
    } else if (std::strcmp(table, "targets") == 0) {
      static_cast<SqliteStore*>(self)->writer_txn_.TargetsChanged();
    }
  }

  // Wakes the checkpointer once `wake_pages_` frames were added since its last checkpoint
  // (issue 8, latency): counted from the WAL's start, every commit past the first `wake_pages_`
  // frames woke it again until the WAL started over, and it ran PASSIVE checkpoints, each with
  // its fsync of the database, back to back (15 % of a core at 1,000 events/s) beside the
  // syncs of the WAL.
  static int WalHook(void* self, sqlite3*, const char*, int pages) {
    auto* store = static_cast<SqliteStore*>(self);
    int since = store->ckpt_backfilled_.load(std::memory_order_relaxed);
    if (pages < since) since = 0;  // the WAL started over (RestartWal)
    if (pages - since >= store->wake_pages_) {
      {
        std::lock_guard<std::mutex> lock(store->ckpt_mu_);
        store->ckpt_wanted_ = true;
      }
      store->ckpt_cv_.notify_one();
    }
    return SQLITE_OK;
  }

  // Ends the process after a failure that leaves a commit's durability unknown: a sync of the WAL
  // that failed (Linux may drop the pages it could not write, and a later sync can succeed
  // without them) or frames that could not be written out after their commit. Other connections
  // may already see such a commit, and the checkpointer would copy it into the database file; a
  // restart lets SQLite recover the database from what is on disk. PostgreSQL stops (PANIC) on a
  // failed WAL flush for the same reason.
  [[noreturn]] void EndProcess(const char* what, const char* cause) noexcept {
    spdlog::critical(
        "store: {} of {}-wal failed ({}): commits since the last sync may not be on "
        "disk, so the process stops; on restart SQLite recovers the database from "
        "the disk",
        what, options_.path, cause);
    spdlog::default_logger()->flush();
    std::abort();
  }

  // The completer thread, before it runs the callbacks of the commits handed to it since its last
  // call: the writer commits with `synchronous = NORMAL`, which writes a commit's frames to the
  // WAL without syncing it, and goes on with its next transaction while this syncs them (issue 8:
  // the writer waited for the disk about a third of its time when it synced each commit). So no
  // commit is acknowledged (a publish's 202, a management call's answer, a delivery handed to
  // the dispatcher) before it is durable, and one fdatasync covers every commit made meanwhile.
  // SQLite keeps the file consistent across a power loss in NORMAL (a commit not yet synced may
  // be lost whole, never in part); the syncs of its checkpoints are its own, as before.
  void SyncWal() noexcept {
    const auto began = std::chrono::steady_clock::now();
    int rc = 0;
    do {
      rc = ::fdatasync(wal_fd_);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) EndProcess("syncing", std::strerror(errno));
    Counters::SqliteWalSynced(std::chrono::steady_clock::now() - began);
  }

  static Status RunRead(Connection& conn, Txn& txn, const std::function<Status(Txn&)>& fn) {
    {
      auto begin = conn.Prepare("BEGIN");
      if (!begin) return core::Fail(begin.error());
      if (auto s = begin->Run(); !s) return s;
    }
    Status result = Guarded(fn, txn);
    auto commit = conn.Prepare("COMMIT");
    Status ended = commit ? commit->Run() : Status(core::Fail(commit.error()));
    if (!ended) {
      (void)conn.Exec("ROLLBACK");
      if (result) result = ended;
    }
    return result;
  }

  void WriterLoop() {
    std::vector<WriteTask> batch;
    batch.reserve(options_.max_batch);
    for (;;) {
      // The writer no longer waits for the disk in its COMMIT; it waits here when the callbacks
      // (each behind a sync) fall behind, so that a slow disk fills the queue, which then
      // refuses work (store_busy), as the commit's own sync did before.
      completer_.WaitUntilPendingAtMost(std::max<std::size_t>(options_.max_queue, 1));
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return closing_ || !queue_.empty(); });
        if (queue_.empty()) return;  // closing and drained
        std::size_t n = std::min(queue_.size(), std::max<std::size_t>(options_.max_batch, 1));
        for (std::size_t i = 0; i < n; ++i) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        in_batch_ = n;
      }
      RunBatch(batch);
      {
        std::lock_guard<std::mutex> lock(mu_);
        in_batch_ = 0;
      }
      batch.clear();
      if (restart_wanted_.exchange(false)) RestartWal();
    }
  }

  Status Step(const char* sql) {
    auto stmt = writer_conn_->Prepare(sql);
    if (!stmt) return core::Fail(stmt.error());
    return stmt->Run();
  }

  // One transaction for the whole batch. Tasks first run without a savepoint of their own
  // (issue 8, K=1): a task savepoint makes SQLite copy every page a task first touches into the
  // in-memory statement journal, and every statement savepoint of an INSERT ... RETURNING inside
  // it release that journal, for nothing as long as every task succeeds. The first task that
  // fails rolls the whole transaction back, and the batch runs again from the start of that
  // transaction with one savepoint per task, so that the failed task alone is undone (tasks may
  // run more than once: store.h); the next kSavepointBatchesAfterFailure batches start with
  // savepoints. If SQLite abandons the transaction (I/O error, disk full) or a savepoint cannot
  // be ended, the tasks run so far in it fail with that error and the rest continue in a new
  // transaction.
  void RunBatch(std::vector<WriteTask>& batch) {
    std::vector<Status> results(batch.size());
    std::vector<TxnTally> tallies(batch.size());  // for the metrics, once committed
    sqlite3* db = writer_conn_->db();
    // Until a task fails; after one, the next batches start with them (a stream of failing
    // tasks would make every batch run twice otherwise).
    bool savepoints = savepoint_batches_ > 0;
    if (savepoints) --savepoint_batches_;
    std::size_t i = 0;
    while (i < batch.size()) {
      if (Status begin = Step("BEGIN IMMEDIATE"); !begin) {
        for (std::size_t j = i; j < batch.size(); ++j) results[j] = begin;
        break;
      }
      std::size_t start = i;
      std::optional<core::Error> abandoned;
      bool run_again = false;  // a task failed without its savepoint: roll back, run again
      for (; i < batch.size() && !abandoned && !run_again; ++i) {
        if (savepoints) {
          if (Status sp = Step("SAVEPOINT task"); !sp) {
            results[i] = sp;
            abandoned = sp.error();
            continue;
          }
        }
        (void)writer_txn_.TakeTally();
        writer_txn_.TaskBegins();
        Status r = batch[i].run ? Guarded(batch[i].run, writer_txn_) : Status();
        tallies[i] = writer_txn_.TakeTally();
        if (!r) savepoint_batches_ = kSavepointBatchesAfterFailure;
        if (!savepoints) {
          if (!r) run_again = true;
        } else if (r) {
          if (Status rel = Step("RELEASE task"); !rel) {
            r = rel;
            abandoned = rel.error();
          }
        } else {
          Status undo = Step("ROLLBACK TO task");
          writer_txn_.TaskUndone();
          if (undo) undo = Step("RELEASE task");
          if (!undo) abandoned = undo.error();
        }
        results[i] = std::move(r);
        if (!abandoned && !run_again && sqlite3_get_autocommit(db) != 0) {
          abandoned = core::Error::Internal("sqlite: the transaction was rolled back: " +
                                            std::string(sqlite3_errmsg(db)));
        }
      }
      if (run_again) {
        if (sqlite3_get_autocommit(db) == 0) (void)writer_conn_->Exec("ROLLBACK");
        writer_txn_.TransactionEnded(false);
        savepoints = true;
        i = start;
        continue;
      }
      const auto commit_began = std::chrono::steady_clock::now();
      Status end = abandoned ? Status(core::Fail(*abandoned)) : Step("COMMIT");
      if (end) {
        Counters::Committed(i - start, std::chrono::steady_clock::now() - commit_began);
        // The gathering VFS wrote the commit out at its commit frame (wal_vfs.h); should it
        // ever have missed that frame (another SQLite's way of writing the WAL), what it still
        // holds goes to the file here, before the sync that acknowledges the commit.
        const std::int64_t left = sqlite::WriteOutGatheredWal(db);
        if (left < 0) EndProcess("writing out a commit", "a write the disk refused");
        if (left > 0 && !missed_commit_end_.exchange(true)) {
          spdlog::error(
              "store: the WAL's gathered writes missed the end of a commit ({} bytes "
              "written after it; SQLite {}): readers and the checkpointer may have read it "
              "incomplete; check the database with PRAGMA integrity_check (logged once)",
              left, sqlite3_libversion());
        }
      }
      if (!end && sqlite3_get_autocommit(db) == 0) (void)writer_conn_->Exec("ROLLBACK");
      writer_txn_.TransactionEnded(static_cast<bool>(end));
      if (!end) {
        for (std::size_t j = start; j < i; ++j) {
          if (results[j]) results[j] = end;
        }
        spdlog::error("store: a group commit of {} tasks failed: {}", i - start,
                      end.error().message);
      }
    }
    DeliveryCounters::PublishCommitted(tallies, results);
    std::vector<internal::Completer::Done> dones;
    dones.reserve(batch.size());
    for (WriteTask& task : batch) dones.push_back(std::move(task.done));
    completer_.Hand(std::move(dones), std::move(results));
  }

  void CheckpointLoop() {
    std::unique_lock<std::mutex> lock(ckpt_mu_);
    for (;;) {
      ckpt_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return ckpt_stop_ || ckpt_wanted_; });
      if (ckpt_stop_) return;
      ckpt_wanted_ = false;
      lock.unlock();
      Checkpoint();
      lock.lock();
    }
  }

  // PASSIVE never blocks the writer or readers, but under sustained load it never lets the WAL
  // start over: some reader always holds a snapshot in it, and the writer keeps appending. So
  // once the WAL is past `wal_checkpoint_bytes`, the writer runs a RESTART checkpoint between
  // two batches: it waits (busy_timeout) for the readers of old frames, copies what is left, and
  // the next write starts the WAL over from its beginning (journal_size_limit cuts a longer file
  // back); writes wait for that moment. The WAL stays bounded, and a restart after a crash
  // replays little of it. Not TRUNCATE: cutting the file to zero and growing it again cost the
  // writer 6-7 ms each time, two to four times a second at 1,000 events/s (issue 8's latency
  // tail), against about 0.5 ms for RESTART.
  void Checkpoint() {
    sqlite3* db = checkpoint_conn_->db();
    int log = 0;
    int done = 0;
    int rc = SQLITE_OK;
    {
      std::lock_guard<std::mutex> running(checkpoint_run_mu_);
      rc = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    }
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      spdlog::warn("store: WAL checkpoint failed: {}", sqlite3_errmsg(db));
      return;
    }
    // Counted when it copied frames: such a pass ends with a sync of the database file. One that
    // found nothing new to copy (the checkpointer also wakes once a second) syncs nothing.
    const int before = ckpt_backfilled_.exchange(std::max(done, 0), std::memory_order_relaxed);
    if (done > 0 && done != before) Counters::SqliteCheckpoint();
    const std::int64_t page_size = page_size_ > 0 ? page_size_ : 4096;
    // `log` counts the frames since the WAL last started over: all copied or not, a WAL that
    // never starts over only grows.
    if (static_cast<std::int64_t>(log) * page_size <
        static_cast<std::int64_t>(options_.wal_checkpoint_bytes)) {
      return;
    }
    // The writer does it between two batches: from here it would lose every race for the
    // write lock to a writer that never pauses.
    restart_wanted_ = true;
  }

  // On the writer thread, between batches. What is left to copy is little (the checkpointer
  // copied the rest); it waits (busy_timeout) only for readers of old frames.
  void RestartWal() {
    sqlite3* db = writer_conn_->db();
    int log = 0;
    int done = 0;
    // Not while the checkpointer runs one: a second checkpoint gets SQLITE_BUSY at once.
    std::lock_guard<std::mutex> running(checkpoint_run_mu_);
    const int rc = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_RESTART, &log, &done);
    if (rc == SQLITE_BUSY) {
      restart_wanted_ = true;  // a reader held on past busy_timeout: after the next batch
    } else if (rc != SQLITE_OK) {
      spdlog::warn("store: WAL checkpoint (restart) failed: {}", sqlite3_errmsg(db));
    }
  }

  // --- Constant after construction ---
  const SqliteOptions options_;
  const std::string owner_;
  int lock_fd_;  // closed by Close()
  int wal_fd_;   // the WAL, opened for fdatasync (SyncWal); closed by Close()
  const Sealer secrets_;
  std::unique_ptr<Connection> writer_conn_;  // used by the writer thread only
  SqlConn writer_sql_;
  SqlTxn writer_txn_;
  std::vector<std::unique_ptr<Connection>> reader_conns_;
  std::vector<std::unique_ptr<SqlConn>> reader_sqls_;
  std::vector<std::unique_ptr<SqlTxn>> reader_txns_;
  internal::ReaderPool reader_pool_;             // slots index reader_conns_ / reader_txns_
  std::unique_ptr<Connection> checkpoint_conn_;  // used by the checkpointer thread only

  // --- State below is protected by mu_ ---
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<WriteTask> queue_;
  std::size_t in_batch_ = 0;
  bool closing_ = false;

  // --- State below is protected by ckpt_mu_ ---
  std::mutex ckpt_mu_;
  std::condition_variable ckpt_cv_;
  bool ckpt_wanted_ = false;
  bool ckpt_stop_ = false;
  std::int64_t page_size_ = 0;           // set before the checkpointer starts
  int wake_pages_ = kCheckpointPages;    // WAL pages that wake the checkpointer; set with it
  std::atomic<int> ckpt_backfilled_{0};  // WAL frames its last checkpoint had copied
  int savepoint_batches_ = 0;  // writer thread: batches still to start with task savepoints
  std::atomic<bool> restart_wanted_{false};     // checkpointer → writer: the WAL is too long
  std::atomic<bool> missed_commit_end_{false};  // logged once (RunBatch)
  std::mutex checkpoint_run_mu_;                // one checkpoint at a time (writer, checkpointer)

  std::once_flag close_once_;
  // Runs the writer's `done` callbacks, each after a sync of the WAL that followed its commit.
  internal::Completer completer_{"ob-store-done", [this] { SyncWal(); }};
  std::thread writer_;
  std::thread checkpointer_;
  std::unique_ptr<internal::Resealer> resealer_;  // while older keys are configured
};

// The file's real path: through symbolic links and "." or ".." (the file's directory's when the
// file does not exist yet), so that every spelling of one database takes the same lock; the path
// as given when even its directory cannot be resolved (SQLite then fails to open it anyway).
std::string RealPath(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(path.c_str(), nullptr), &std::free);
  if (real) return real.get();
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  std::unique_ptr<char, decltype(&std::free)> real_dir(::realpath(dir.c_str(), nullptr),
                                                       &std::free);
  if (!real_dir) return path;
  std::string out = real_dir.get();
  if (out.back() != '/') out += '/';
  return out + path.substr(slash == std::string::npos ? 0 : slash + 1);
}

// The single-owner lock: an exclusive flock on "<real path>.lock", held while the store is open.
core::Result<int> LockFile(const std::string& path) {
  std::string lock_path = RealPath(path) + ".lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return core::Fail(
        core::Error::Internal("cannot open lock file " + lock_path + ": " + std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      core::Error e =
          core::Error::Unavailable("database " + path + " is in use by another outbound process");
      e.code = "store_locked";
      return core::Fail(std::move(e));
    }
    return core::Fail(
        core::Error::Internal("cannot lock " + lock_path + ": " + std::strerror(err)));
  }
  return fd;
}

core::Result<std::unique_ptr<Connection>> OpenReader(const std::string& path) {
  auto conn = Connection::Open(path, false);
  if (!conn) return conn;
  for (const char* sql : {"PRAGMA busy_timeout = 5000", "PRAGMA query_only = ON",
                          "PRAGMA cache_size = -8192", "PRAGMA temp_store = MEMORY"}) {
    if (auto s = Pragma(**conn, sql); !s) return core::Fail(s.error());
  }
  return conn;
}

core::Result<std::unique_ptr<Store>> Open(const SqliteOptions& options, int lock_fd) {
  const std::string& path = options.path;
  // The key file beside the database's real path, as its lock: every spelling of the path finds
  // the same key. One beside the path as given, made before (the path was a link), still serves.
  std::string key_path = RealPath(path) + ".key";
  if (struct stat st{}; key_path != path + ".key" && ::stat(key_path.c_str(), &st) != 0 &&
                        ::stat((path + ".key").c_str(), &st) == 0) {
    key_path = path + ".key";
  }
  auto secrets = sqlite::LoadSecretsKey(options.secrets_key, key_path);
  if (!secrets) return core::Fail(secrets.error());
  std::vector<core::SecretBox> keys{*secrets};
  for (const std::string& older : options.older_secrets_keys) {
    auto box = core::SecretBox::FromBase64Key(older);
    if (!box) return core::Fail(box.error());
    keys.push_back(*box);
  }
  const Sealer sealer(std::move(keys));

  // The WAL's frames of a commit in a few writes (wal_vfs.h). The writer commits with
  // `synchronous = NORMAL`, set below before its first write: the store syncs the WAL itself,
  // off the writer thread, before it acknowledges a commit (SyncWal).
  if (sqlite::GatheringWalVfs() == nullptr) {
    spdlog::warn(
        "store: the WAL's writes are not gathered (libsqlite3 {} is not the {} this "
        "build was made against): each commit makes two writes per page",
        sqlite3_libversion(), SQLITE_VERSION);
  }
  auto writer = Connection::Open(path, true, /*gather_wal=*/true);
  if (!writer) return core::Fail(writer.error());
  Connection& w = **writer;
  {
    auto mode = w.Prepare("PRAGMA journal_mode = WAL");
    if (!mode) return core::Fail(mode.error());
    auto row = mode->Step();
    if (!row) return core::Fail(row.error());
    if (!*row || mode->Text(0) != "wal") {
      return core::Fail(core::Error::Internal("database " + path + " cannot use WAL mode"));
    }
  }
  for (const char* sql :
       {"PRAGMA synchronous = NORMAL", "PRAGMA foreign_keys = ON", "PRAGMA busy_timeout = 5000",
        "PRAGMA cache_size = -32768", "PRAGMA temp_store = MEMORY"}) {
    if (auto s = Pragma(w, sql); !s) return core::Fail(s.error());
  }
  {
    // After a checkpoint that starts the WAL over (RestartWal), a longer file is cut back to this.
    const std::string limit =
        "PRAGMA journal_size_limit = " + std::to_string(4 * options.wal_checkpoint_bytes);
    if (auto s = Pragma(w, limit.c_str()); !s) return core::Fail(s.error());
  }
  if (auto s = sqlite::Migrate(w); !s) return core::Fail(s.error());
  // A wrong --secrets-key is a clear start-up error, never garbage signatures: any one stored
  // secret must open with the key.
  {
    auto probe = w.Prepare(
        "SELECT secret FROM subscriptions WHERE secret IS NOT NULL AND secret <> '' LIMIT 1");
    if (!probe) return core::Fail(probe.error());
    auto row = probe->Step();
    if (!row) return core::Fail(row.error());
    if (*row) {
      if (auto opened = sealer.Open(probe->Text(0)); !opened) {
        return core::Fail(opened.error());
      }
    }
  }
  // One process owns the file, so every lease left in it belongs to a process that is gone:
  // interrupted attempts resume at once instead of after the lease.
  if (auto s = w.Exec("UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE "
                      "lease_owner IS NOT NULL; DELETE FROM subscription_owners; DELETE FROM "
                      "lease_owners;");
      !s) {
    return core::Fail(s.error());
  }

  // The WAL exists now (the writer's connection opened it), and stays the same file while the
  // store's connections are open: SQLite deletes it only when the last of them closes. Its name
  // as SQLite has it (beside the database file a symbolic link points to, not beside the link).
  const char* wal_name = sqlite3_filename_wal(sqlite3_db_filename(w.db(), "main"));
  const std::string wal_path = wal_name != nullptr ? wal_name : path + "-wal";
  const int wal_fd = ::open(wal_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (wal_fd < 0) {
    return core::Fail(
        core::Error::Internal("cannot open " + wal_path + ": " + std::strerror(errno)));
  }
  struct WalFdGuard {
    int fd;
    ~WalFdGuard() {
      if (fd >= 0) ::close(fd);
    }
  } wal_guard{wal_fd};
  std::vector<std::unique_ptr<Connection>> readers;
  for (int i = 0; i < std::max(options.reader_connections, 1); ++i) {
    auto r = OpenReader(path);
    if (!r) return core::Fail(r.error());
    readers.push_back(std::move(*r));
  }
  auto checkpointer = Connection::Open(path, false);
  if (!checkpointer) return core::Fail(checkpointer.error());
  if (auto s = Pragma(**checkpointer, "PRAGMA busy_timeout = 5000"); !s) {
    return core::Fail(s.error());
  }
  {
    // A connection learns that the file is in WAL mode when it first reads it; until then
    // sqlite3_wal_checkpoint_v2 on it does nothing (log = done = -1). Without this read the
    // checkpointer never moved a page and the WAL grew without bound (issue 8).
    auto mode = (*checkpointer)->Prepare("PRAGMA journal_mode");
    if (!mode) return core::Fail(mode.error());
    auto row = mode->Step();
    if (!row) return core::Fail(row.error());
    if (!*row || mode->Text(0) != "wal") {
      return core::Fail(core::Error::Internal("database " + path + " is not in WAL mode"));
    }
  }
  auto store = internal::StartStore([&] {
    return std::unique_ptr<Store>(new SqliteStore(options, lock_fd, wal_fd, sealer,
                                                  std::move(*writer), std::move(readers),
                                                  std::move(*checkpointer)));
  });
  if (store) wal_guard.fd = -1;  // the store's now
  return store;
}

}  // namespace

core::Result<std::unique_ptr<Store>> OpenSqlite(const SqliteOptions& options) {
  // SQLite's memory statistics take a global mutex on every allocation; nothing reads them.
  // Settable only before SQLite initialises; later it is a harmless no-op.
  static std::once_flag configured;
  std::call_once(configured, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  if (options.path.empty()) {
    return core::Fail(core::Error::Invalid("db", "invalid_setting", "db: sqlite: needs a path"));
  }
  auto fd = LockFile(options.path);
  if (!fd) return core::Fail(fd.error());
  auto store = Open(options, *fd);
  if (!store) ::close(*fd);
  return store;
}

}  // namespace outbound::store
