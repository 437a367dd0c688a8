// The embedded SQLite store (WAL mode, group commit on one writer thread, each commit synced to
// disk before it is acknowledged: synchronous=NORMAL and a sync of the WAL off the writer).
// One process owns the file: a second process on the same file is refused (an exclusive lock
// on "<real path>.lock", the path through symbolic links, so that every spelling of it takes the
// same lock). Opening clears every lease, so interrupted attempts resume at once; while the
// process lives, its dispatcher renews its lease (store.h), so leases do not expire.
// Beside the database: "<path>-wal", "<path>-shm" (SQLite), "<real path>.lock" and, unless
// secrets_key is given, "<real path>.key" (or "<path>.key" made before beside a link; back it up
// with the database: without it the stored signing secrets cannot be read).
// Errors of OpenSqlite: kUnavailable "store_locked" (another process has the file),
// "invalid_secrets_key", kInternal for anything SQLite refuses (message says what).
// Write tasks must not call Store::Write themselves (the writer thread would wait for itself).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "store/store.h"

namespace outbound::store {

struct SqliteOptions {
  std::string path;                // database file; created if missing
  std::size_t max_queue = 100000;  // pending write tasks before Submit answers kUnavailable
  std::size_t max_batch = 512;     // tasks per transaction
  int reader_connections = 4;
  // A WAL longer than this that a passive checkpoint could not copy whole is checkpointed with
  // RESTART (waiting briefly for readers and the writer): the WAL stays near this size under
  // any load (ARCHITECTURE: ≤ 64 MB).
  std::size_t wal_checkpoint_bytes = std::size_t{16} * 1024 * 1024;
  // Encrypts signing secrets and subscription headers at rest: 32 random bytes, base64
  // (--secrets-key). Default: read from "<path>.key", created (mode 0600) on first start.
  std::optional<std::string> secrets_key;
  // Keys that sealed earlier (--secrets-key NEW,OLD,...): values they sealed still open, and are
  // sealed again with the first key in the background.
  std::vector<std::string> older_secrets_keys;
};

core::Result<std::unique_ptr<Store>> OpenSqlite(const SqliteOptions& options);

}  // namespace outbound::store
