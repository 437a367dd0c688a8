// The gathering VFS (wal_vfs.h) when the disk refuses a write: a transaction whose gathered
// frames could not be written out never commits without them. Its own executable, because the
// faults come from a "unix" VFS registered here as the default before the gathering VFS wraps it
// (the gathering VFS takes the "unix" VFS once per process).
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <string>

#include "store/sqlite/wal_vfs.h"

namespace outbound::store::sqlite {
namespace {

std::atomic<bool> refuse_wal_writes{false};
sqlite3_vfs* real_unix = nullptr;
sqlite3_vfs refusing_vfs{};
sqlite3_io_methods refusing_methods{};  // a WAL file's unix methods, xWrite refusing when told
int (*real_write)(sqlite3_file*, const void*, int, sqlite3_int64) = nullptr;

int RefusingWrite(sqlite3_file* f, const void* data, int amount, sqlite3_int64 offset) {
  if (refuse_wal_writes.load()) return SQLITE_FULL;  // what the unix VFS says on ENOSPC
  return real_write(f, data, amount, offset);
}

// The unix VFS's xOpen; a WAL file gets the unix methods with RefusingWrite.
int RefusingOpen(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out) {
  const int rc = real_unix->xOpen(real_unix, name, f, flags, out);
  if (rc != SQLITE_OK || (flags & SQLITE_OPEN_WAL) == 0) return rc;
  if (real_write == nullptr) {
    refusing_methods = *f->pMethods;
    real_write = refusing_methods.xWrite;
    refusing_methods.xWrite = RefusingWrite;
  }
  f->pMethods = &refusing_methods;
  return rc;
}

void RegisterRefusingUnix() {
  real_unix = sqlite3_vfs_find("unix");
  ASSERT_NE(real_unix, nullptr);
  refusing_vfs = *real_unix;  // the same functions, called with the real VFS where they use it
  refusing_vfs.pNext = nullptr;
  refusing_vfs.xOpen = RefusingOpen;
  ASSERT_EQ(sqlite3_vfs_register(&refusing_vfs, 1), SQLITE_OK);  // found first as "unix"
}

std::string Text(sqlite3* db, const char* sql) {
  sqlite3_stmt* s = nullptr;
  std::string v;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
    v = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));  // NOLINT
  }
  sqlite3_finalize(s);
  return v;
}

TEST(GatheringWalVfs, ATransactionWhoseFramesCouldNotBeWrittenNeverCommitsWithoutThem) {
  ASSERT_NO_FATAL_FAILURE(RegisterRefusingUnix());
  std::string dir = (std::filesystem::temp_directory_path() / "outbound-walfault-XXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const std::string path = dir + "/t.db";
  sqlite3* w = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &w, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                            GatheringWalVfs()),
            SQLITE_OK);
  ASSERT_EQ(Text(w, "PRAGMA journal_mode = WAL"), "wal");
  ASSERT_EQ(sqlite3_exec(w,
                         "PRAGMA synchronous = NORMAL; PRAGMA cache_size = 20; CREATE TABLE t(id "
                         "INTEGER PRIMARY KEY, v TEXT NOT NULL)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  // A transaction larger than the cache: its pages spill into the WAL (gathered, not synced).
  ASSERT_EQ(sqlite3_exec(w,
                         "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                         "WHERE i < 300) INSERT INTO t SELECT i, printf('%2000d', i) FROM n",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  // The disk refuses: the next statement reads spilled pages back, which writes out what was
  // gathered first, and fails.
  refuse_wal_writes = true;
  const int rc =
      sqlite3_exec(w, "UPDATE t SET v = printf('%-2000d', id)", nullptr, nullptr, nullptr);
  refuse_wal_writes = false;
  EXPECT_NE(rc, SQLITE_OK);
  // Whatever SQLite made of the error, the transaction is not committed with frames missing:
  // either it was rolled back, or its COMMIT writes them now.
  if (sqlite3_get_autocommit(w) == 0) sqlite3_exec(w, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(w);

  sqlite3* r = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &r, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  EXPECT_EQ(Text(r, "PRAGMA integrity_check"), "ok");
  const std::string rows = Text(r, "SELECT count(*) FROM t");
  EXPECT_TRUE(rows == "0" || rows == "300") << rows << " rows";
  sqlite3_close(r);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace outbound::store::sqlite
