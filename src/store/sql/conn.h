// Internal to store/: the one SQL surface that both backends speak, so that the Txn (sql_txn.h)
// is written once. A backend implements Conn and StmtImpl over its driver (sqlite3, libpq);
// everything above this header is backend-neutral SQL with `?N` placeholders (rewritten to `$N`
// for PostgreSQL) and integer, real and text values only.
//
// Thread-safety: a Conn (and its statements) is used by one thread at a time; the backend's
// store (writer thread, reader pool) guarantees it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace outbound::store::sql {

using core::Result;
using core::Status;

enum class Dialect { kSqlite, kPostgres };

// The type of a bound NULL: PostgreSQL infers a parameter's type from its use and cannot infer
// one from `CASE ... ELSE $3 END` alone.
enum class NullType { kInt, kReal, kText };

class StmtImpl {
 public:
  virtual ~StmtImpl() = default;
  virtual void BindInt(int i, std::int64_t v) = 0;
  virtual void BindReal(int i, double v) = 0;
  // The bytes must stay alive until the statement has run (every caller binds locals).
  virtual void BindText(int i, std::string_view v) = 0;
  virtual void BindNull(int i, NullType type) = 0;
  // true: a row is available; false: done.
  virtual Result<bool> Step() = 0;
  virtual bool IsNull(int col) const = 0;
  virtual std::int64_t Int(int col) const = 0;
  virtual double Double(int col) const = 0;
  virtual std::string Text(int col) const = 0;
  // Stmt::RunLater. By default the statement runs now, to its end.
  virtual Status RunLater() {
    for (;;) {
      auto r = Step();
      if (!r) return core::Fail(r.error());
      if (!*r) return {};
    }
  }
};

// A prepared statement. Binding indexes are 1-based, column indexes 0-based.
class Stmt {
 public:
  explicit Stmt(std::unique_ptr<StmtImpl> impl) : impl_(std::move(impl)) {}

  Stmt& Bind(int i, std::int64_t v) {
    impl_->BindInt(i, v);
    return *this;
  }
  Stmt& Bind(int i, int v) { return Bind(i, static_cast<std::int64_t>(v)); }
  Stmt& Bind(int i, bool v) { return Bind(i, static_cast<std::int64_t>(v ? 1 : 0)); }
  Stmt& Bind(int i, double v) {
    impl_->BindReal(i, v);
    return *this;
  }
  Stmt& Bind(int i, std::string_view v) {
    impl_->BindText(i, v);
    return *this;
  }
  Stmt& Bind(int i, const std::string& v) { return Bind(i, std::string_view(v)); }
  Stmt& Bind(int i, const char* v) { return Bind(i, std::string_view(v)); }
  Stmt& BindNull(int i, NullType type) {
    impl_->BindNull(i, type);
    return *this;
  }
  template <class T>
  Stmt& Bind(int i, const std::optional<T>& v) {
    if (v) return Bind(i, *v);
    if constexpr (std::is_same_v<T, double>) return BindNull(i, NullType::kReal);
    if constexpr (std::is_integral_v<T>) return BindNull(i, NullType::kInt);
    return BindNull(i, NullType::kText);
  }

  Result<bool> Step() { return impl_->Step(); }
  // Steps to the end (for statements without rows).
  Status Run() {
    for (;;) {
      auto r = Step();
      if (!r) return core::Fail(r.error());
      if (!*r) return {};
    }
  }

  // Runs the statement, for a statement whose rows and Changes() nobody reads: SQLite runs it
  // now; PostgreSQL sends it with the connection's next round trip (pipeline mode), so its
  // error, if any, is that of the next statement run on the connection or of its Flush (the
  // store flushes at the end of each write task, so a failure stays the task's own).
  Status RunLater() { return impl_->RunLater(); }

  bool IsNull(int col) const { return impl_->IsNull(col); }
  std::int64_t Int(int col) const { return impl_->Int(col); }
  double Double(int col) const { return impl_->Double(col); }
  std::string Text(int col) const { return impl_->Text(col); }
  std::optional<std::int64_t> OptInt(int col) const {
    if (IsNull(col)) return std::nullopt;
    return Int(col);
  }
  std::optional<double> OptDouble(int col) const {
    if (IsNull(col)) return std::nullopt;
    return Double(col);
  }
  std::optional<std::string> OptText(int col) const {
    if (IsNull(col)) return std::nullopt;
    return Text(col);
  }

 private:
  std::unique_ptr<StmtImpl> impl_;
};

class Conn {
 public:
  virtual ~Conn() = default;
  virtual Dialect dialect() const = 0;
  // A statement for `sql` (backends cache the prepared form per text).
  virtual Result<Stmt> Prepare(std::string_view sql) = 0;
  // Runs one or more statements without parameters or results.
  virtual Status Exec(const char* sql) = 0;
  // Rows changed by the last INSERT, UPDATE or DELETE run to its end on this connection.
  virtual std::int64_t Changes() const = 0;
  // SQLite: the row id of the last row that a successful INSERT on this connection added to a
  // rowid table (sqlite3_last_insert_rowid), for a one-row INSERT without RETURNING. PostgreSQL
  // has none: its statements return their ids.
  virtual std::optional<std::int64_t> LastInsertRowid() const { return std::nullopt; }
};

}  // namespace outbound::store::sql
