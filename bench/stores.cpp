#include "stores.h"

#include <sqlite3.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "common.h"
#include "harness.h"
#include "scenario.h"

namespace bench {

bool OpenStores(Harness& h, StoreServers* out) {
  bool want_pg = false;
  for (const std::string& s : h.opt.stores) want_pg = want_pg || s != "sqlite";
  if (!want_pg) return true;
  std::string err;
  out->pg.emplace();
  if (!OpenPgServer(h, &*out->pg, &err)) {
    std::fprintf(stderr, "e2e_bench: %s\n", err.c_str());
    return false;
  }
  return true;
}

std::vector<StoreChoice> StoreList(const Harness& h, const StoreServers& servers) {
  std::vector<StoreChoice> out;
  for (const std::string& s : h.opt.stores)
    out.push_back({s != "sqlite" && servers.pg ? &*servers.pg : nullptr, s == "pg3"});
  return out;
}

RunStore::RunStore(const PgServer* server, const std::string& tag, bool keep) : server_(server) {
  if (server_)
    database_ = std::make_unique<PgDatabase>(
        *server_, "outbound_bench_" + std::to_string(getpid()) + "_" + tag, keep);
}

void RunStore::Apply(ServerSpec* spec) const {
  if (!pg()) return;
  spec->db = database_->dsn();
  spec->secrets_key = kBenchSecretsKey;
}

SizeProbe RunStore::Probe() const {
  if (!pg()) {
    const std::string db = dir_ + "/outbound.db";
    return [db] { return StoreSizes{FileBytes(db), FileBytes(db + "-wal")}; };
  }
  // Connected on first use, by the thread that uses it.
  auto conn = std::make_shared<std::unique_ptr<PgAdmin>>();
  return [conn, dsn = database_->dsn()] {
    if (!*conn || !(*conn)->ok()) *conn = std::make_unique<PgAdmin>(dsn);
    return StoreSizes{PgTablesBytes(**conn), PgWalDirBytes(**conn)};
  };
}

uint64_t RunStore::WalPosition() const {
  if (!pg()) return 0;
  PgAdmin conn(database_->dsn());
  return PgWalLsn(conn);
}

double RunStore::Vacuum(double timeout_s, std::string* err) const {
  if (!pg()) return 0;
  PgAdmin conn(database_->dsn());
  const int64_t t0 = NowNs();
  if (!conn.ok() ||
      !conn.Exec("SET statement_timeout = '" + std::to_string(static_cast<int>(timeout_s)) + "s'",
                 err) ||
      !conn.Exec("VACUUM (ANALYZE)", err)) {
    if (err->empty()) *err = conn.error();
    return NAN;
  }
  return Secs(NowNs() - t0);
}

int64_t RunStore::CountDead() const {
  // `status <> 'succeeded'`: deliveries_subscription's predicate, so that SQLite counts from
  // that index instead of scanning the table (src/store/sql/txn_util.h).
  static const char* const kSql =
      "SELECT count(*) FROM deliveries WHERE status = 'dead' AND status <> 'succeeded'";
  if (pg()) {
    PgAdmin conn(database_->dsn());
    const double n = conn.Number(kSql);
    return std::isnan(n) ? -1 : static_cast<int64_t>(n);
  }
  sqlite3* db = nullptr;
  int64_t n = -1;
  if (sqlite3_open_v2((dir_ + "/outbound.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) ==
      SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, kSql, -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      n = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return n;
}

double RunStore::ServerCpu() const { return pg() ? server_->Cpu() : 0.0; }

std::string RunStore::WalSettings() const {
  if (!pg()) return "";
  return "max_wal_size " + server_->max_wal_size + ", min_wal_size " + server_->min_wal_size +
         ", checkpoint_timeout " + server_->checkpoint_timeout;
}

}  // namespace bench
