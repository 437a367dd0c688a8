#include "store/postgres/pg_conn.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "store/counters.h"

namespace outbound::store::postgres {
namespace {

// PostgreSQL type OIDs (pg_type.h; stable across versions).
constexpr unsigned kInt8Oid = 20;
constexpr unsigned kTextOid = 25;
constexpr unsigned kFloat8Oid = 701;

// The transaction lost to another: it must be rolled back whole and run again.
bool Victim(std::string_view state) {
  return state == "40001" ||  // serialization_failure
         state == "40P01";    // deadlock_detected
}

// A concurrent insert of the same key won: the statement may be run again (it waited for the
// other transaction and now sees its row).
bool LostRace(std::string_view state) { return state == "23505"; }  // unique_violation

bool ConnectionLost(std::string_view state) {
  return state.substr(0, 2) == "08" ||                              // connection exceptions
         state == "57P01" || state == "57P02" || state == "57P03";  // shutdown, cannot connect
}

// The test hook (pg_conn.h): statements run while recording is on.
std::atomic<bool> g_recording{false};

struct Recorder {
  std::mutex mu;
  std::vector<RecordedStatement> statements;
  std::unordered_map<std::string, std::size_t> index;  // types key (Run) → statements[i]
};

Recorder& TheRecorder() {
  static Recorder recorder;
  return recorder;
}

void Record(const std::string& sql, const std::string& types_key,
            const std::vector<unsigned>& types, const std::vector<const char*>& values,
            const std::vector<int>& lengths) {
  Recorder& r = TheRecorder();
  std::lock_guard<std::mutex> lock(r.mu);
  auto [it, added] = r.index.emplace(types_key, r.statements.size());
  if (added) r.statements.push_back(RecordedStatement{ToDollarParams(sql), types, {}});
  RecordedStatement& s = r.statements[it->second];
  s.values.clear();
  for (std::size_t k = 0; k < values.size(); ++k) {
    if (values[k] == nullptr) {
      s.values.emplace_back();
    } else {
      s.values.emplace_back(std::string(values[k], static_cast<std::size_t>(lengths[k])));
    }
  }
}

class PgStmt final : public sql::StmtImpl {
 public:
  PgStmt(PgConn& conn, std::string sql) : conn_(conn), sql_(std::move(sql)) {}
  ~PgStmt() override {
    if (res_ != nullptr) PQclear(res_);
  }

  void BindInt(int i, std::int64_t v) override { Set(i, kInt8Oid, std::to_string(v)); }
  void BindReal(int i, double v) override {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    Set(i, kFloat8Oid, buf);
  }
  void BindText(int i, std::string_view v) override {
    // PostgreSQL text cannot hold NUL; a receiver's binary answer may.
    std::string s(v);
    for (std::size_t p = s.find('\0'); p != std::string::npos; p = s.find('\0', p)) {
      s.replace(p, 1, "\xEF\xBF\xBD");
    }
    Set(i, kTextOid, std::move(s));
  }
  void BindNull(int i, sql::NullType type) override {
    Grow(i);
    const std::size_t k = static_cast<std::size_t>(i - 1);
    types_[k] = type == sql::NullType::kInt    ? kInt8Oid
                : type == sql::NullType::kReal ? kFloat8Oid
                                               : kTextOid;
    null_[k] = true;
  }

  Status RunLater() override {
    if (res_ != nullptr || deferred_) {
      return core::Fail(core::Error::Internal("postgres: a statement run twice"));
    }
    deferred_ = true;
    const Params p = Bound();
    return conn_.Defer(sql_, p.key, types_, p.values, p.lengths);
  }

  Result<bool> Step() override {
    if (deferred_) return core::Fail(core::Error::Internal("postgres: a statement run twice"));
    if (res_ == nullptr) {
      const Params p = Bound();
      auto res = conn_.Run(sql_, p.key, types_, p.values, p.lengths);
      if (!res) return core::Fail(std::move(res.error()));
      res_ = *res;
      rows_ = PQntuples(res_);
      const char* tuples = PQcmdTuples(res_);
      std::int64_t changed = 0;
      if (tuples != nullptr && *tuples != '\0') changed = std::strtoll(tuples, nullptr, 10);
      conn_.SetChanges(changed);
      row_ = 0;
      return rows_ > 0;
    }
    ++row_;
    return row_ < rows_;
  }

