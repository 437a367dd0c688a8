#include "store/sqlite/wal_vfs.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <new>
#include <vector>

namespace outbound::store::sqlite {
namespace {

// Gathered bytes are written out once they pass this, so a transaction larger than it (an
// import, a migration) never holds more than this in memory besides SQLite's own cache (the
// buffer keeps its capacity between commits: at most about twice this).
constexpr std::size_t kMaxGathered = std::size_t{4} << 20;

// The unix VFS writes at most 128 KiB − 1 bytes a call (its seekAndWriteFd masks the length with
// 0x1ffff), so gathered bytes go out in pieces of 124 KiB: about 30 frames of 4 KiB pages each.
constexpr std::size_t kMaxWrite = std::size_t{124} << 10;

std::atomic<std::uint64_t> wal_writes{0};

// A WAL file: the unix VFS's file (`real`, in the same allocation, after this struct) and the
// bytes gathered for it, which start at `at`. Used by one connection, so one thread at a time.
// `gather` is false when the file is not power-safe to overwrite (below): then every write goes
// straight through.
struct WalFile {
  sqlite3_file base;  // first: SQLite sees a WalFile as a sqlite3_file
  sqlite3_file* real;
  std::vector<char>* gathered;
  sqlite3_int64 at;
  // Where the page of a commit frame goes when its header was the last write (CommitHeader), or
  // -1: that page is written straight through.
  sqlite3_int64 commit_page_at;
  bool gather;
};
// The unix VFS's file follows at this offset: 8-byte aligned, as its members (pointers, 64-bit
// integers) need and as SQLite allocates a sqlite3_file.
static_assert(sizeof(WalFile) % 8 == 0);

WalFile* Wal(sqlite3_file* f) { return reinterpret_cast<WalFile*>(f); }  // NOLINT: as SQLite does

// `n` bytes at `offset` through the unix VFS, in pieces it takes whole. `written`: how many
// went out before an error.
int WriteOut(WalFile* w, const char* bytes, std::size_t n, sqlite3_int64 offset,
             std::size_t& written) {
  for (written = 0; written < n;) {
    const std::size_t piece = std::min(n - written, kMaxWrite);
    wal_writes.fetch_add(1, std::memory_order_relaxed);
    const int rc = w->real->pMethods->xWrite(w->real, bytes + written, static_cast<int>(piece),
                                             offset + static_cast<sqlite3_int64>(written));
    if (rc != SQLITE_OK) return rc;
    written += piece;
  }
  return SQLITE_OK;
}

// Writes what is gathered (nothing when nothing is). A failure keeps the bytes not written, so
// that the next flush (at the latest the commit's sync) tries them again: the commit either
// fails or finds every frame in the file. It is reported as SQLITE_IOERR_WRITE whatever the disk
// said: from a read or a size query, SQLITE_FULL would roll back only the statement that met it
// (a statement journal's), and the transaction could then commit with frames that are not in the
// file; an I/O error rolls the whole transaction back.
int Flush(WalFile* w) {
  std::vector<char>& g = *w->gathered;
  if (g.empty()) return SQLITE_OK;
  std::size_t written = 0;
  if (WriteOut(w, g.data(), g.size(), w->at, written) == SQLITE_OK) {
    g.clear();
    return SQLITE_OK;
  }
  g.erase(g.begin(), g.begin() + static_cast<std::ptrdiff_t>(written));
  w->at += static_cast<sqlite3_int64>(written);
  return SQLITE_IOERR_WRITE;
}

int Close(sqlite3_file* f) {
  WalFile* w = Wal(f);
  const int flushed = Flush(w);
  const int rc = w->real->pMethods->xClose(w->real);
  delete w->gathered;
  w->gathered = nullptr;
  return flushed != SQLITE_OK ? flushed : rc;
}

int Read(sqlite3_file* f, void* out, int amount, sqlite3_int64 offset) {
  WalFile* w = Wal(f);
  if (const int rc = Flush(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xRead(w->real, out, amount, offset);
}

// The WAL's header is 32 bytes; a frame is a 24-byte header and a page, and SQLite writes the
// two apart (walWriteOneFrame). A frame header's bytes 4-7 hold, for the last frame of a commit,
// the database's size in pages, and zero for every other frame (the WAL format,
// https://www.sqlite.org/fileformat2.html#walformat).
constexpr std::size_t kWalHeaderBytes = 32;
constexpr std::size_t kFrameHeaderBytes = 24;

bool CommitHeader(const char* bytes, std::size_t n, sqlite3_int64 offset) {
  if (n != kFrameHeaderBytes || offset < static_cast<sqlite3_int64>(kWalHeaderBytes)) return false;
  return bytes[4] != 0 || bytes[5] != 0 || bytes[6] != 0 || bytes[7] != 0;
}

int Write(sqlite3_file* f, const void* data, int amount, sqlite3_int64 offset) {
  WalFile* w = Wal(f);
  const char* bytes = static_cast<const char*>(data);
  const auto n = static_cast<std::size_t>(amount);
  std::size_t written = 0;
  if (!w->gather) return WriteOut(w, bytes, n, offset, written);
  // The page of a commit frame whose header was just written out goes straight after it: the
  // commit is then whole in the file when this returns.
  if (w->commit_page_at >= 0) {
    const bool page = offset == w->commit_page_at;
    w->commit_page_at = -1;
    if (page) return WriteOut(w, bytes, n, offset, written);
  }
  std::vector<char>& g = *w->gathered;
  // Anything but the next bytes (a frame of this transaction written again, the WAL started
  // over) first writes out what is gathered, so that the file sees every write in its order.
  if (!g.empty() &&
      (offset != w->at + static_cast<sqlite3_int64>(g.size()) || g.size() + n > kMaxGathered)) {
    if (const int rc = Flush(w); rc != SQLITE_OK) return rc;
  }
  if (n > kMaxGathered) return WriteOut(w, bytes, n, offset, written);
  try {
    if (g.empty()) w->at = offset;
    g.insert(g.end(), bytes, bytes + n);  // the next bytes: the usual case
  } catch (const std::bad_alloc&) {       // no exception crosses SQLite's C frames
    return SQLITE_IOERR_NOMEM;
  }
  // The header of a commit's last frame: what is gathered goes out now, and the frame's page
  // right after it (above), so that the commit is in the file before SQLite publishes it to
  // other connections (the wal-index header) even when it does not sync the WAL at commit
  // (`synchronous = NORMAL`, the writer's setting: the store syncs the WAL itself before it
  // acknowledges a commit). When SQLite rewrites the frames' checksums after a frame was
  // written twice in one transaction (walRewriteChecksums), this header is the last write.
  if (CommitHeader(bytes, n, offset)) {
    if (const int rc = Flush(w); rc != SQLITE_OK) return rc;
    w->commit_page_at = offset + static_cast<sqlite3_int64>(kFrameHeaderBytes);
  }
  return SQLITE_OK;
}

int Truncate(sqlite3_file* f, sqlite3_int64 size) {
  WalFile* w = Wal(f);
  if (const int rc = Flush(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xTruncate(w->real, size);
}

int Sync(sqlite3_file* f, int flags) {
  WalFile* w = Wal(f);
  if (const int rc = Flush(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xSync(w->real, flags);
}

int FileSize(sqlite3_file* f, sqlite3_int64* size) {
  WalFile* w = Wal(f);
  if (const int rc = Flush(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xFileSize(w->real, size);
}

int Lock(sqlite3_file* f, int level) { return Wal(f)->real->pMethods->xLock(Wal(f)->real, level); }
int Unlock(sqlite3_file* f, int level) {
  return Wal(f)->real->pMethods->xUnlock(Wal(f)->real, level);
}
int CheckReservedLock(sqlite3_file* f, int* out) {
  return Wal(f)->real->pMethods->xCheckReservedLock(Wal(f)->real, out);
}
int FileControl(sqlite3_file* f, int op, void* arg) {
  WalFile* w = Wal(f);
  if (const int rc = Flush(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xFileControl(w->real, op, arg);
}
int SectorSize(sqlite3_file* f) { return Wal(f)->real->pMethods->xSectorSize(Wal(f)->real); }
int DeviceCharacteristics(sqlite3_file* f) {
  return Wal(f)->real->pMethods->xDeviceCharacteristics(Wal(f)->real);
}
// A WAL file has no shared memory and is never mapped (the unix VFS maps only database files);
// these pass on all the same, as the unix VFS answers them.
int ShmMap(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  return Wal(f)->real->pMethods->xShmMap(Wal(f)->real, region, size, extend, out);
}
int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Wal(f)->real->pMethods->xShmLock(Wal(f)->real, offset, n, flags);
}
void ShmBarrier(sqlite3_file* f) { Wal(f)->real->pMethods->xShmBarrier(Wal(f)->real); }
int ShmUnmap(sqlite3_file* f, int drop) {
  return Wal(f)->real->pMethods->xShmUnmap(Wal(f)->real, drop);
}
int Fetch(sqlite3_file* f, sqlite3_int64 offset, int amount, void** out) {
  WalFile* w = Wal(f);
  if (const int rc = Flush(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xFetch(w->real, offset, amount, out);
}
int Unfetch(sqlite3_file* f, sqlite3_int64 offset, void* p) {
  return Wal(f)->real->pMethods->xUnfetch(Wal(f)->real, offset, p);
}

const sqlite3_io_methods kWalMethods = [] {
  sqlite3_io_methods m{};
  m.iVersion = 3;
  m.xClose = Close;
  m.xRead = Read;
  m.xWrite = Write;
  m.xTruncate = Truncate;
  m.xSync = Sync;
  m.xFileSize = FileSize;
  m.xLock = Lock;
  m.xUnlock = Unlock;
  m.xCheckReservedLock = CheckReservedLock;
  m.xFileControl = FileControl;
  m.xSectorSize = SectorSize;
  m.xDeviceCharacteristics = DeviceCharacteristics;
  m.xShmMap = ShmMap;
  m.xShmLock = ShmLock;
  m.xShmBarrier = ShmBarrier;
  m.xShmUnmap = ShmUnmap;
  m.xFetch = Fetch;
  m.xUnfetch = Unfetch;
  return m;
}();

sqlite3_vfs* UnixOf(sqlite3_vfs* v) { return static_cast<sqlite3_vfs*>(v->pAppData); }

// A WAL file is opened as a WalFile around the unix VFS's file; any other file is the unix VFS's
// file itself, at the start of the same allocation (szOsFile leaves room for both).
int Open(sqlite3_vfs* v, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  sqlite3_vfs* base_vfs = UnixOf(v);
  if ((flags & SQLITE_OPEN_WAL) == 0) return base_vfs->xOpen(base_vfs, name, f, flags, out_flags);
  WalFile* w = Wal(f);
  w->base.pMethods = nullptr;  // until the file is open: SQLite then does not close it
  w->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + sizeof(WalFile));
  w->gathered = new (std::nothrow) std::vector<char>();
  w->at = 0;
  w->commit_page_at = -1;
  w->gather = false;
  if (w->gathered == nullptr) return SQLITE_NOMEM;
  const int rc = base_vfs->xOpen(base_vfs, name, w->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    if (w->real->pMethods != nullptr) w->real->pMethods->xClose(w->real);
    delete w->gathered;
    w->gathered = nullptr;
    return rc;
  }
  // SQLite pads a commit to a sector boundary, and writes part of its last frame after a sync,
  // when the file is not power-safe to overwrite (`psow=0`, or a VFS that says so); a commit
  // would then be shown to readers before that part left the buffer. The unix VFS says it is
  // power-safe by default; otherwise this file is not gathered.
  w->gather =
      (w->real->pMethods->xDeviceCharacteristics(w->real) & SQLITE_IOCAP_POWERSAFE_OVERWRITE) != 0;
  w->base.pMethods = &kWalMethods;
  return SQLITE_OK;
}

int Delete(sqlite3_vfs* v, const char* name, int sync_dir) {
  return UnixOf(v)->xDelete(UnixOf(v), name, sync_dir);
}
int Access(sqlite3_vfs* v, const char* name, int flags, int* out) {
  return UnixOf(v)->xAccess(UnixOf(v), name, flags, out);
}
int FullPathname(sqlite3_vfs* v, const char* name, int n, char* out) {
  return UnixOf(v)->xFullPathname(UnixOf(v), name, n, out);
}
void* DlOpen(sqlite3_vfs* v, const char* name) { return UnixOf(v)->xDlOpen(UnixOf(v), name); }
void DlError(sqlite3_vfs* v, int n, char* out) { UnixOf(v)->xDlError(UnixOf(v), n, out); }
void (*DlSym(sqlite3_vfs* v, void* lib, const char* sym))(void) {
  return UnixOf(v)->xDlSym(UnixOf(v), lib, sym);
}
void DlClose(sqlite3_vfs* v, void* lib) { UnixOf(v)->xDlClose(UnixOf(v), lib); }
int Randomness(sqlite3_vfs* v, int n, char* out) {
  return UnixOf(v)->xRandomness(UnixOf(v), n, out);
}
int Sleep(sqlite3_vfs* v, int micros) { return UnixOf(v)->xSleep(UnixOf(v), micros); }
int CurrentTime(sqlite3_vfs* v, double* out) { return UnixOf(v)->xCurrentTime(UnixOf(v), out); }
int GetLastError(sqlite3_vfs* v, int n, char* out) {
  return UnixOf(v)->xGetLastError(UnixOf(v), n, out);
}
int CurrentTimeInt64(sqlite3_vfs* v, sqlite3_int64* out) {
  return UnixOf(v)->xCurrentTimeInt64(UnixOf(v), out);
}

const char* Register() {
  if (sqlite3_libversion_number() != SQLITE_VERSION_NUMBER) return nullptr;
  sqlite3_vfs* base_vfs = sqlite3_vfs_find("unix");
  if (base_vfs == nullptr || base_vfs->iVersion < 2) return nullptr;
  static sqlite3_vfs vfs{};
  vfs.iVersion = 2;
  vfs.szOsFile = static_cast<int>(sizeof(WalFile)) + base_vfs->szOsFile;
  vfs.mxPathname = base_vfs->mxPathname;
  vfs.zName = "outbound-gathered-wal";
  vfs.pAppData = base_vfs;
  vfs.xOpen = Open;
  vfs.xDelete = Delete;
  vfs.xAccess = Access;
  vfs.xFullPathname = FullPathname;
  vfs.xDlOpen = DlOpen;
  vfs.xDlError = DlError;
  vfs.xDlSym = DlSym;
  vfs.xDlClose = DlClose;
  vfs.xRandomness = Randomness;
  vfs.xSleep = Sleep;
  vfs.xCurrentTime = CurrentTime;
  vfs.xGetLastError = GetLastError;
  vfs.xCurrentTimeInt64 = CurrentTimeInt64;
  if (sqlite3_vfs_register(&vfs, 0) != SQLITE_OK) return nullptr;
  return vfs.zName;
}

}  // namespace

const char* GatheringWalVfs() {
  static const char* const name = Register();
  return name;
}

std::int64_t WriteOutGatheredWal(sqlite3* db) {
  sqlite3_file* f = nullptr;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) != SQLITE_OK ||
      f == nullptr || f->pMethods != &kWalMethods) {
    return 0;
  }
  WalFile* w = Wal(f);
  const auto held = static_cast<std::int64_t>(w->gathered->size());
  if (held == 0) return 0;
  return Flush(w) == SQLITE_OK ? held : -1;
}

std::uint64_t GatheredWalWritesForTests() { return wal_writes.load(std::memory_order_relaxed); }

}  // namespace outbound::store::sqlite
