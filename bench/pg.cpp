#include "pg.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "common.h"
#include "harness.h"
#include "server.h"

namespace bench {

// Runs args (args[0] a path) with stdout and stderr appended to `log_path`; waits at most
// `timeout_s`, then kills it. The exit status, or -1.
int RunCommand(const std::vector<std::string>& args, const std::string& log_path,
               double timeout_s) {
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  argv.reserve(copy.size() + 1);
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  int logfd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  pid_t pid = fork();
  if (pid < 0) {
    if (logfd >= 0) close(logfd);
    return -1;
  }
  if (pid == 0) {
    UnblockSignalsInChild();
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    if (logfd >= 0) {
      dup2(logfd, 1);
      dup2(logfd, 2);
    }
    close_range(3, ~0U, 0);
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (logfd >= 0) close(logfd);
  int64_t deadline = NowNs() + static_cast<int64_t>(timeout_s * 1e9);
  int st = 0;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return -1;
    if (NowNs() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    SleepMs(20);
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The throwaway cluster, reachable from the paths that end the program early (the watchdog,
// SIGINT/SIGTERM/SIGHUP): whoever stops it first runs `pg-test-cluster.sh stop`, once.
std::string g_cluster_script, g_cluster_dir, g_cluster_log;
std::atomic<bool> g_cluster_up{false};

void StopCluster() {
  if (!g_cluster_up.exchange(false)) return;
  int rc = RunCommand({"/bin/bash", g_cluster_script, "stop", g_cluster_dir}, g_cluster_log, 90);
  if (rc != 0)
    std::fprintf(stderr, "e2e_bench: '%s stop %s' failed (status %d); see %s\n",
                 g_cluster_script.c_str(), g_cluster_dir.c_str(), rc, g_cluster_log.c_str());
}

// Starts the cluster in <parent>/cluster with the script; its URL in *dsn.
bool StartCluster(const std::string& script, const std::string& parent, std::string* dsn,
                  std::string* err) {
  if (access(script.c_str(), R_OK) != 0) {
    *err = "no " + script + " (--pg-script PATH, or --pg-dsn URL for an existing server)";
    return false;
  }
  g_cluster_script = script;
  g_cluster_dir = parent + "/cluster";
  g_cluster_log = parent + "/cluster.log";
  g_cluster_up =
      true;  // from here on, stop it whatever happens (stop also cleans up a failed start)
  int rc = RunCommand({"/bin/bash", script, "start", g_cluster_dir}, g_cluster_log, 180);
  std::ifstream f(g_cluster_dir + "/dsn");
  std::getline(f, *dsn);
  if (rc != 0 || dsn->empty()) {
    std::ifstream l(g_cluster_log);
    std::string log((std::istreambuf_iterator<char>(l)), std::istreambuf_iterator<char>());
    *err = "'" + script + " start' failed (status " + std::to_string(rc) + "):\n" + log;
    StopCluster();
    return false;
  }
  return true;
}

PgAdmin::PgAdmin(const std::string& dsn) {
  const char* keys[] = {"dbname", "connect_timeout", nullptr};
  const char* values[] = {dsn.c_str(), "10", nullptr};
  conn_ = PQconnectdbParams(keys, values, 1);
  if (ok()) (void)Exec("SET statement_timeout = '60s'", nullptr);
}

PgAdmin::~PgAdmin() {
  if (conn_) PQfinish(conn_);
}

bool PgAdmin::Exec(const std::string& sql, std::string* err, std::string* value) {
  PGresult* r = PQexec(conn_, sql.c_str());
  ExecStatusType st = PQresultStatus(r);
  bool good = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!good && err) *err = sql + ": " + error();
  if (good && value && PQntuples(r) > 0) *value = PQgetvalue(r, 0, 0);
  PQclear(r);
  return good;
}

double PgAdmin::Number(const std::string& sql) {
  std::string v;
  if (!ok() || !Exec(sql, nullptr, &v) || v.empty()) return NAN;
  return std::strtod(v.c_str(), nullptr);
}

// The same postgres:// URL naming another database ("" when it is not a URL).
std::string DsnWithDatabase(const std::string& dsn, const std::string& db) {
  size_t scheme = dsn.find("://");
  if (scheme == std::string::npos ||
      (dsn.rfind("postgres://", 0) != 0 && dsn.rfind("postgresql://", 0) != 0))
    return "";
  size_t p = dsn.find_first_of("/?", scheme + 3);
  if (p == std::string::npos) return dsn + "/" + db;
  if (dsn[p] == '?') return dsn.substr(0, p) + "/" + db + dsn.substr(p);
  size_t q = dsn.find('?', p);
  return dsn.substr(0, p + 1) + db + (q == std::string::npos ? "" : dsn.substr(q));
}

// The postmaster's pid when the server runs on this machine (the parent of our backend), or -1.
pid_t PostmasterPid(PgAdmin& admin, std::string* why) {
  std::string v, err;
  if (!admin.Exec("SELECT pg_backend_pid()", &err, &v)) {
    *why = err;
    return -1;
  }
  pid_t backend = std::atoi(v.c_str());
  ProcStat b = ReadProcStat(backend);
  if (!b.ok || ProcComm(backend) != "postgres") {
    *why = "backend " + v + " is not a local process: the server is on another machine";
    return -1;
  }
  std::string comm = ProcComm(b.ppid);
  if (comm != "postgres" && comm != "postmaster") {
    *why = "the parent of backend " + v + " is '" + comm + "', not a postmaster";
    return -1;
  }
  return b.ppid;
}

ClusterStopper::~ClusterStopper() { StopCluster(); }

double PgServer::Cpu() const { return postmaster > 0 ? TreeCpuSeconds(postmaster) : NAN; }

std::string PgServer::Text() const {
  return "PostgreSQL " + version + " (" + where + "), fsync " + fsync + ", synchronous_commit " +
         synchronous_commit + ", max_wal_size " + max_wal_size + ", min_wal_size " + min_wal_size +
         ", checkpoint_timeout " + checkpoint_timeout + ", wal_segment_size " + wal_segment_size +
         "; server CPU from /proc: " +
         (postmaster > 0 ? "postmaster " + std::to_string(postmaster) + " and its children"
                         : "n/a (" + no_cpu_why + ")");
}

bool OpenPgServer(Harness& h, PgServer* out, std::string* err) {
  const Options& opt = h.opt;
  out->admin_dsn = opt.pg_dsn;
  out->where = "the server of --pg-dsn";
  if (out->admin_dsn.empty()) {
    std::string parent = MakeTempDir(opt.tmp, "pg");
    if (parent.empty()) {
      *err = "mkdtemp in " + opt.tmp + ": " + std::strerror(errno);
      return false;
    }
    h.dirs.push_back(parent);
    std::printf("starting a throwaway PostgreSQL cluster (%s start %s/cluster)...\n",
                opt.pg_script.c_str(), parent.c_str());
    std::fflush(stdout);
    if (!StartCluster(opt.pg_script, parent, &out->admin_dsn, err)) return false;
    out->where = "a throwaway cluster of scripts/pg-test-cluster.sh";
  }
  PgAdmin admin(out->admin_dsn);
  if (!admin.ok()) {
    *err = "cannot connect to PostgreSQL: " + admin.error();
    return false;
  }
  if (!opt.pg_max_wal_size.empty()) {
    if (!opt.pg_dsn.empty()) {
      std::printf(
          "--pg-max-wal-size ignored: the server of --pg-dsn is not the bench's to configure\n");
    } else if (!admin.Exec("ALTER SYSTEM SET max_wal_size = '" + opt.pg_max_wal_size + "'", err) ||
               !admin.Exec("ALTER SYSTEM SET min_wal_size = '32MB'", err) ||
               !admin.Exec("SELECT pg_reload_conf()", err)) {
      return false;
    } else {
      // The reload is asynchronous: wait (bounded) until a new session sees it.
      std::string v;
      for (int i = 0; i < 50 && v != "32MB"; ++i) {
        SleepMs(100);
        PgAdmin probe(out->admin_dsn);
        probe.Exec("SHOW min_wal_size", nullptr, &v);
      }
    }
  }
  out->postmaster = PostmasterPid(admin, &out->no_cpu_why);
  PgAdmin settings(out->admin_dsn);  // a new session: sees what a reload above changed
  settings.Exec("SHOW server_version", nullptr, &out->version);
  settings.Exec("SHOW fsync", nullptr, &out->fsync);
  settings.Exec("SHOW synchronous_commit", nullptr, &out->synchronous_commit);
  settings.Exec("SHOW max_wal_size", nullptr, &out->max_wal_size);
  settings.Exec("SHOW min_wal_size", nullptr, &out->min_wal_size);
  settings.Exec("SHOW checkpoint_timeout", nullptr, &out->checkpoint_timeout);
  settings.Exec("SHOW wal_segment_size", nullptr, &out->wal_segment_size);
  std::printf("%s\n", out->Text().c_str());
  std::fflush(stdout);
  return true;
}

PgDatabase::PgDatabase(const PgServer& server, const std::string& name, bool keep)
    : admin_dsn_(server.admin_dsn), name_(name), keep_(keep) {
  std::string dsn = DsnWithDatabase(admin_dsn_, name_), err;
  if (dsn.empty()) {
    error_ = "--pg-dsn is not a postgres:// URL";
    return;
  }
  PgAdmin admin(admin_dsn_);
  if (!admin.ok() || !admin.Exec("CREATE DATABASE " + name_, &err)) {
    error_ = "cannot create database " + name_ + ": " + err + admin.error();
    return;
  }
  dsn_ = dsn;
}

PgDatabase::~PgDatabase() {
  if (dsn_.empty()) return;
  if (keep_) {
    std::printf("kept: PostgreSQL database %s\n", name_.c_str());
    return;
  }
  PgAdmin admin(admin_dsn_);
  std::string e;
  if (!admin.ok() || !admin.Exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)", &e))
    std::fprintf(stderr, "e2e_bench: could not drop database %s: %s%s\n", name_.c_str(), e.c_str(),
                 admin.ok() ? "" : admin.error().c_str());
}

namespace {
uint64_t Bytes(double v) { return std::isnan(v) || v < 0 ? 0 : static_cast<uint64_t>(v); }
}  // namespace

uint64_t PgTablesBytes(PgAdmin& db) {
  return Bytes(db.Number(
      "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n "
      "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN "
      "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"));
}

uint64_t PgWalDirBytes(PgAdmin& db) {
  return Bytes(db.Number("SELECT coalesce(sum(size), 0) FROM pg_ls_waldir()"));
}

uint64_t PgWalLsn(PgAdmin& db) {
  return Bytes(db.Number("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"));
}

}  // namespace bench