  bool IsNull(int col) const override { return PQgetisnull(res_, row_, col) != 0; }
  std::int64_t Int(int col) const override {
    const char* v = PQgetvalue(res_, row_, col);
    std::int64_t out = 0;
    std::from_chars(v, v + PQgetlength(res_, row_, col), out);
    return out;
  }
  double Double(int col) const override {
    return std::strtod(PQgetvalue(res_, row_, col), nullptr);
  }
  std::string Text(int col) const override {
    return std::string(PQgetvalue(res_, row_, col),
                       static_cast<std::size_t>(PQgetlength(res_, row_, col)));
  }

 private:
  // The statement's key (text and parameter types) and its values as libpq takes them.
  struct Params {
    std::string key;
    std::vector<const char*> values;
    std::vector<int> lengths;
  };
  Params Bound() const {
    Params p{sql_, std::vector<const char*>(values_.size()), std::vector<int>(values_.size())};
    p.key += '\x1f';
    for (std::size_t k = 0; k < values_.size(); ++k) {
      p.key += std::to_string(types_[k]);
      p.key += ',';
      p.values[k] = null_[k] ? nullptr : values_[k].c_str();
      p.lengths[k] = static_cast<int>(values_[k].size());
    }
    return p;
  }
  void Grow(int i) {
    const std::size_t n = static_cast<std::size_t>(i);
    if (values_.size() < n) {
      values_.resize(n);
      types_.resize(n, 0);
      null_.resize(n, true);  // never bound: NULL, its type inferred by the server
    }
  }
  void Set(int i, unsigned type, std::string value) {
    Grow(i);
    const std::size_t k = static_cast<std::size_t>(i - 1);
    values_[k] = std::move(value);
    types_[k] = type;
    null_[k] = false;
  }

  PgConn& conn_;
  std::string sql_;
  std::vector<std::string> values_;
  std::vector<unsigned> types_;
  std::vector<bool> null_;
  PGresult* res_ = nullptr;
  bool deferred_ = false;  // sent by RunLater: no rows to step through
  int rows_ = 0;
  int row_ = 0;
};

}  // namespace

core::Error PgError(PGconn* conn, const PGresult* res, std::string_view what) {
  const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string_view sqlstate = state != nullptr ? state : "";
  std::string message = "postgres: ";
  message += what;
  message += ": ";
  const char* text = res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(conn);
  message += text != nullptr ? text : "unknown error";
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  if (ConnectionLost(sqlstate) || (conn != nullptr && PQstatus(conn) != CONNECTION_OK)) {
    // The details (host, port, the server's words) go to the log, not to API answers.
    spdlog::warn("store: {}", message);
    core::Error e = core::Error::Unavailable("the database cannot be reached");
    e.code = "store_unavailable";
    return e;
  }
  if (Victim(sqlstate)) {
    return core::Error{core::ErrorKind::kAborted, "store_deadlock", std::move(message), {}, {}};
  }
  if (LostRace(sqlstate)) {
    return core::Error{core::ErrorKind::kAborted, "store_conflict", std::move(message), {}, {}};
  }
  return core::Error::Internal(std::move(message));
}

std::string ToDollarParams(std::string_view sql) {
  std::string out;
  out.reserve(sql.size());
  for (char c : sql) out += c == '?' ? '$' : c;
  return out;
}

void RecordStatements(bool on) {
  Recorder& r = TheRecorder();
  std::lock_guard<std::mutex> lock(r.mu);
  if (on) {
    r.statements.clear();
    r.index.clear();
  }
  g_recording.store(on, std::memory_order_relaxed);
}

std::vector<RecordedStatement> RecordedStatements() {
  Recorder& r = TheRecorder();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.statements;
}

std::optional<std::string> UrlProblem(const std::string& dsn) {
  char* message = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &message);
  if (options != nullptr) {
    PQconninfoFree(options);
    return std::nullopt;
  }
  // libpq's message names what failed and quotes it (a password, possibly): only its kind is
  // told, from its fixed words.
  std::string kind = "libpq cannot parse it";
  if (message != nullptr) {
    const std::string_view m(message);
    if (m.find("percent-encod") != std::string_view::npos) {
      kind = "a %-escape is not two hex digits (write a literal % in a password as %25)";
    } else if (m.find("query parameter") != std::string_view::npos ||
               m.find("invalid connection option") != std::string_view::npos) {
      kind = "it has a query parameter libpq does not know";
    } else if (m.find("out of memory") != std::string_view::npos) {
      kind = "out of memory while parsing it";
    }
    PQfreemem(message);
  }
  return kind;
}

