// Internal to store/postgres: one libpq connection seen through sql::Conn. Statements are
// prepared once per text and parameter types (PQprepare) and run with PQexecPrepared in text
// format; `?N` placeholders become `$N`.
//
// Errors: kUnavailable "store_unavailable" when the connection is lost (Broken() then says so and
// the owner reconnects); kAborted "store_deadlock" when the transaction was a deadlock (or
// serialization) victim, "store_conflict" when a concurrent insert of the same key won (the store
// runs the transaction, or the task, again); kInternal otherwise.
// Thread-safety: used by one thread at a time.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/sql/conn.h"

namespace outbound::store::postgres {

using core::Result;
using core::Status;

// store::PostgresUrlProblem (pg_store.h): what libpq finds wrong with a connection URI, never
// quoting it.
std::optional<std::string> UrlProblem(const std::string& dsn);

// The error for a failed result (or a failed connection when res is null).
core::Error PgError(PGconn* conn, const PGresult* res, std::string_view what);

class PgConn final : public sql::Conn {
 public:
  static Result<std::unique_ptr<PgConn>> Open(const std::string& dsn);
  ~PgConn() override;
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  sql::Dialect dialect() const override { return sql::Dialect::kPostgres; }
  Result<sql::Stmt> Prepare(std::string_view sql) override;
  Status Exec(const char* sql) override;
  std::int64_t Changes() const override { return changes_; }

  // The connection was lost: reconnect before the next use.
  bool Broken() const { return broken_ || PQstatus(conn_) != CONNECTION_OK; }
  // Runs a prepared statement (for the statement objects), with the deferred ones before it in
  // the same round trip; the first error of those is its error.
  Result<PGresult*> Run(const std::string& sql, const std::string& types_key,
                        const std::vector<unsigned>& types, const std::vector<const char*>& values,
                        const std::vector<int>& lengths);
  // Sends a prepared statement to run with the next round trip (Stmt::RunLater): the
  // connection enters pipeline mode until then. At most kMaxDeferred wait; more flush.
  Status Defer(const std::string& sql, const std::string& types_key,
               const std::vector<unsigned>& types, const std::vector<const char*>& values,
               const std::vector<int>& lengths);
  // Runs what was deferred (one round trip when anything was): the first error of it, or ok.
  // Exec flushes first too; a flush that failed fails the Exec, unless that Exec rolls back.
  Status Flush();
  static constexpr int kMaxDeferred = 16;
  void SetChanges(std::int64_t n) { changes_ = n; }
  PGconn* raw() const { return conn_; }

 private:
  explicit PgConn(PGconn* conn) : conn_(conn) {}

  // The prepared statement's name for `types_key`, prepared now if need be (outside pipeline
  // mode: what was deferred is flushed first).
  Result<std::string> PreparedName(const std::string& sql, const std::string& types_key,
                                   const std::vector<unsigned>& types);
  // Sends the sync and reads every result of the pipeline: the results of the `pending_`
  // deferred statements (the first error kept), then, when `mine` is set, that of the
  // statement sent last (handed to *mine); leaves pipeline mode.
  Status EndPipeline(PGresult** mine);

  PGconn* conn_;
  std::int64_t changes_ = 0;
  int pending_ = 0;                       // statements deferred, their results not read yet
  std::vector<std::string> pending_sql_;  // their texts, for their errors
  bool broken_ = false;                   // a pipeline could not be ended: the owner reconnects
  // (sql text + parameter types) → prepared statement name.
  std::unordered_map<std::string, std::string> prepared_;
};

// `?N` → `$N` (the shared SQL never has a `?` inside a string literal).
std::string ToDollarParams(std::string_view sql);

// Test hook: while recording is on, every statement that any PgConn of the process runs through
// Run() is kept, once per text and parameter types, with the values of its latest run, so that a
// test can EXPLAIN the statements of a hot path (pg_store_test.cpp). Off by default; off, it
// costs one relaxed atomic load per statement.
struct RecordedStatement {
  std::string sql;                                 // as prepared: `$N` placeholders
  std::vector<unsigned> types;                     // parameter type OIDs (0: inferred)
  std::vector<std::optional<std::string>> values;  // text format; nullopt: NULL
};
// Switching on forgets what an earlier recording kept.
void RecordStatements(bool on);
// What was recorded, in the order of each statement's first run.
std::vector<RecordedStatement> RecordedStatements();

}  // namespace outbound::store::postgres
