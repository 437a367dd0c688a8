// The VFS that gathers a commit's WAL frames into one write (wal_vfs.h), on a real SQLite file:
// a commit is a few writes instead of two a page, a connection of the default VFS (as the
// readers and the checkpointer are) sees every commit whole, through transactions larger than
// the cache and than what is gathered, frames written again, a WAL started over and a file
// opened afresh, and a commit that returned survives the process being killed. Each with the
// writer on `synchronous = NORMAL` (the store's setting: SQLite does not sync the WAL at a
// commit, so the VFS must write the commit out by itself) and on FULL. A refused write:
// wal_vfs_fault_test.cpp.
#include "store/sqlite/wal_vfs.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace outbound::store::sqlite {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string templ =
        (std::filesystem::temp_directory_path() / "outbound-walvfs-XXXXXX").string();
    if (mkdtemp(templ.data()) != nullptr) path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  bool ok() const { return !path_.empty(); }
  std::string File() const { return path_ + "/t.db"; }

 private:
  std::string path_;
};

sqlite3* OpenDb(const std::string& path, const char* vfs) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) !=
      SQLITE_OK) {
    sqlite3_close(db);
    return nullptr;
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
}

bool Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) ADD_FAILURE() << sql << ": " << (err != nullptr ? err : "?");
  sqlite3_free(err);
  return rc == SQLITE_OK;
}

std::int64_t Int(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* s = nullptr;
  std::int64_t v = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK &&
      sqlite3_step(s) == SQLITE_ROW) {
    v = sqlite3_column_int64(s, 0);
  } else {
    ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
  }
  sqlite3_finalize(s);
  return v;
}

std::string Text(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* s = nullptr;
  std::string v;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK &&
      sqlite3_step(s) == SQLITE_ROW) {
    v = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));  // NOLINT
  }
  sqlite3_finalize(s);
  return v;
}

// The writer as the store opens it: WAL, `synchronous` as given (the store: NORMAL); a small
// cache, so that a large transaction spills pages into the WAL before its commit.
sqlite3* OpenWriter(const std::string& path, const std::string& synchronous) {
  const char* vfs = GatheringWalVfs();
  EXPECT_NE(vfs, nullptr);
  sqlite3* db = OpenDb(path, vfs);
  EXPECT_NE(db, nullptr);
  if (db == nullptr) return nullptr;
  EXPECT_EQ(Text(db, "PRAGMA journal_mode = WAL"), "wal");
  Exec(db, "PRAGMA synchronous = " + synchronous);
  Exec(db, "PRAGMA cache_size = 20");
  return db;
}

// A new database in `dir`, opened by the writer, with the tests' table.
sqlite3* NewDatabase(const TempDir& dir, const std::string& synchronous) {
  EXPECT_TRUE(dir.ok());
  if (!dir.ok()) return nullptr;
  sqlite3* w = OpenWriter(dir.File(), synchronous);
  if (w != nullptr && !Exec(w, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)")) {
    sqlite3_close(w);
    return nullptr;
  }
  return w;
}

// Rows [from, to): each 2,000 bytes, its id written into it, so every row's content is checked.
std::string InsertRows(int from, int to) {
  return "WITH RECURSIVE n(i) AS (SELECT " + std::to_string(from) + " UNION ALL SELECT i + 1 " +
         "FROM n WHERE i + 1 < " + std::to_string(to) +
         ") INSERT INTO t(id, v) SELECT i, printf('%2000d', i) FROM n";
}

// The rows a connection sees, each checked: -1 when one does not hold its id.
std::int64_t CheckedRows(sqlite3* db) {
  const std::int64_t all = Int(db, "SELECT count(*) FROM t");
  const std::int64_t good =
      Int(db, "SELECT count(*) FROM t WHERE length(v) = 2000 AND CAST(trim(v) AS INTEGER) = id");
  return all == good ? all : -1;
}

class GatheringWalVfs : public ::testing::TestWithParam<std::string> {};