Result<std::unique_ptr<PgConn>> PgConn::Open(const std::string& dsn) {
  // A URI libpq cannot parse is refused before connecting, without libpq's message: it quotes
  // the part that failed, which may be the password (`invalid percent-encoded token: "..."`).
  if (auto problem = UrlProblem(dsn)) {
    spdlog::warn("store: the PostgreSQL URL does not parse: {}", *problem);
    return core::Fail(core::Error{core::ErrorKind::kInvalid,
                                  "invalid_setting",
                                  "the PostgreSQL URL does not parse: " + *problem,
                                  "db",
                                  {}});
  }
  // Defaults that the URL may override (it is expanded after them): a database host that does
  // not answer must not hold a writer thread for ever, and a connection whose server vanished
  // is noticed within about a minute: by keepalives while a query waits for its answer, and by
  // tcp_user_timeout (30 s) while what was sent stays unacknowledged, where keepalives do not
  // run and Linux retransmits for about 15 minutes.
  const char* keys[] = {"connect_timeout",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        "tcp_user_timeout",
                        "application_name",
                        "dbname",
                        nullptr};
  const char* values[] = {"5", "30", "10", "3", "30000", "outbound", dsn.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    std::string why = conn != nullptr ? PQerrorMessage(conn) : "out of memory";
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    spdlog::warn("store: cannot connect to PostgreSQL: {}", why);
    core::Error e = core::Error::Unavailable("the database cannot be reached");
    e.code = "store_unavailable";
    if (conn != nullptr) PQfinish(conn);
    return core::Fail(std::move(e));
  }
  auto out = std::unique_ptr<PgConn>(new PgConn(conn));
  // Notices (e.g. "relation already exists, skipping") are not errors; keep them off stderr.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  // Terse: no DETAIL lines, which may quote a failing row (and a secret in it) into the log.
  PQsetErrorVerbosity(conn, PQERRORS_TERSE);
  // No JIT: the store's statements run in milliseconds, and compiling one whose estimate passes
  // jit_above_cost costs more than running it (the fair claim's custom plans were estimated at
  // 0.4-1.3 M: 20-200 ms of compiling for a 10 ms claim, docs/PERFORMANCE.md).
  if (auto s = out->Exec("SET client_min_messages = warning; SET TIME ZONE 'UTC'; SET jit = off");
      !s) {
    return core::Fail(s.error());
  }
  return out;
}

PgConn::~PgConn() { PQfinish(conn_); }

Result<sql::Stmt> PgConn::Prepare(std::string_view sql) {
  return sql::Stmt(std::make_unique<PgStmt>(*this, std::string(sql)));
}

Result<std::string> PgConn::PreparedName(const std::string& sql, const std::string& types_key,
                                         const std::vector<unsigned>& types) {
  auto it = prepared_.find(types_key);
  if (it != prepared_.end()) return it->second;
  if (pending_ > 0) {
    if (Status flushed = Flush(); !flushed) return core::Fail(flushed.error());
  }
  std::string name = "ob" + std::to_string(prepared_.size() + 1);
  std::string text = ToDollarParams(sql);
  PGresult* p =
      PQprepare(conn_, name.c_str(), text.c_str(), static_cast<int>(types.size()), types.data());
  if (PQresultStatus(p) != PGRES_COMMAND_OK) {
    core::Error e = PgError(conn_, p, "prepare " + text);
    PQclear(p);
    return core::Fail(std::move(e));
  }
  PQclear(p);
  prepared_.emplace(types_key, name);
  return name;
}

Result<PGresult*> PgConn::Run(const std::string& sql, const std::string& types_key,
                              const std::vector<unsigned>& types,
                              const std::vector<const char*>& values,
                              const std::vector<int>& lengths) {
  auto name = PreparedName(sql, types_key, types);
  if (!name) return core::Fail(std::move(name.error()));
  if (g_recording.load(std::memory_order_relaxed)) Record(sql, types_key, types, values, lengths);
  std::vector<int> formats(values.size(), 0);
  Counters::RoundTrip();
  PGresult* res = nullptr;
  if (pending_ > 0) {
    // After the deferred statements, in the same round trip.
    if (PQsendQueryPrepared(conn_, name->c_str(), static_cast<int>(values.size()), values.data(),
                            lengths.data(), formats.data(), 0) == 0) {
      core::Error e = PgError(conn_, nullptr, ToDollarParams(sql));
      (void)EndPipeline(nullptr);
      return core::Fail(std::move(e));
    }
    if (Status ended = EndPipeline(&res); !ended) {
      if (res != nullptr) PQclear(res);
      return core::Fail(ended.error());
    }
  } else {
    res = PQexecPrepared(conn_, name->c_str(), static_cast<int>(values.size()), values.data(),
                         lengths.data(), formats.data(), 0);
  }
  const ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    core::Error e = PgError(conn_, res, ToDollarParams(sql));
    PQclear(res);
    return core::Fail(std::move(e));
  }
  return res;
}

