// Internal to store/sqlite: a VFS that writes each commit's WAL frames in one write.
//
// SQLite (3.40, Debian 12) writes a WAL frame as two pwrite(2) calls, its 24-byte header and then
// its page, so a commit of n pages makes 2n system calls, each dirtying the page cache pages it
// straddles (a page after a 24-byte header spans two). This VFS is SQLite's own "unix" VFS with
// one change: a WAL file's writes that follow each other are gathered in memory and written as
// one pwrite when SQLite syncs the file, reads it, asks its size, truncates or closes it, or when
// they pass kMaxGathered. Measured outside Outbound (400 frames and an fdatasync per commit): 1.15
// ms of CPU per commit with two writes a frame, 0.52 ms with one (docs/PERFORMANCE.md).
//
// Why it is safe: SQLite publishes a commit to other connections (the wal-index header) only
// after it synced the WAL, and with `synchronous = FULL`, the only setting the writer connection
// runs with, every commit syncs it; the sync writes what was gathered first. Frames that were
// gathered but not written when the process dies were never synced, so SQLite's recovery treats
// them as it treats frames the disk did not keep: their transaction is not in the database.
// Database, journal and shared-memory files pass to the unix VFS untouched, so locks and the
// wal-index are shared with the readers' and the checkpointer's connections as before.
#pragma once

#include <cstdint>

namespace outbound::store::sqlite {

// The name of the VFS to pass to sqlite3_open_v2 (registered on first call; not the default).
// nullptr when it could not be registered: the caller then opens with the default VFS.
const char* GatheringWalVfs();

// How many write calls the gathering VFS has made to WAL files, over all files (for tests).
std::uint64_t GatheredWalWritesForTests();

}  // namespace outbound::store::sqlite
