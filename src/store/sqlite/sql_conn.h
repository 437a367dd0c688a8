// Internal to store/sqlite: a Connection seen through sql::Conn, for the shared Txn.
#pragma once

#include "store/sql/conn.h"
#include "store/sqlite/connection.h"

namespace outbound::store::sqlite {

class SqlConn final : public sql::Conn {
 public:
  explicit SqlConn(Connection& conn) : conn_(conn) {}
  sql::Dialect dialect() const override { return sql::Dialect::kSqlite; }
  Result<sql::Stmt> Prepare(std::string_view sql) override;
  Status Exec(const char* sql) override { return conn_.Exec(sql); }
  std::int64_t Changes() const override { return conn_.Changes(); }
  std::optional<std::int64_t> LastInsertRowid() const override { return conn_.LastInsertRowid(); }

 private:
  Connection& conn_;
};

}  // namespace outbound::store::sqlite