Status PgConn::Defer(const std::string& sql, const std::string& types_key,
                     const std::vector<unsigned>& types, const std::vector<const char*>& values,
                     const std::vector<int>& lengths) {
  auto name = PreparedName(sql, types_key, types);
  if (!name) return core::Fail(std::move(name.error()));
  if (g_recording.load(std::memory_order_relaxed)) Record(sql, types_key, types, values, lengths);
  if (pending_ == 0 && PQenterPipelineMode(conn_) == 0) {
    return core::Fail(PgError(conn_, nullptr, "enter pipeline mode"));
  }
  std::vector<int> formats(values.size(), 0);
  if (PQsendQueryPrepared(conn_, name->c_str(), static_cast<int>(values.size()), values.data(),
                          lengths.data(), formats.data(), 0) == 0) {
    core::Error e = PgError(conn_, nullptr, ToDollarParams(sql));
    (void)EndPipeline(nullptr);
    return core::Fail(std::move(e));
  }
  ++pending_;
  pending_sql_.push_back(sql);
  if (pending_ >= kMaxDeferred) return Flush();
  return {};
}

Status PgConn::Flush() {
  if (pending_ == 0) return {};
  Counters::RoundTrip();
  return EndPipeline(nullptr);
}

Status PgConn::EndPipeline(PGresult** mine) {
  const int deferred = pending_;
  pending_ = 0;
  std::vector<std::string> texts = std::move(pending_sql_);
  pending_sql_.clear();
  const int queries = deferred + (mine != nullptr ? 1 : 0);
  std::optional<core::Error> first;
  if (PQpipelineSync(conn_) == 0) {
    // Nothing may come back for what was sent: do not wait for it; reconnect.
    broken_ = true;
    return core::Fail(PgError(conn_, nullptr, "pipeline sync"));
  }
  // Each query's results end with a NULL; the sync's result ends the pipeline. After an error,
  // the queries after it report PGRES_PIPELINE_ABORTED. Bounded, should the connection go.
  int query = 0;
  bool synced = false;
  for (int nulls = 0; !synced && nulls <= queries + 1;) {
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) {
      ++nulls;
      ++query;
      if (PQstatus(conn_) != CONNECTION_OK) break;
      continue;
    }
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
      synced = true;
    } else if (query == deferred && mine != nullptr && st != PGRES_PIPELINE_ABORTED) {
      if (*mine != nullptr) PQclear(*mine);
      *mine = r;
      continue;
    } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && !first) {
      first = st == PGRES_PIPELINE_ABORTED
                  ? core::Error::Internal("postgres: a statement after a failed one did not run")
                  : PgError(conn_, r,
                            query < static_cast<int>(texts.size())
                                ? ToDollarParams(texts[static_cast<std::size_t>(query)])
                                : std::string("a statement run with the next round trip"));
    }
    PQclear(r);
  }
  if (!synced || PQexitPipelineMode(conn_) == 0) {
    broken_ = true;  // results or the connection lost track of: reconnect
    if (!first) first = PgError(conn_, nullptr, "end of a pipeline");
  }
  if (mine != nullptr && *mine == nullptr && !first) {
    first = core::Error::Internal("postgres: a statement's result did not come");
  }
  if (first) return core::Fail(std::move(*first));
  return {};
}

Status PgConn::Exec(const char* sql) {
  if (pending_ > 0) {
    // A failure of what was deferred aborted the transaction: a COMMIT would end it quietly
    // as a ROLLBACK, so nothing but a rollback runs after it.
    Status flushed = Flush();
    if (!flushed && std::string_view(sql).rfind("ROLLBACK", 0) != 0) return flushed;
  }
  Counters::RoundTrip();
  PGresult* res = PQexec(conn_, sql);
  const ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    core::Error e = PgError(conn_, res, sql);
    PQclear(res);
    return core::Fail(std::move(e));
  }
  const char* tuples = PQcmdTuples(res);
  changes_ = (tuples != nullptr && *tuples != '\0') ? std::strtoll(tuples, nullptr, 10) : 0;
  PQclear(res);
  return {};
}

}  // namespace outbound::store::postgres
