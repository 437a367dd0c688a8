#include "store/sqlite/connection.h"

#include <utility>

#include "store/counters.h"
#include "store/sqlite/wal_vfs.h"

namespace outbound::store::sqlite {

core::Error SqliteError(sqlite3* db, int rc, std::string_view what) {
  std::string message = "sqlite: ";
  message += what;
  message += ": ";
  message += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    core::Error e = core::Error::Unavailable(std::move(message));
    e.code = "store_busy";
    return e;
  }
  return core::Error::Internal(std::move(message));
}

// --- Stmt ---

Stmt::Stmt(Connection* conn, sqlite3_stmt* stmt, bool* in_use, bool owned)
    : conn_(conn), stmt_(stmt), in_use_(in_use), owned_(owned) {}

Stmt::Stmt(Stmt&& other) noexcept
    : conn_(other.conn_), stmt_(other.stmt_), in_use_(other.in_use_), owned_(other.owned_) {
  other.stmt_ = nullptr;
  other.in_use_ = nullptr;
  other.owned_ = false;
}

Stmt::~Stmt() {
  if (stmt_ == nullptr) return;
  Counters::SqliteVmSteps(
      static_cast<std::uint64_t>(sqlite3_stmt_status(stmt_, SQLITE_STMTSTATUS_VM_STEP, 1)));
  if (int scanned = sqlite3_stmt_status(stmt_, SQLITE_STMTSTATUS_FULLSCAN_STEP, 1); scanned > 0) {
    Counters::SqliteFullScan(sqlite3_sql(stmt_), static_cast<std::uint64_t>(scanned));
  }
  if (owned_) {
    sqlite3_finalize(stmt_);
    return;
  }
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  if (in_use_ != nullptr) *in_use_ = false;
}

Stmt& Stmt::Bind(int i, std::int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}
Stmt& Stmt::Bind(int i, double v) {
  sqlite3_bind_double(stmt_, i, v);
  return *this;
}
Stmt& Stmt::Bind(int i, std::string_view v) {
  // SQLITE_STATIC: every caller keeps the bound string alive until the statement has run.
  sqlite3_bind_text64(stmt_, i, v.data() != nullptr ? v.data() : "", v.size(), SQLITE_STATIC,
                      SQLITE_UTF8);
  return *this;
}
Stmt& Stmt::BindNull(int i) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

Result<bool> Stmt::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return core::Fail(SqliteError(conn_->db(), rc, sqlite3_sql(stmt_)));
}

Status Stmt::Run() {
  for (;;) {
    auto r = Step();
    if (!r) return core::Fail(r.error());
    if (!*r) return {};
  }
}

bool Stmt::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
std::int64_t Stmt::Int(int col) const { return sqlite3_column_int64(stmt_, col); }
double Stmt::Double(int col) const { return sqlite3_column_double(stmt_, col); }
std::string Stmt::Text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)));
}
std::optional<std::int64_t> Stmt::OptInt(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Int(col);
}
std::optional<double> Stmt::OptDouble(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Double(col);
}
std::optional<std::string> Stmt::OptText(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Text(col);
}

// --- Connection ---

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& path, bool create,
                                                     bool gather_wal) {
  sqlite3* db = nullptr;
  // NOMUTEX: each connection is used by one thread at a time (see the class comment).
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, gather_wal ? GatheringWalVfs() : nullptr);
  if (rc != SQLITE_OK) {
    core::Error e = SqliteError(db, rc, "open " + path);
    sqlite3_close_v2(db);
    return core::Fail(std::move(e));
  }
  sqlite3_extended_result_codes(db, 1);
  return std::unique_ptr<Connection>(new Connection(db));
}

Connection::~Connection() {
  for (auto& [sql, c] : cache_) sqlite3_finalize(c.stmt);
  sqlite3_close_v2(db_);
}

Result<Stmt> Connection::Prepare(std::string_view sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end() && !it->second.in_use) {
    it->second.in_use = true;
    return Stmt(this, it->second.stmt, &it->second.in_use, false);
  }
  sqlite3_stmt* stmt = nullptr;
  bool cache = it == cache_.end();
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              cache ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, nullptr);
  if (rc != SQLITE_OK) return core::Fail(SqliteError(db_, rc, "prepare"));
  if (!cache) return Stmt(this, stmt, nullptr, true);
  auto [pos, inserted] = cache_.emplace(std::string(sql), Cached{stmt, true});
  return Stmt(this, stmt, &pos->second.in_use, false);
}

Status Connection::Exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string message = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    if ((rc & 0xff) == SQLITE_BUSY) {
      core::Error e = core::Error::Unavailable("sqlite: " + message);
      e.code = "store_busy";
      return core::Fail(std::move(e));
    }
    return core::Fail(core::Error::Internal("sqlite: " + message));
  }
  return {};
}

}  // namespace outbound::store::sqlite
