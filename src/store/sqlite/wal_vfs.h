// Internal to store/sqlite: a VFS that writes each commit's WAL frames in a few large writes.
//
// SQLite (3.40, Debian 12) writes a WAL frame as two pwrite(2) calls, its 24-byte header and then
// its page, so a commit of n pages makes 2n system calls, each dirtying the page cache pages it
// straddles (a page after a 24-byte header spans two). This VFS is SQLite's own "unix" VFS with
// one change: a WAL file's writes that follow each other are gathered in memory and written out,
// one pwrite per 124 KiB, at the end of each commit, when SQLite syncs the file, reads it, asks
// its size, truncates it, passes it a file control, maps it or closes it, when a write does not
// follow the gathered bytes, or when they pass 4 MiB. SQLite has no setting for this; a VFS shim is
// its documented way to change how a file is written. Measured outside Outbound (400 frames and an
// fdatasync per commit): 1.14-1.21 ms of CPU per commit with two writes a frame, 0.59-0.60 ms
// gathered (docs/PERFORMANCE.md).
//
// Why it is safe: SQLite publishes a commit to other connections (the wal-index header) only
// after it wrote the commit's frames, and this VFS writes them out before SQLite goes on: the
// header of a commit's last frame (bytes 4-7 of a frame header are non-zero only there) writes
// out what is gathered, and that frame's page goes straight after it. The writer connection runs
// with `synchronous = NORMAL`, so SQLite does not sync the WAL at a commit; the store syncs it
// before it acknowledges any commit (sqlite_store.cpp, SyncWal). With FULL the commit's sync
// would also write out what is gathered. Two conditions:
// - The file must be power-safe to overwrite (SQLITE_IOCAP_POWERSAFE_OVERWRITE, the unix VFS's
//   default): otherwise SQLite pads a commit and writes part of it after the sync, so such a file
//   is not gathered.
// - A failed write-out keeps the bytes it did not write and reports an I/O error, which rolls
//   the transaction back (SQLITE_FULL from a read would undo only the statement, and the
//   transaction could commit with frames missing from the file).
// Frames that were gathered but not written when the process dies belong to a transaction whose
// commit had not returned: SQLite's recovery treats them as it treats frames the disk did not
// keep, and their transaction is not in the database. Database, journal and shared-memory files
// pass to the unix VFS untouched, so locks and the wal-index are shared with the readers' and the
// checkpointer's connections as before.
#pragma once

#include <sqlite3.h>

#include <cstdint>

namespace outbound::store::sqlite {

// The name of the VFS to pass to sqlite3_open_v2 (registered on first call; not the default).
// nullptr when it could not be registered, or when the libsqlite3 in use is not the version the
// build was made against (the frames' layout it relies on is that of SQLite 3.40's wal.c): the
// caller then opens with the default VFS.
const char* GatheringWalVfs();

// Writes out what the gathering VFS still holds of `db`'s WAL after a commit: the bytes it wrote
// (0 when it held none, as it should, or when `db` is not on this VFS), or -1 when writing them
// failed.
std::int64_t WriteOutGatheredWal(sqlite3* db);

// How many write calls the gathering VFS has made to WAL files, over all files (for tests).
std::uint64_t GatheredWalWritesForTests();

}  // namespace outbound::store::sqlite
