// PostgreSQL for the bench (--scaleout, and --stores pg of --history, --backlog, --wal): the
// throwaway cluster of scripts/pg-test-cluster.sh (or an existing server, --pg-dsn), the bench's
// own libpq connection, a fresh database per run, and what the server costs and holds (its CPU
// from /proc, table and WAL sizes).
#pragma once

#include <libpq-fe.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace bench {

struct Harness;

// Base64 of the 32 bytes "bench-secrets-key-0123456789abcd": every process of one database needs
// the same --secrets-key; a throwaway value is fine for a throwaway database.
inline constexpr const char* kBenchSecretsKey = "YmVuY2gtc2VjcmV0cy1rZXktMDEyMzQ1Njc4OWFiY2Q=";

// Runs args (args[0] a path) with stdout and stderr appended to `log_path`; waits at most
// `timeout_s`, then kills it. The exit status, or -1.
int RunCommand(const std::vector<std::string>& args, const std::string& log_path, double timeout_s);

// Starts the cluster in <parent>/cluster with the script; its URL in *dsn. StopCluster
// (harness.h) stops it, once, from whichever path ends the program.
bool StartCluster(const std::string& script, const std::string& parent, std::string* dsn,
                  std::string* err);

// A libpq connection for the bench's own few statements (create and drop databases, sizes).
class PgAdmin {
 public:
  explicit PgAdmin(const std::string& dsn);
  ~PgAdmin();
  PgAdmin(const PgAdmin&) = delete;
  PgAdmin& operator=(const PgAdmin&) = delete;

  bool ok() const { return conn_ && PQstatus(conn_) == CONNECTION_OK; }
  std::string error() const { return conn_ ? PQerrorMessage(conn_) : "out of memory"; }
  // One statement; the first column of the first row in *value when asked.
  bool Exec(const std::string& sql, std::string* err, std::string* value = nullptr);
  // The first column of the first row of `sql` as a number; NAN on failure.
  double Number(const std::string& sql);

 private:
  PGconn* conn_ = nullptr;
};

// The same postgres:// URL naming another database ("" when it is not a URL).
std::string DsnWithDatabase(const std::string& dsn, const std::string& db);

// The postmaster's pid when the server runs on this machine (the parent of our backend), or -1.
pid_t PostmasterPid(PgAdmin& admin, std::string* why);

// The server every PostgreSQL run of one bench uses: a throwaway cluster started by the bench
// (stopped on every path by StopCluster) or --pg-dsn; its settings as `SHOW` prints them.
struct PgServer {
  std::string admin_dsn, where;
  pid_t postmaster = -1;
  std::string no_cpu_why;  // why the server's CPU cannot be read (postmaster < 0)
  std::string version = "?", fsync = "?", synchronous_commit = "?", max_wal_size = "?",
              min_wal_size = "?", checkpoint_timeout = "?", wal_segment_size = "?";
  // CPU seconds of the postmaster and its children (exited ones included); NAN when not local.
  double Cpu() const;
  // "PostgreSQL 15.x (where), fsync on, synchronous_commit on, max_wal_size 1GB, ..."
  std::string Text() const;
};

// Starts the cluster (or connects to --pg-dsn) and reads its settings; prints what it does.
// False with *err set when there is no server to use.
bool OpenPgServer(Harness& h, PgServer* out, std::string* err);

// Stops the throwaway cluster (StopCluster, harness.h), if one runs, when it goes out of scope.
struct ClusterStopper {
  ClusterStopper() = default;
  ~ClusterStopper();
  ClusterStopper(const ClusterStopper&) = delete;
  ClusterStopper& operator=(const ClusterStopper&) = delete;
};

// A new database on the server for one run, dropped (WITH (FORCE)) when this goes out of scope
// unless `keep` (--keep-logs with --pg-dsn: its name is printed instead, for a look at its tables
// afterwards; a throwaway cluster is deleted whole at the end of the run).
class PgDatabase {
 public:
  PgDatabase(const PgServer& server, const std::string& name, bool keep = false);
  ~PgDatabase();
  PgDatabase(const PgDatabase&) = delete;
  PgDatabase& operator=(const PgDatabase&) = delete;
  bool ok() const { return !dsn_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& dsn() const { return dsn_; }

 private:
  std::string admin_dsn_, name_, dsn_, error_;
  bool keep_ = false;
};

// Sizes read through a connection to one database: every table of the schema with its indexes
// and TOAST (pg_total_relation_size), the files of pg_wal (pg_ls_waldir(), the whole cluster),
// and the WAL position (pg_current_wal_lsn() in bytes, to tell the WAL generated between two
// readings). 0 when a query fails.
uint64_t PgTablesBytes(PgAdmin& db);
uint64_t PgWalDirBytes(PgAdmin& db);
uint64_t PgWalLsn(PgAdmin& db);

}  // namespace bench
