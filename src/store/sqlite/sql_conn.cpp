#include "store/sqlite/sql_conn.h"

#include <memory>
#include <utility>

namespace outbound::store::sqlite {
namespace {

class Impl final : public sql::StmtImpl {
 public:
  explicit Impl(Stmt stmt) : s_(std::move(stmt)) {}
  void BindInt(int i, std::int64_t v) override { s_.Bind(i, v); }
  void BindReal(int i, double v) override { s_.Bind(i, v); }
  void BindText(int i, std::string_view v) override { s_.Bind(i, v); }
  void BindNull(int i, sql::NullType) override { s_.BindNull(i); }
  Result<bool> Step() override { return s_.Step(); }
  bool IsNull(int col) const override { return s_.IsNull(col); }
  std::int64_t Int(int col) const override { return s_.Int(col); }
  double Double(int col) const override { return s_.Double(col); }
  std::string Text(int col) const override { return s_.Text(col); }

 private:
  Stmt s_;
};

}  // namespace

Result<sql::Stmt> SqlConn::Prepare(std::string_view sql) {
  auto stmt = conn_.Prepare(sql);
  if (!stmt) return core::Fail(std::move(stmt.error()));
  return sql::Stmt(std::make_unique<Impl>(std::move(*stmt)));
}

}  // namespace outbound::store::sqlite
