// Internal to store/sqlite: one SQLite connection with a cache of prepared statements, and a
// small statement wrapper. Nothing outside store/sqlite includes this (sqlite3.h stays here).
//
// Thread-safety: a Connection (and its statements) is used by one thread at a time; the owner
// (writer thread or reader pool) guarantees it.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/result.h"

namespace outbound::store::sqlite {

using core::Result;
using core::Status;

// An error from SQLite as a core::Error (kInternal; kUnavailable when busy or locked).
core::Error SqliteError(sqlite3* db, int rc, std::string_view what);

class Connection;

// A prepared statement borrowed from the connection's cache. Resets and clears its bindings when
// it goes out of scope, so the next user finds it clean. Binding indexes are 1-based, column
// indexes 0-based (as in SQLite).
class Stmt {
 public:
  Stmt(Stmt&& other) noexcept;
  Stmt& operator=(Stmt&&) = delete;
  Stmt(const Stmt&) = delete;
  ~Stmt();

  Stmt& Bind(int i, std::int64_t v);
  Stmt& Bind(int i, int v) { return Bind(i, static_cast<std::int64_t>(v)); }
  Stmt& Bind(int i, bool v) { return Bind(i, static_cast<std::int64_t>(v ? 1 : 0)); }
  Stmt& Bind(int i, double v);
  Stmt& Bind(int i, std::string_view v);
  Stmt& Bind(int i, const std::string& v) { return Bind(i, std::string_view(v)); }
  Stmt& Bind(int i, const char* v) { return Bind(i, std::string_view(v)); }
  Stmt& BindNull(int i);
  template <class T>
  Stmt& Bind(int i, const std::optional<T>& v) {
    return v ? Bind(i, *v) : BindNull(i);
  }

  // true: a row is available; false: done.
  Result<bool> Step();
  // Steps to the end (for statements without rows).
  Status Run();

  bool IsNull(int col) const;
  std::int64_t Int(int col) const;
  double Double(int col) const;
  std::string Text(int col) const;
  std::optional<std::int64_t> OptInt(int col) const;
  std::optional<double> OptDouble(int col) const;
  std::optional<std::string> OptText(int col) const;

  sqlite3_stmt* raw() const { return stmt_; }

 private:
  friend class Connection;
  Stmt(Connection* conn, sqlite3_stmt* stmt, bool* in_use, bool owned);

  Connection* conn_;
  sqlite3_stmt* stmt_;
  bool* in_use_;  // the cache entry's flag; null when owned
  bool owned_;    // finalize on destruction (a nested use of a busy cached statement)
};

class Connection {
 public:
  // Opens (creating when `create`) the database file. `gather_wal`: through the VFS that writes
  // each commit's WAL frames in a few writes (wal_vfs.h); for the writer's connection (when
  // the VFS is not available, the default VFS).
  static Result<std::unique_ptr<Connection>> Open(const std::string& path, bool create,
                                                  bool gather_wal = false);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The cached statement for `sql` (prepared once, SQLITE_PREPARE_PERSISTENT). When that
  // statement is in use by an enclosing caller, a fresh one is prepared for this use only.
  Result<Stmt> Prepare(std::string_view sql);
  // Runs one or more statements without results (schema, pragmas).
  Status Exec(const char* sql);

  sqlite3* db() const { return db_; }
  std::int64_t Changes() const { return sqlite3_changes64(db_); }
  std::int64_t LastInsertRowid() const { return sqlite3_last_insert_rowid(db_); }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}

  struct Cached {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  sqlite3* db_;
  std::unordered_map<std::string, Cached, Hash, std::equal_to<>> cache_;
};

}  // namespace outbound::store::sqlite
