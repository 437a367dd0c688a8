// The conformance suite on PostgreSQL. The server: the DSN in the file named by
// OUTBOUND_TEST_PG_DSN_FILE (the `pg` CTest fixture's throwaway cluster) or OUTBOUND_TEST_PG_DSN.
// Each test gets a database of its own, named after its temporary directory, so that reopening
// finds the same data.
#include "store/postgres/pg_store.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "core/secretbox.h"
#include "store/testing/conformance.h"

namespace outbound::store::testing {
namespace {

std::string ServerDsn() {
  if (const char* dsn = std::getenv("OUTBOUND_TEST_PG_DSN"); dsn != nullptr && *dsn != '\0') {
    return dsn;
  }
  if (const char* file = std::getenv("OUTBOUND_TEST_PG_DSN_FILE"); file != nullptr) {
    std::ifstream in(file);
    std::string dsn;
    std::getline(in, dsn);
    return dsn;
  }
  return {};
}

// postgres://user@host:port/db?x → the same with another database.
std::string WithDatabase(const std::string& dsn, const std::string& db) {
  const std::size_t scheme = dsn.find("://");
  const std::size_t slash = dsn.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  const std::size_t query = dsn.find('?');
  std::string base = slash == std::string::npos ? dsn.substr(0, query) : dsn.substr(0, slash);
  std::string tail = query == std::string::npos ? "" : dsn.substr(query);
  return base + "/" + db + tail;
}

// A database name from the test's directory: ob_ + its unique suffix, lower case.
std::string DatabaseFor(const std::string& dir) {
  std::string name = "ob_";
  for (char c : dir.substr(dir.rfind('-') + 1)) {
    name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return name;
}

bool AdminExec(const std::string& sql) {
  PGconn* c = PQconnectdb(ServerDsn().c_str());
  bool ok = PQstatus(c) == CONNECTION_OK;
  if (ok) {
    PGresult* r = PQexec(c, sql.c_str());
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) ADD_FAILURE() << PQresultErrorMessage(r);
    PQclear(r);
  } else {
    ADD_FAILURE() << "cannot connect to the test server: " << PQerrorMessage(c);
  }
  PQfinish(c);
  return ok;
}

const std::string& TestKey() {
  static const std::string key = core::SecretBox::NewBase64Key();
  return key;
}

Backend PostgresBackend() {
  return Backend{"Postgres", true, [](const std::string& dir, OpenOptions o) {
                   const std::string db = DatabaseFor(dir);
                   // Created on the first open of a test, found again on a reopen.
                   PGconn* c = PQconnectdb(ServerDsn().c_str());
                   std::string check = "SELECT 1 FROM pg_database WHERE datname = '" + db + "'";
                   PGresult* r = PQexec(c, check.c_str());
                   const bool exists = PQntuples(r) > 0;
                   PQclear(r);
                   PQfinish(c);
                   if (!exists) AdminExec("CREATE DATABASE " + db);
                   PostgresOptions options;
                   options.dsn = WithDatabase(ServerDsn(), db);
                   options.secrets_keys = o.secrets_keys;
                   if (options.secrets_keys.empty()) options.secrets_keys = {TestKey()};
                   options.max_queue = o.max_queue;
                   options.max_batch = o.max_batch;
                   options.writer_connections = o.single_writer ? 1 : 2;
                   options.reader_connections = 2;
                   return OpenPostgres(options);
                 }};
}

class PostgresEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (ServerDsn().empty()) {
      GTEST_SKIP() << "no PostgreSQL server: set OUTBOUND_TEST_PG_DSN or run through ctest";
    }
  }
};

const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

INSTANTIATE_TEST_SUITE_P(Postgres, StoreConformance, ::testing::Values(PostgresBackend()),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param.name;
                         });

// Two processes on one database: a change made through one reaches the other's change hint
// (LISTEN/NOTIFY) at once, and ChangedTenants there names the tenant.
TEST(PostgresStore, ChangesMadeByAnotherProcessAreHinted) {
  if (ServerDsn().empty()) GTEST_SKIP() << "no PostgreSQL server";
  TempDir dir;
  const Backend backend = PostgresBackend();
  auto a = backend.open(dir.path(), OpenOptions{});
  ASSERT_TRUE(a.has_value()) << a.error().message;
  auto b = backend.open(dir.path(), OpenOptions{});
  ASSERT_TRUE(b.has_value()) << b.error().message;
  std::mutex mu;
  std::condition_variable cv;
  int hints = 0;
  (*b)->SetChangeHint([&] {
    std::lock_guard<std::mutex> lock(mu);
    ++hints;
    cv.notify_all();
  });
  std::int64_t version = 0;
  ASSERT_TRUE((*b)->Read([&](Txn& tx) -> Status {
                    version = tx.ChangedTenants(0)->version;
                    return {};
                  })
                  .has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the listener is connected
  TenantId t;
  ASSERT_TRUE((*a)->Write([&](Txn& tx) -> Status {
                    t = tx.CreateTenant("t", kT0)->id;
                    Client c;
                    c.tenant = t;
                    c.name = "c";
                    c.source_system = "s";
                    c = tx.CreateClient(c).value();
                    c.billing_details_allowed = true;
                    if (!tx.UpdateClient(c).value()) return core::Fail(core::Error::Internal("x"));
                    return {};
                  })
                  .has_value());
  {
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(2), [&] { return hints > 0; }))
        << "no hint within 2 s";
  }
  ASSERT_TRUE((*b)->Read([&](Txn& tx) -> Status {
                    auto r = tx.ChangedTenants(version).value();
                    EXPECT_EQ(r.tenants.size(), 1u);
                    if (!r.tenants.empty()) {
                      EXPECT_EQ(r.tenants[0], t);
                    }
                    return {};
                  })
                  .has_value());
  (*a)->Close();
  (*b)->Close();
}

}  // namespace
}  // namespace outbound::store::testing
