// The store a run of --history, --backlog, --wal, --batch, --latency-floor or --isolation is on
// (--stores sqlite,pg): SQLite (a new file in the run's directory) or PostgreSQL (a new database
// on the server of pg.h), and how big it is on disk, read the same way during and after the run.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pg.h"
#include "server.h"

namespace bench {

struct Harness;

// Bytes on disk: SQLite: the database file and its -wal file; PostgreSQL: the database's tables
// with their indexes and TOAST (pg_total_relation_size), and the files of pg_wal (the cluster's,
// pg_ls_waldir()).
struct StoreSizes {
  uint64_t data = 0, wal = 0;
};
using SizeProbe = std::function<StoreSizes()>;

// The server every PostgreSQL run of one bench shares, started only when --stores names pg; the
// cluster stops when this goes out of scope (and on every other path: StopCluster).
struct StoreServers {
  ClusterStopper stopper;
  std::optional<PgServer> pg;
};
// Starts what opt.stores needs; false (printed) when PostgreSQL is asked for and cannot be had.
bool OpenStores(Harness& h, StoreServers* out);

// One run's store: for PostgreSQL a new database (dropped when this goes out of scope: declare it
// before the Server that uses it).
class RunStore {
 public:
  // `server` null: SQLite. `tag` names the database (outbound_bench_<pid>_<tag>).
  RunStore(const PgServer* server, const std::string& tag, bool keep = false);
  bool ok() const { return !pg() || (database_ && database_->ok()); }
  std::string error() const { return database_ ? database_->error() : ""; }
  bool pg() const { return server_ != nullptr; }
  const char* Name() const { return pg() ? "PostgreSQL" : "SQLite"; }
  // "db" and "WAL" for SQLite, "tables" and "pg_wal" for PostgreSQL.
  const char* DataName() const { return pg() ? "tables" : "db"; }
  const char* WalName() const { return pg() ? "pg_wal" : "WAL"; }
  // Points the spec at this store (PostgreSQL: its DSN and the bench's secrets key; SQLite: the
  // default file in the directory Harness::Fresh makes).
  void Apply(ServerSpec* spec) const;
  // The run's directory (after Harness::Fresh: h.dirs.back()); SQLite's file is in it.
  void SetDir(const std::string& dir) { dir_ = dir; }
  // The sizes now (a new connection each call for PostgreSQL).
  StoreSizes Sizes() const { return Probe()(); }
  // A probe for Sampler: it owns its connection (PostgreSQL), used from one thread at a time.
  SizeProbe Probe() const;
  // PostgreSQL: the WAL position in bytes (pg_current_wal_lsn), to tell the WAL generated
  // between two readings; SQLite: 0.
  uint64_t WalPosition() const;
  // CPU seconds of the PostgreSQL server so far (postmaster and children); SQLite: 0 (the store
  // runs inside Outbound's process); NAN when the server is not on this machine.
  double ServerCpu() const;
  // Deliveries whose status is `dead`, read from the database itself (another connection;
  // SQLite read-only); -1 when it cannot be read.
  int64_t CountDead() const;
  // PostgreSQL's max_wal_size and min_wal_size as the server reports them ("" for SQLite).
  std::string WalSettings() const;
  // PostgreSQL: VACUUM (ANALYZE) of the whole database, what autovacuum would do after a big
  // insert, bounded by `timeout_s`; its seconds, NAN (with *err) when it failed. SQLite: 0.
  double Vacuum(double timeout_s, std::string* err) const;

 private:
  const PgServer* server_;
  std::unique_ptr<PgDatabase> database_;
  std::string dir_;
};

// The stores of opt.stores, in order: nullptr for SQLite, the server for PostgreSQL; with
// `scaled` (pg3), which runs one `api` and two `worker` processes on it.
struct StoreChoice {
  const PgServer* pg = nullptr;
  bool scaled = false;
};
std::vector<StoreChoice> StoreList(const Harness& h, const StoreServers& servers);

}  // namespace bench