TEST_P(GatheringWalVfs, ACommitIsAFewWritesAndAnotherConnectionSeesItWhole) {
  TempDir dir;
  sqlite3* w = NewDatabase(dir, GetParam());
  ASSERT_NE(w, nullptr);
  sqlite3* r = OpenDb(dir.File(), nullptr);  // the default VFS, as the store's readers
  ASSERT_NE(r, nullptr);

  // Commits of 40 rows: about 20 pages each, 40 writes each without gathering.
  int rows = 0;
  for (int i = 0; i < 30; ++i) {
    const std::uint64_t before = GatheredWalWritesForTests();
    ASSERT_TRUE(Exec(w, InsertRows(rows, rows + 40)));
    rows += 40;
    const std::uint64_t writes = GatheredWalWritesForTests() - before;
    EXPECT_GE(writes, 1u) << "commit " << i << ": the WAL is not gathered";
    EXPECT_LE(writes, 3u) << "commit " << i;
    EXPECT_EQ(WriteOutGatheredWal(w), 0) << "commit " << i << " was not written out whole";
    ASSERT_EQ(CheckedRows(r), rows) << "commit " << i;
  }

  // Frames of a transaction not yet committed stay gathered until its end; WriteOutGatheredWal
  // writes them out (what the store's writer would do after a commit that the VFS missed).
  ASSERT_TRUE(Exec(w, "BEGIN"));
  ASSERT_TRUE(Exec(w, InsertRows(rows, rows + 200)));
  EXPECT_GT(WriteOutGatheredWal(w), 0);
  ASSERT_TRUE(Exec(w, "COMMIT"));
  EXPECT_EQ(WriteOutGatheredWal(w), 0);
  rows += 200;
  ASSERT_EQ(CheckedRows(r), rows);

  // A transaction of 6 MB: it spills past the cache, passes what is gathered at once (4 MB), and
  // writes frames of its own again (the UPDATE after the INSERT).
  ASSERT_TRUE(Exec(w, "BEGIN"));
  ASSERT_TRUE(Exec(w, InsertRows(rows, rows + 3000)));
  ASSERT_TRUE(Exec(w, "UPDATE t SET v = printf('%-2000d', id) WHERE id % 7 = 0"));
  ASSERT_TRUE(Exec(w, "COMMIT"));
  EXPECT_EQ(WriteOutGatheredWal(w), 0);
  rows += 3000;
  ASSERT_EQ(CheckedRows(r), rows);

  // The WAL started over (a RESTART checkpoint, as the store's writer runs them): new frames are
  // written from its beginning, over the old ones.
  int log = -1;
  int done = -1;
  ASSERT_EQ(sqlite3_wal_checkpoint_v2(w, nullptr, SQLITE_CHECKPOINT_RESTART, &log, &done),
            SQLITE_OK);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Exec(w, InsertRows(rows, rows + 40)));
    rows += 40;
    ASSERT_EQ(CheckedRows(r), rows);
  }
  sqlite3_close(r);
  sqlite3_close(w);

  sqlite3* again = OpenDb(dir.File(), nullptr);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(Text(again, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(CheckedRows(again), rows);
  sqlite3_close(again);
}

// A child process commits a transaction that writes frames of its own again (SQLite then
// rewrites their checksums after the commit frame), then transactions of 40 rows, through the
// VFS, and reports each commit that returned; it is killed with SIGKILL in the middle of its
// writes. Every reported commit is in the file, and nothing of a transaction that did not commit
// is. With FULL this holds without the VFS too (it is there to fail should the VFS lose a
// commit); with NORMAL it fails unless the VFS writes each commit out before it returns.
TEST_P(GatheringWalVfs, ACommitThatReturnedSurvivesKill) {
  TempDir dir;
  {
    sqlite3* w = NewDatabase(dir, GetParam());
    ASSERT_NE(w, nullptr);
    sqlite3_close(w);
  }
  constexpr int kFirst = 400;  // the rows of the first transaction
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipe_fds[0]);
    sqlite3* w = OpenWriter(dir.File(), GetParam());
    const std::string first = "BEGIN; " + InsertRows(0, kFirst) +
                              "; UPDATE t SET v = printf('%-2000d', id) WHERE id % 3 = 0; COMMIT";
    if (w == nullptr || sqlite3_exec(w, first.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
      _exit(2);
    }
    for (int i = 0; i < 100'000; ++i) {  // bounded: killed long before
      if (sqlite3_exec(w, InsertRows(kFirst + i * 40, kFirst + i * 40 + 40).c_str(), nullptr,
                       nullptr, nullptr) != SQLITE_OK) {
        _exit(2);
      }
      const char one = 1;
      if (write(pipe_fds[1], &one, 1) != 1) _exit(3);
    }
    _exit(0);
  }
  close(pipe_fds[1]);
  int reported = 0;
  char c = 0;
  while (reported < 60 && read(pipe_fds[0], &c, 1) == 1) ++reported;
  kill(child, SIGKILL);
  while (read(pipe_fds[0], &c, 1) == 1) ++reported;  // commits reported before the kill landed
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child ended on its own: " << status;
  ASSERT_EQ(reported >= 60, true);

  sqlite3* db = OpenDb(dir.File(), nullptr);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(Text(db, "PRAGMA integrity_check"), "ok");
  const std::int64_t rows = CheckedRows(db);
  EXPECT_GE(rows, kFirst + std::int64_t{40} * reported);
  EXPECT_EQ((rows - kFirst) % 40, 0) << "only whole transactions";
  sqlite3_close(db);
}

INSTANTIATE_TEST_SUITE_P(Synchronous, GatheringWalVfs, ::testing::Values("NORMAL", "FULL"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace outbound::store::sqlite
