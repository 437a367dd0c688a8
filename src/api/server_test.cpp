// The real server on port 0 with a real SQLite store in a temp dir and a real IngestService,
// driven by real HTTP requests from a small synchronous Beast client.
#include "api/server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/testing/fakes.h"
#include "ingest/ingest.h"
#include "store/sqlite/sqlite_store.h"
#include "store/testing/hold_writer.h"

namespace outbound::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

constexpr const char* kOperatorToken = "operator-token-for-tests";
// Markers that must never come back in any response.
constexpr const char* kNotesMarker = "NOTES-MARKER-7f3a";
constexpr const char* kAccessMarker = "ACCESS-MARKER-91bc";
constexpr const char* kHeaderMarker = "HEADER-MARKER-55de";

struct Reply {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
  json::value Json() const {
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    return ec ? json::value() : v;
  }
  std::string ErrorCode() const {
    auto v = Json();
    if (!v.is_object() || !v.as_object().contains("error")) return "";
    return std::string(v.at("error").at("code").as_string());
  }
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() /
           ("outbound_api_test_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
    store::SqliteOptions so;
    so.path = (dir_ / "outbound.db").string();
    auto s = store::OpenSqlite(so);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    // No dispatcher: the rows a publish leases to this process stay held (sunk_ has them).
    ingest_ = std::make_unique<ingest::IngestService>(
        *store_, clock_, ids_, [this](const std::vector<store::DeliveryJob>& jobs) {
          const std::lock_guard lock(sunk_mu_);
          sunk_.insert(sunk_.end(), jobs.begin(), jobs.end());
        });
    ApiOptions options;
    options.listen = "127.0.0.1:0";
    options.operator_token = kOperatorToken;
    options.max_body_bytes = std::size_t{64} * 1024;
    options.request_timeout_ms = 2000;
    options.handler_threads = 4;
    ApiHooks hooks;
    hooks.subscription_changed = [this](core::SubscriptionId) { ++subscription_changes_; };
    hooks.deliveries_due = [this] { ++deliveries_due_; };
    hooks.dispatcher_held = [] { return std::size_t{7}; };
    auto server = Server::Create(options, *store_, *ingest_, clock_, ids_, hooks);
    ASSERT_TRUE(server) << server.error().message;
    server_ = std::move(*server);
    auto started = server_->Start();
    ASSERT_TRUE(started) << started.error().message;
    ASSERT_NE(server_->Port(), 0);
  }

  void TearDown() override {
    for (const auto& body : bodies_) {
      EXPECT_EQ(body.find(kNotesMarker), std::string::npos) << body;
      EXPECT_EQ(body.find(kAccessMarker), std::string::npos) << body;
      EXPECT_EQ(body.find(kHeaderMarker), std::string::npos) << body;
    }
    if (server_) server_->Stop();
    server_.reset();
    ingest_.reset();
    if (store_) store_->Close();
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  Reply Send(const std::string& method, const std::string& target, const std::string& token,
             const std::string& body = "",
             const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    asio::io_context ioc;
    tcp::socket socket(ioc);
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->Port()));
    http::request<http::string_body> req(http::string_to_verb(method), target, 11);
    req.set(http::field::host, "127.0.0.1");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    for (const auto& [n, v] : headers) req.set(n, v);
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    http::write(socket, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::uint64_t{16} * 1024 * 1024);
    http::read(socket, buffer, parser);
    Reply r;
    r.status = static_cast<int>(parser.get().result_int());
    r.body = parser.get().body();
    for (const auto& f : parser.get()) r.headers[std::string(f.name_string())] = f.value();
    {
      // Send is called from several threads at once (the publishes' std::async).
      std::lock_guard lock(bodies_mu_);
      bodies_.push_back(r.body);
    }
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    return r;
  }

  Reply Op(const std::string& m, const std::string& t, const std::string& b = "") {
    return Send(m, t, kOperatorToken, b);
  }

  // A tenant and its key.
  std::pair<std::int64_t, std::string> NewTenant(const std::string& name) {
    Reply r = Op("POST", "/v1/tenants", json::serialize(json::object{{"name", name}}));
    EXPECT_EQ(r.status, 201) << r.body;
    auto v = r.Json();
    return {v.at("tenantId").as_int64(), std::string(v.at("apiKey").as_string())};
  }

  // A client of the tenant and a client key.
  std::pair<std::int64_t, std::string> NewClient(const std::string& tenant_key,
                                                 const std::string& system) {
    Reply r = Send("POST", "/v1/clients", tenant_key,
                   json::serialize(json::object{{"name", system}, {"sourceSystem", system}}));
    EXPECT_EQ(r.status, 201) << r.body;
    std::int64_t id = r.Json().at("clientId").as_int64();
    Reply k = Send("POST", "/v1/clients/" + std::to_string(id) + "/keys", tenant_key);
    EXPECT_EQ(k.status, 201) << k.body;
    return {id, std::string(k.Json().at("apiKey").as_string())};
  }

  std::filesystem::path dir_;
  core::SystemClock clock_;
  core::UlidGenerator ids_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ingest::IngestService> ingest_;
  std::unique_ptr<Server> server_;
  std::atomic<int> subscription_changes_{0};
  std::atomic<int> deliveries_due_{0};
  std::mutex sunk_mu_;
  std::vector<store::DeliveryJob> sunk_;  // handed over by publishes, under sunk_mu_

  // Lets go of what publishes leased to this process, as a dispatcher does once it has sent it.
  void ReleaseSunk() {
    std::vector<core::DeliveryRowId> ids;
    {
      const std::lock_guard lock(sunk_mu_);
      for (const store::DeliveryJob& j : sunk_) ids.push_back(j.id);
      sunk_.clear();
    }
    const auto st = store_->Write([&](store::Txn& tx) -> core::Status {
      auto released = tx.ReleaseLeases(store_->Owner(), ids);
      if (!released) return core::Fail(std::move(released.error()));
      return {};
    });
    ASSERT_TRUE(st.has_value()) << st.error().message;
  }
  std::mutex bodies_mu_;
  std::vector<std::string> bodies_;  // every answer's body, checked in TearDown (bodies_mu_)
};

TEST_F(ServerTest, HealthzNeedsNoToken) {
  Reply r = Send("GET", "/healthz", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Json(), json::parse(R"({"status":"ok"})"));
  EXPECT_EQ(r.headers["Content-Type"], "application/json");
}

// Liveness is answered on the I/O thread (CONTRACT §12: /healthz stays 200 while the store does
// not answer): every handler thread blocked on a store that does not come back leaves it
// answering. (Fails with /healthz on the handler threads: it waited for the writer.)
TEST_F(ServerTest, HealthzAnswersWhileEveryHandlerThreadWaitsForTheStore) {
  std::promise<void> go_on = store::testing::HoldTheWriter(*store_);
  constexpr int kWrites = 6;  // more than the fixture's 4 handler threads
  std::vector<std::future<Reply>> writes;
  writes.reserve(kWrites);
  for (int i = 0; i < kWrites; ++i) {
    writes.push_back(std::async(std::launch::async, [this, i] {
      return Op("POST", "/v1/tenants", R"({"name":"Blocked )" + std::to_string(i) + R"("})");
    }));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (store_->QueueDepth() < 5 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(store_->QueueDepth(), 5u) << "the handler threads are not all waiting for the store";
  auto health = std::async(std::launch::async, [this] { return Send("GET", "/healthz", ""); });
  EXPECT_EQ(health.wait_for(std::chrono::seconds(3)), std::future_status::ready)
      << "/healthz waited for a handler thread";
  go_on.set_value();
  EXPECT_EQ(health.get().status, 200);
  for (auto& w : writes) EXPECT_EQ(w.get().status, 201);
}

// A single publish answers from its commit (issue 8): no handler thread waits for the writer,
// so publishes waiting for a commit leave the handler threads to other requests. (Fails with
// a blocking publish: the fixture's 4 handler threads all wait for the blocked writer and
// /healthz is not answered until the writer goes on.)
TEST_F(ServerTest, PublishesWaitingForTheirCommitHoldNoHandlerThread) {
  auto [tenant, key] = NewTenant("Acme");
  std::promise<void> go_on = store::testing::HoldTheWriter(*store_);
  constexpr int kPublishes = 6;  // more than the fixture's 4 handler threads
  std::vector<std::future<Reply>> publishes;
  publishes.reserve(kPublishes);
  for (int i = 0; i < kPublishes; ++i) {
    publishes.push_back(std::async(std::launch::async, [this, key = key] {
      return Send("POST", "/v1/events", key,
                  R"({"eventType":"appointment.started","targetId":424242,)"
                  R"("occurredAtUtc":"2026-06-25T14:31:00Z","data":{"appointmentId":1,)"
                  R"("startedAtUtc":"2026-06-25T14:02:00Z"}})");
    }));
  }
  // Every publish waits for the store: grouped (ingest's PublishAsync) behind the blocking task,
  // one group task queued.
  // (Both polled: the group's first publish submits its task after leaving the group's lock.)
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((ingest_->WaitingPublishes() < kPublishes || store_->QueueDepth() < 2) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(ingest_->WaitingPublishes(), static_cast<std::size_t>(kPublishes));
  EXPECT_EQ(store_->QueueDepth(), 2u);
  auto health = std::async(std::launch::async, [this] { return Send("GET", "/healthz", ""); });
  EXPECT_EQ(health.wait_for(std::chrono::seconds(5)), std::future_status::ready)
      << "/healthz waited for the writer: a publish held a handler thread";
  // The operator sees them waiting: the store's queue counts their group once.
  auto metrics = std::async(std::launch::async, [this] { return Op("GET", "/metrics"); });
  EXPECT_EQ(metrics.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  go_on.set_value();
  EXPECT_EQ(health.get().status, 200);
  const Reply m = metrics.get();
  EXPECT_NE(m.body.find("\noutbound_publishes_waiting 6\n"), std::string::npos) << m.body;
  for (auto& p : publishes) {
    Reply r = p.get();
    EXPECT_EQ(r.status, 404) << r.body;  // answered from the commit: the target is unknown
    EXPECT_EQ(r.Json().at("error").at("code"), "target_not_found") << r.body;
  }
}

// A single publish with a cached key is handled on the I/O thread (issue 8: the hand-over to a
// handler thread cost two thread wake-ups per publish), so it reaches the writer while every
// handler thread waits for a commit. (Fails with every request handed to the handler threads:
// the publishes wait behind the 4 blocked batch publishes and never reach their group.)
TEST_F(ServerTest, PublishesWithAKnownKeyNeedNoHandlerThread) {
  auto [tenant, key] = NewTenant("Acme");
  // A clock that stands still: the key cached below stays cached (a second of real time).
  server_->Stop();
  core::testing::FakeClock frozen(1'750'000'000'000);
  ApiOptions options;
  options.listen = "127.0.0.1:0";
  options.operator_token = kOperatorToken;
  options.handler_threads = 4;
  auto server = Server::Create(options, *store_, *ingest_, frozen, ids_, {});
  ASSERT_TRUE(server) << server.error().message;
  server_ = std::move(*server);
  ASSERT_TRUE(server_->Start());
  ASSERT_EQ(Send("GET", "/v1/events", key).status, 200);  // the key is in the cache now

  std::promise<void> go_on = store::testing::HoldTheWriter(*store_);
  auto wait_for_depth = [this](std::size_t depth) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (store_->QueueDepth() < depth && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return store_->QueueDepth();
  };
  const std::string event = R"({"eventType":"appointment.started","targetId":424242,)"
                            R"("occurredAtUtc":"2026-06-25T14:31:00Z","data":{"appointmentId":1,)"
                            R"("startedAtUtc":"2026-06-25T14:02:00Z"}})";
  // Every handler thread waits for the writer: a batch publish waits for its commit.
  std::vector<std::future<Reply>> batches;
  batches.reserve(4);
  for (int i = 0; i < 4; ++i) {
    batches.push_back(std::async(std::launch::async, [this, key = key, event] {
      return Send("POST", "/v1/events/batch", key, R"({"events":[)" + event + "]}");
    }));
  }
  // Not ASSERT: a return here would leave the writer held, and the requests' futures (Send has
  // no timeout) waiting for it for ever.
  EXPECT_EQ(wait_for_depth(1 + 4), 1u + 4);
  std::vector<std::future<Reply>> publishes;
  publishes.reserve(3);
  for (int i = 0; i < 3; ++i) {
    publishes.push_back(std::async(std::launch::async, [this, key = key, event] {
      return Send("POST", "/v1/events", key, event);
    }));
  }
  // They wait in one group for the store, its task queued behind the batches.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((ingest_->WaitingPublishes() < 3 || store_->QueueDepth() < 1 + 4 + 1) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(ingest_->WaitingPublishes(), 3u) << "the publishes waited for a handler thread";
  EXPECT_EQ(store_->QueueDepth(), 1u + 4 + 1);
  go_on.set_value();
  for (auto& b : batches) {
    Reply r = b.get();
    EXPECT_EQ(r.status, 202) << r.body;  // the item refused: its target is unknown
    EXPECT_EQ(r.Json().at("results").at(0).at("error").at("code"), "target_not_found") << r.body;
  }
  for (auto& p : publishes) {
    Reply r = p.get();
    EXPECT_EQ(r.status, 404) << r.body;
    EXPECT_EQ(r.Json().at("error").at("code"), "target_not_found") << r.body;
  }
  // A key not in the cache still works: it is read on a handler thread.
  auto [other, other_key] = NewTenant("Other");
  Reply r = Send("POST", "/v1/events", other_key, event);
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(r.Json().at("error").at("code"), "target_not_found") << r.body;
}

// A server stopped before it was started cannot be started: its I/O threads would never be
// joined, and destroying it would end the process. (Fails so without the check in Start.)
TEST_F(ServerTest, AServerStoppedBeforeStartingCannotStart) {
  ApiOptions options;
  options.listen = "127.0.0.1:0";
  options.operator_token = kOperatorToken;
  auto server = Server::Create(options, *store_, *ingest_, clock_, ids_, {});
  ASSERT_TRUE(server) << server.error().message;
  (*server)->Stop();
  EXPECT_FALSE((*server)->Start());
  EXPECT_EQ((*server)->Port(), 0);
}

TEST_F(ServerTest, ReadyzAnswersWhileTheStoreAnswers) {
  Reply r = Send("GET", "/readyz", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Json(), json::parse(R"({"status":"ready"})"));

  store_->Close();  // reads fail from now on, as while a database is away
  r = Send("GET", "/readyz", "");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.ErrorCode(), "store_unavailable");
  EXPECT_EQ(r.headers["Retry-After"], "1");
  // Liveness does not depend on the store.
  r = Send("GET", "/healthz", "");
  EXPECT_EQ(r.status, 200);
}

TEST_F(ServerTest, WorkerAnswersOnlyHealthAndMetrics) {
  server_->Stop();
  ApiOptions options;
  options.listen = "127.0.0.1:0";
  options.operator_token = kOperatorToken;
  options.worker_only = true;
  auto server = Server::Create(options, *store_, *ingest_, clock_, ids_, {});
  ASSERT_TRUE(server) << server.error().message;
  server_ = std::move(*server);
  ASSERT_TRUE(server_->Start());

  EXPECT_EQ(Send("GET", "/healthz", "").status, 200);
  EXPECT_EQ(Send("GET", "/readyz", "").status, 200);
  EXPECT_EQ(Op("GET", "/metrics").status, 200);
  EXPECT_EQ(Send("GET", "/metrics", "").status, 401);  // still the operator's
  for (const auto& [method, target] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/v1/tenants"},
                                                        {"POST", "/v1/tenants"},
                                                        {"POST", "/v1/events"},
                                                        {"GET", "/v1/subscriptions/1/deliveries"},
                                                        {"GET", "/openapi.json"},
                                                        {"GET", "/v1/nothing"}}) {
    // 404 before authentication, whatever the token.
    for (const std::string& token : {std::string(), std::string(kOperatorToken)}) {
      Reply r = Send(method, target, token, method == "POST" ? R"({"name":"Acme"})" : "");
      EXPECT_EQ(r.status, 404) << method << " " << target;
      EXPECT_EQ(r.ErrorCode(), "route_not_found") << method << " " << target;
    }
  }
}

TEST_F(ServerTest, UnknownRoutesAndMethods) {
  Reply r = Send("GET", "/v1/nothing", "");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.ErrorCode(), "route_not_found");
  r = Send("PUT", "/v1/clients", "");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.ErrorCode(), "method_not_allowed");
  EXPECT_EQ(r.headers["Allow"], "POST, GET");
}

TEST_F(ServerTest, MissingOrBadTokensAre401) {
  for (const std::string& token :
       {std::string(), std::string("nope"),
        std::string("obt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), std::string("obc_x")}) {
    Reply r = Send("GET", "/v1/clients", token);
    EXPECT_EQ(r.status, 401) << token;
    EXPECT_EQ(r.ErrorCode(), "unauthorized");
  }
  // Another scheme.
  Reply r = Send("GET", "/v1/clients", "", "", {{"Authorization", "Basic Zm9vOmJhcg=="}});
  EXPECT_EQ(r.status, 401);
}

TEST_F(ServerTest, OperatorScope) {
  auto [tenant_id, tenant_key] = NewTenant("Acme");
  EXPECT_GT(tenant_id, 0);
  EXPECT_EQ(tenant_key.substr(0, 4), "obt_");

  // The operator sees no tenant data.
  Reply r = Op("GET", "/v1/clients");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.ErrorCode(), "insufficient_scope");
  // Tenants cannot use operator routes.
  r = Send("POST", "/v1/tenants", tenant_key, R"({"name":"Other"})");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.ErrorCode(), "insufficient_scope");
  r = Send("GET", "/metrics", tenant_key);
  EXPECT_EQ(r.status, 403);

  r = Op("GET", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.headers["Content-Type"].find("text/plain"), std::string::npos);
  EXPECT_NE(r.body.find("outbound_http_requests_total{method=\"POST\",route=\"/v1/tenants\","
                        "status=\"201\"} 1"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("outbound_store_queue_depth"), std::string::npos);
  EXPECT_NE(r.body.find("\noutbound_dispatcher_held 7\n"), std::string::npos) << r.body;
  // The tenant's creation committed at least one write transaction of at least one task.
  auto value = [&](const std::string& name) -> double {
    const auto at = r.body.find("\n" + name + " ");
    if (at == std::string::npos) return -1;
    return std::stod(r.body.substr(at + name.size() + 2));
  };
  EXPECT_GE(value("outbound_store_commit_duration_seconds_count"), 1) << r.body;
  EXPECT_GT(value("outbound_store_commit_duration_seconds_sum"), 0) << r.body;
  EXPECT_GE(value("outbound_store_committed_tasks_total"),
            value("outbound_store_commit_duration_seconds_count"));
  EXPECT_EQ(value("outbound_store_commit_duration_seconds_bucket{le=\"+Inf\"}"),
            value("outbound_store_commit_duration_seconds_count"));
  EXPECT_NE(r.body.find("outbound_store_commit_duration_seconds_bucket{le=\"0.00025\"} "),
            std::string::npos)
      << r.body;
  EXPECT_GE(value("outbound_sqlite_checkpoints_total"), 0) << r.body;
  // On SQLite the tenant's creation was answered after a sync of the WAL.
  EXPECT_GE(value("outbound_sqlite_wal_sync_duration_seconds_count"), 1) << r.body;
  EXPECT_EQ(value("outbound_sqlite_wal_sync_duration_seconds_bucket{le=\"+Inf\"}"),
            value("outbound_sqlite_wal_sync_duration_seconds_count"));
}

TEST_F(ServerTest, TenantCreationValidates) {
  Reply r = Op("POST", "/v1/tenants", R"({"name": 3, "plan": "gold"})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.ErrorCode(), "validation_failed");
  auto details = r.Json().at("error").at("details").as_array();
  ASSERT_EQ(details.size(), 2u);
  EXPECT_EQ(details[0].at("field"), "name");
  EXPECT_EQ(details[0].at("code"), "invalid_type");
  EXPECT_EQ(details[1].at("field"), "plan");
  EXPECT_EQ(details[1].at("code"), "unknown_field");
}

TEST_F(ServerTest, BadBodiesStoreNothing) {
  auto [tenant_id, key] = NewTenant("Acme");
  Reply r = Send("POST", "/v1/clients", key, R"({"name": "ERP", "sourceSystem": )");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.ErrorCode(), "malformed_json");

  r = Send("POST", "/v1/clients", key, R"({"name": "ERP", "sourceSystem": "erp", "colour": 1})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.ErrorCode(), "unknown_field");
  EXPECT_EQ(r.Json().at("error").at("field"), "colour");

  r = Send("POST", "/v1/clients", key,
           R"({"name": ["ERP"], "sourceSystem": "Not Valid", "billingDetailsAllowed": "yes"})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.ErrorCode(), "validation_failed");
  EXPECT_EQ(r.Json().at("error").at("details").as_array().size(), 3u);

  r = Send("POST", "/v1/clients", key, R"(["not", "an", "object"])");
  EXPECT_EQ(r.status, 422);

  r = Send("GET", "/v1/clients", key);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.Json().at("data").as_array().empty());
  EXPECT_TRUE(r.Json().at("nextCursor").is_null());
}

TEST_F(ServerTest, OversizedBodyIs413) {
  auto [tenant_id, key] = NewTenant("Acme");
  std::string big =
      R"({"name": ")" + std::string(std::size_t{100} * 1024, 'x') + R"(", "sourceSystem": "erp"})";
  Reply r = Send("POST", "/v1/clients", key, big);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.ErrorCode(), "payload_too_large");
  r = Send("GET", "/v1/clients", key);
  EXPECT_TRUE(r.Json().at("data").as_array().empty());
}

TEST_F(ServerTest, GarbageIsAnsweredNotCrashedOn) {
  {
    asio::io_context ioc;
    tcp::socket socket(ioc);
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->Port()));
    std::string garbage = "THIS IS NOT HTTP\r\n\r\n";
    asio::write(socket, asio::buffer(garbage));
    std::string answer;
    beast::error_code ec;
    char buf[4096];
    for (;;) {
      std::size_t n = socket.read_some(asio::buffer(buf), ec);
      answer.append(buf, n);
      if (ec) break;
    }
    EXPECT_NE(answer.find("400"), std::string::npos) << answer;
  }
  // Still serving.
  EXPECT_EQ(Send("GET", "/healthz", "").status, 200);
  // A bad query string and bad limits.
  auto [tenant_id, key] = NewTenant("Acme");
  Reply r = Send("GET", "/v1/clients?limit=0", key);
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.ErrorCode(), "invalid_limit");
  r = Send("GET", "/v1/clients?limit=251", key);
  EXPECT_EQ(r.ErrorCode(), "invalid_limit");
  // Found by fuzz/api_fuzz: long digit strings overflowed while being read.
  r = Send("GET", "/v1/clients?limit=77777777777777777777777777777777710", key);
  EXPECT_EQ(r.ErrorCode(), "invalid_limit");
  r = Send("GET", "/v1/clients?color=red", key);
  EXPECT_EQ(r.ErrorCode(), "unknown_parameter");
  // Found by fuzz/api_fuzz: a parameter that decodes to bytes that are not UTF-8 was echoed
  // into an answer that was then not valid JSON.
  r = Send("GET", "/v1/clients?2f%ff=x", key);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.ErrorCode(), "malformed_request");
  r = Send("GET", "/v1/clients/abc", key);
  EXPECT_EQ(r.status, 404);
  r = Send("GET", "/v1/events?sinceUtc=2026-01-01T00:00:00", key);
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.ErrorCode(), "invalid_time");
}

TEST_F(ServerTest, ClientsKeysAndScopes) {
  auto [tenant_id, tenant_key] = NewTenant("Acme");
  auto [client_id, client_key] = NewClient(tenant_key, "logistics_erp");
  EXPECT_EQ(client_key.substr(0, 4), "obc_");

  // Client keys may not use tenant-only routes.
  for (auto [m, t] : std::vector<std::pair<std::string, std::string>>{{"GET", "/v1/clients"},
                                                                      {"POST", "/v1/clients"},
                                                                      {"GET", "/v1/keys"},
                                                                      {"PUT", "/v1/customers/1"},
                                                                      {"POST", "/v1/events"},
                                                                      {"PATCH", "/v1/targets/1"},
                                                                      {"POST", "/v1/tenants"}}) {
    Reply r = Send(m, t, client_key, "{}");
    EXPECT_EQ(r.status, 403) << m << " " << t;
    EXPECT_EQ(r.ErrorCode(), "insufficient_scope");
  }
  // Imports are the client's alone.
  Reply r = Send("POST", "/v1/imports/targets", tenant_key, R"({"targets": []})");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.ErrorCode(), "insufficient_scope");
  // Client routes work.
  EXPECT_EQ(Send("GET", "/v1/event-types", client_key).status, 200);
  EXPECT_EQ(Send("GET", "/v1/targets", client_key).status, 200);
  EXPECT_EQ(Send("GET", "/v1/events", client_key).status, 200);

  // Keys list without secrets.
  r = Send("GET", "/v1/keys", tenant_key);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.find(tenant_key), std::string::npos);
  EXPECT_EQ(r.body.find(client_key), std::string::npos);
  EXPECT_EQ(r.body.find(client_key.substr(12)), std::string::npos);
  auto keys = r.Json().at("data").as_array();
  ASSERT_EQ(keys.size(), 2u);
  std::int64_t client_key_id = 0;
  for (const auto& k : keys) {
    if (k.at("kind") == "client") {
      client_key_id = k.at("keyId").as_int64();
      EXPECT_EQ(k.at("clientId").as_int64(), client_id);
      EXPECT_EQ(k.at("prefix"), json::value(client_key.substr(0, 12)));
    }
  }
  ASSERT_GT(client_key_id, 0);

  // PATCH is partial; sourceSystem is fixed.
  r = Send("PATCH", "/v1/clients/" + std::to_string(client_id), tenant_key,
           R"({"billingDetailsAllowed": true})");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json().at("billingDetailsAllowed"), true);
  EXPECT_EQ(r.Json().at("sourceSystem"), "logistics_erp");
  r = Send("PATCH", "/v1/clients/" + std::to_string(client_id), tenant_key,
           R"({"sourceSystem": "other"})");
  EXPECT_EQ(r.status, 422);

  // Revoking a key locks it out.
  r = Send("DELETE", "/v1/keys/" + std::to_string(client_key_id), tenant_key);
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(Send("GET", "/v1/event-types", client_key).status, 401);
  EXPECT_EQ(Send("DELETE", "/v1/keys/" + std::to_string(client_key_id), tenant_key).status, 404);
}

// Keys found are kept for a second (api::KeyCache): a revocation through this process is in force
// at once, even for a key used a moment before; one made behind its back (by another process)
// within CONTRACT.md §12's 2 seconds.
TEST_F(ServerTest, RevokedKeysAreRefusedAtOnceThoughJustUsed) {
  auto [tenant_id, tenant_key] = NewTenant("Acme");
  auto [client_id, client_key] = NewClient(tenant_key, "logistics_erp");
  // Structured bindings are named through init-captures (clang-tidy's clang 14 rejects capturing
  // them, which C++20 allows).
  auto key_id = [this, &tenant_key = tenant_key](const std::string& token) {
    const json::value list = Send("GET", "/v1/keys", tenant_key).Json();
    for (const auto& k : list.at("data").as_array()) {
      if (k.at("prefix") == json::value(token.substr(0, 12))) return k.at("keyId").as_int64();
    }
    return std::int64_t{0};
  };
  // DELETE /v1/keys/{id}.
  EXPECT_EQ(Send("GET", "/v1/events", client_key).status, 200);
  Reply r = Send("DELETE", "/v1/keys/" + std::to_string(key_id(client_key)), tenant_key);
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(Send("GET", "/v1/events", client_key).status, 401);
  // DELETE /v1/clients/{id} revokes the client's keys.
  Reply k = Send("POST", "/v1/clients/" + std::to_string(client_id) + "/keys", tenant_key);
  ASSERT_EQ(k.status, 201) << k.body;
  const std::string second_key(k.Json().at("apiKey").as_string());
  EXPECT_EQ(Send("GET", "/v1/events", second_key).status, 200);
  EXPECT_EQ(Send("DELETE", "/v1/clients/" + std::to_string(client_id), tenant_key).status, 204);
  EXPECT_EQ(Send("GET", "/v1/events", second_key).status, 401);
  // Revoked in the store without this process's API, as another process does.
  EXPECT_EQ(Send("GET", "/v1/keys", tenant_key).status, 200);
  const std::int64_t tenant_key_id = key_id(tenant_key);
  ASSERT_GT(tenant_key_id, 0);
  auto revoked = store_->Write([&, tenant_id = tenant_id](store::Txn& tx) -> core::Status {
    auto done =
        tx.RevokeApiKey(core::TenantId{tenant_id}, core::KeyId{tenant_key_id}, clock_.Now());
    if (!done) return core::Fail(std::move(done.error()));
    return {};
  });
  ASSERT_TRUE(revoked) << revoked.error().message;
  const auto start = std::chrono::steady_clock::now();
  int status = 0;
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(5)) {
    status = Send("GET", "/v1/keys", tenant_key).status;
    if (status == 401) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(status, 401);
  EXPECT_LE(std::chrono::steady_clock::now() - start, std::chrono::seconds(2))
      << "a key revoked by another process must be refused within 2 s (CONTRACT.md §12)";
}

TEST_F(ServerTest, TenantsAreIsolated) {
  auto [a_id, a_key] = NewTenant("A");
  auto [b_id, b_key] = NewTenant("B");
  auto [a_client, a_client_key] = NewClient(a_key, "erp");
  std::string path = "/v1/clients/" + std::to_string(a_client);
  EXPECT_EQ(Send("GET", path, a_key).status, 200);
  Reply r = Send("GET", path, b_key);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.ErrorCode(), "not_found");
  EXPECT_EQ(Send("PATCH", path, b_key, R"({"name":"x"})").status, 404);
  EXPECT_EQ(Send("DELETE", path, b_key).status, 404);
  EXPECT_EQ(Send("POST", path + "/keys", b_key).status, 404);
  EXPECT_TRUE(Send("GET", "/v1/clients", b_key).Json().at("data").as_array().empty());

  // A subscription of tenant A is invisible to B.
  r = Send("POST", "/v1/subscriptions", a_client_key,
           R"({"url": "https://hooks.example.com/a", "eventTypes": ["*"]})");
  ASSERT_EQ(r.status, 201) << r.body;
  std::string sub = "/v1/subscriptions/" + std::to_string(r.Json().at("subscriptionId").as_int64());
  EXPECT_EQ(Send("GET", sub, b_key).status, 404);
  EXPECT_EQ(Send("GET", sub + "/deliveries", b_key).status, 404);
  EXPECT_EQ(Send("DELETE", sub, b_key).status, 404);
  EXPECT_EQ(Send("GET", sub, a_key).status, 200);

  // Directory too.
  EXPECT_EQ(Send("PUT", "/v1/customers/5", a_key,
                 R"({"customerNumber": "C-5", "name": "Five", "externalIds": {"erp": "K5"}})")
                .status,
            201);
  EXPECT_EQ(Send("GET", "/v1/customers/5", b_key).status, 404);
}

TEST_F(ServerTest, SubscriptionsBelongToTheirClient) {
  auto [tenant_id, tenant_key] = NewTenant("Acme");
  auto [c1, c1_key] = NewClient(tenant_key, "erp");
  auto [c2, c2_key] = NewClient(tenant_key, "crm");

  std::string body = json::serialize(json::object{
      {"url", "https://hooks.example.com/erp"},
      {"eventTypes", json::array{"target.*", "appointment.completed"}},
      {"options", json::object{{"includeBillingDetails", true}}},
      {"headers", json::object{{"Authorization", std::string("Bearer ") + kHeaderMarker}}},
      {"description", "ERP hook"},
      {"maxConcurrency", 4}});
  Reply r = Send("POST", "/v1/subscriptions", c1_key, body);
  ASSERT_EQ(r.status, 201) << r.body;
  auto created = r.Json().as_object();
  std::string secret(created.at("secret").as_string());
  EXPECT_EQ(secret.substr(0, 6), "whsec_");
  EXPECT_EQ(created.at("clientId").as_int64(), c1);
  EXPECT_EQ(created.at("headers").at("Authorization"), "********");
  EXPECT_EQ(created.at("options").at("includeBillingDetails"), true);
  EXPECT_EQ(created.at("options").at("includeCustomerContext"), true);
  // The client is not allowed billing details (yet).
  EXPECT_EQ(created.at("effectiveOptions").at("includeBillingDetails"), false);
  EXPECT_EQ(created.at("enabled"), true);
  EXPECT_TRUE(created.at("rateLimitPerSecond").is_null());
  std::int64_t sub_id = created.at("subscriptionId").as_int64();
  std::string sub = "/v1/subscriptions/" + std::to_string(sub_id);

  // The secret is shown once.
  r = Send("GET", sub, c1_key);
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.Json().as_object().contains("secret"));
  EXPECT_EQ(r.body.find(secret), std::string::npos);
  r = Send("GET", "/v1/subscriptions", tenant_key);
  EXPECT_EQ(r.body.find(secret), std::string::npos);
  EXPECT_EQ(r.Json().at("data").as_array().size(), 1u);

  // The other client neither sees nor touches it.
  EXPECT_EQ(Send("GET", sub, c2_key).status, 404);
  EXPECT_EQ(Send("PATCH", sub, c2_key, R"({"enabled": false})").status, 404);
  EXPECT_EQ(Send("DELETE", sub, c2_key).status, 404);
  EXPECT_EQ(Send("GET", sub + "/deliveries", c2_key).status, 404);
  EXPECT_TRUE(Send("GET", "/v1/subscriptions", c2_key).Json().at("data").as_array().empty());
  EXPECT_EQ(Send("GET", "/v1/subscriptions?clientId=" + std::to_string(c1), c2_key)
                .Json()
                .at("data")
                .as_array()
                .size(),
            0u);
  EXPECT_EQ(Send("GET", "/v1/subscriptions?clientId=" + std::to_string(c1), tenant_key)
                .Json()
                .at("data")
                .as_array()
                .size(),
            1u);
  // A client key cannot create for another client.
  r = Send("POST", "/v1/subscriptions", c2_key,
           json::serialize(json::object{{"clientId", c1},
                                        {"url", "https://hooks.example.com/x"},
                                        {"eventTypes", json::array{"*"}}}));
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.ErrorCode(), "unknown_reference");
  // A tenant key must name the client.
  r = Send("POST", "/v1/subscriptions", tenant_key,
           R"({"url": "https://hooks.example.com/x", "eventTypes": ["*"]})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.Json().at("error").at("field"), "clientId");

  // Allowing billing changes the effective options and tells the dispatcher.
  int changes = subscription_changes_;
  EXPECT_EQ(Send("PATCH", "/v1/clients/" + std::to_string(c1), tenant_key,
                 R"({"billingDetailsAllowed": true})")
                .status,
            200);
  EXPECT_GT(subscription_changes_, changes);
  r = Send("GET", sub, tenant_key);
  EXPECT_EQ(r.Json().at("effectiveOptions").at("includeBillingDetails"), true);

  // PATCH is partial; the masked header value keeps the stored one.
  r = Send("PATCH", sub, c1_key,
           R"({"enabled": false, "rateLimitPerSecond": 2.5,
               "headers": {"Authorization": "********", "X-Extra": "1"}})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json().at("enabled"), false);
  EXPECT_FALSE(r.Json().at("disabledReason").is_null());
  EXPECT_EQ(r.Json().at("rateLimitPerSecond").as_double(), 2.5);
  EXPECT_EQ(r.Json().at("url"), "https://hooks.example.com/erp");
  EXPECT_EQ(r.Json().at("headers").as_object().size(), 2u);
  EXPECT_EQ(r.Json().at("description"), "ERP hook");
  r = Send("PATCH", sub, c1_key, R"({"enabled": true, "rateLimitPerSecond": null})");
  EXPECT_EQ(r.Json().at("enabled"), true);
  EXPECT_TRUE(r.Json().at("disabledReason").is_null());
  EXPECT_TRUE(r.Json().at("rateLimitPerSecond").is_null());

  r = Send("GET", sub + "/deliveries", c1_key);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(r.Json().at("data").as_array().empty());
  r = Send("GET", sub + "/deliveries?status=bogus", c1_key);
  EXPECT_EQ(r.status, 422);

  changes = subscription_changes_;
  EXPECT_EQ(Send("DELETE", sub, c1_key).status, 204);
  EXPECT_GT(subscription_changes_, changes);
  EXPECT_EQ(Send("GET", sub, c1_key).status, 404);
}

TEST_F(ServerTest, SubscriptionValidation) {
  auto [tenant_id, tenant_key] = NewTenant("Acme");
  auto [c1, key] = NewClient(tenant_key, "erp");
  auto post = [this, &key = key](const std::string& body) {
    return Send("POST", "/v1/subscriptions", key, body);
  };

  Reply r = post(R"({"url": "https://localhost/hook", "eventTypes": ["*"]})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.ErrorCode(), "url_not_allowed");
  r = post(R"({"url": "http://hooks.example.com/hook", "eventTypes": ["*"]})");
  EXPECT_EQ(r.ErrorCode(), "url_not_allowed");
  r = post(R"({"url": "https://10.0.0.7/hook", "eventTypes": ["*"]})");
  EXPECT_EQ(r.ErrorCode(), "url_not_allowed");
  r = post(R"({"url": "https://hooks.example.com/x", "eventTypes": ["target.imported", "nope"]})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.ErrorCode(), "unknown_event_type");
  EXPECT_EQ(r.Json().at("error").at("field"), "eventTypes[1]");
  r = post(R"({"url": "https://hooks.example.com/x", "eventTypes": []})");
  EXPECT_EQ(r.status, 422);
  r = post(R"({"url": "https://hooks.example.com/x", "eventTypes": ["*"],
               "options": {"includeEverything": true}})");
  EXPECT_EQ(r.ErrorCode(), "unknown_field");
  EXPECT_EQ(r.Json().at("error").at("field"), "options.includeEverything");
  r = post(R"({"url": "https://hooks.example.com/x", "eventTypes": ["*"],
               "headers": {"Content-Type": "text/plain"}})");
  EXPECT_EQ(r.ErrorCode(), "reserved_header");
  r = post(R"({"url": "https://hooks.example.com/x", "eventTypes": ["*"],
               "headers": {"webhook-signature": "x"}})");
  EXPECT_EQ(r.ErrorCode(), "reserved_header");
  r = post(R"({"url": "https://hooks.example.com/x", "eventTypes": ["*"], "maxConcurrency": 0,
               "rateLimitPerSecond": -1})");
  EXPECT_EQ(r.ErrorCode(), "validation_failed");
  EXPECT_EQ(r.Json().at("error").at("details").as_array().size(), 2u);
  EXPECT_TRUE(Send("GET", "/v1/subscriptions", key).Json().at("data").as_array().empty());
}

TEST_F(ServerTest, DirectoryNeverGivesBackNotesOrSecrets) {
  auto [tenant_id, key] = NewTenant("Acme");
  std::string customer =
      json::serialize(json::object{{"customerNumber", "RRM-001"},
                                   {"name", "Rhein-Ruhr Medical Supply"},
                                   {"internalNotes", kNotesMarker},
                                   {"externalIds", json::object{{"logistics_erp", "CUST-10042"}}}});
  Reply r = Send("PUT", "/v1/customers/12", key, customer);
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.Json().at("customerId").as_int64(), 12);
  EXPECT_FALSE(r.Json().as_object().contains("internalNotes"));
  r = Send("PUT", "/v1/customers/12", key, customer);
  EXPECT_EQ(r.status, 200);
  r = Send("GET", "/v1/customers/12", key);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Json().at("externalIds").at("logistics_erp"), "CUST-10042");

  std::string location = json::serialize(
      json::object{{"customerId", 12},
                   {"name", "Essen Center"},
                   {"accessSecret", kAccessMarker},
                   {"internalNotes", kNotesMarker},
                   {"externalIds", json::object{{"logistics_erp", "LOC-ESSEN-01"}}}});
  r = Send("PUT", "/v1/locations/34", key, location);
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(Send("GET", "/v1/locations/34", key).status, 200);

  r = Send(
      "PUT", "/v1/contacts/56", key,
      json::serialize(json::object{{"customerId", 12},
                                   {"displayName", "Anna Weber"},
                                   {"phone", "+49 201 1234"},
                                   {"internalNotes", kNotesMarker},
                                   {"externalIds", json::object{{"logistics_erp", "CONT-44"}}}}));
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(Send("GET", "/v1/contacts/56", key).Json().at("displayName"), "Anna Weber");

  r = Send("PUT", "/v1/locations/35", key,
           R"({"customerId": 999, "name": "Nowhere", "externalIds": {}})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.ErrorCode(), "unknown_reference");
  // A PUT replaces the record with its external ids: one without them is refused, not taken as
  // "none" (seen failing: 200, and the customer's ids gone, which broke the next import).
  r = Send("PUT", "/v1/customers/12", key, R"({"customerNumber": "RRM-001", "name": "Renamed"})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.ErrorCode(), "required");
  EXPECT_EQ(r.Json().at("error").at("field"), "externalIds");
  EXPECT_FALSE(Send("GET", "/v1/customers/12", key).Json().at("externalIds").as_object().empty());
  EXPECT_EQ(Send("GET", "/v1/locations/35", key).status, 404);
  r = Send("PUT", "/v1/customers/abc", key, customer);
  EXPECT_EQ(r.status, 400);
  r = Send("PUT", "/v1/customers/13", key, R"({"name": "No number"})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.Json().at("error").at("field"), "customerNumber");

  EXPECT_EQ(Send("DELETE", "/v1/contacts/56", key).status, 204);
  EXPECT_EQ(Send("GET", "/v1/contacts/56", key).status, 404);
  EXPECT_EQ(Send("DELETE", "/v1/contacts/56", key).status, 404);
}

TEST_F(ServerTest, ImportPublishAndReadBack) {
  auto [tenant_id, tenant_key] = NewTenant("Acme");
  auto [c1, c1_key] = NewClient(tenant_key, "logistics_erp");
  auto [c2, c2_key] = NewClient(tenant_key, "crm");
  ASSERT_EQ(Send("PUT", "/v1/customers/12", tenant_key,
                 R"({"customerNumber": "RRM-001", "name": "Rhein-Ruhr",
                     "externalIds": {"logistics_erp": "CUST-10042"}})")
                .status,
            201);
  Reply r = Send("POST", "/v1/subscriptions", c1_key,
                 R"({"url": "https://hooks.example.com/erp", "eventTypes": ["*"]})");
  ASSERT_EQ(r.status, 201);
  std::int64_t sub1 = r.Json().at("subscriptionId").as_int64();
  r = Send("POST", "/v1/subscriptions", c2_key,
           R"({"url": "https://hooks.example.com/crm", "eventTypes": ["*"]})");
  ASSERT_EQ(r.status, 201);

  std::string batch = json::serialize(
      json::object{{"targets", json::array{json::object{{"externalId", "DEL-1"},
                                                        {"customerExternalId", "CUST-10042"},
                                                        {"title", "Deliver"},
                                                        {"internalNotes", kNotesMarker}},
                                           json::object{{"externalId", "DEL-2"},
                                                        {"customerExternalId", "UNKNOWN"},
                                                        {"title", "Deliver"}}}}});
  r = Send("POST", "/v1/imports/targets", c1_key, batch);
  ASSERT_EQ(r.status, 200) << r.body;
  auto results = r.Json().at("results").as_array();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].at("result"), "imported");
  EXPECT_EQ(results[1].at("result"), "rejected");
  EXPECT_FALSE(results[1].at("errors").as_array().empty());
  std::int64_t target = results[0].at("targetId").as_int64();

  r = Send("GET", "/v1/targets/" + std::to_string(target), c2_key);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json().at("externalId"), "DEL-1");
  EXPECT_EQ(r.Json().at("sourceSystem"), "logistics_erp");
  r = Send("GET", "/v1/targets?externalId=DEL-1", c1_key);
  EXPECT_EQ(r.Json().at("data").as_array().size(), 1u) << r.body;
  r = Send("GET", "/v1/targets?status=Imported", c1_key);
  EXPECT_EQ(r.Json().at("data").as_array().size(), 1u) << r.body;
  // A status that no target can have is refused, not answered with an empty list (seen failing:
  // 200 with no targets for the wrong case).
  for (const char* bad : {"imported", "Bogus"}) {
    r = Send("GET", std::string("/v1/targets?status=") + bad, c1_key);
    EXPECT_EQ(r.status, 422) << bad;
    EXPECT_EQ(r.ErrorCode(), "invalid_status") << bad;
  }

  // The tenant adds the CRM's id; the importing system's id is fixed.
  r = Send("PATCH", "/v1/targets/" + std::to_string(target), tenant_key,
           R"({"externalIds": {"crm": "JOB-7"}})");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json().at("externalIds").at("crm"), "JOB-7");
  r = Send("PATCH", "/v1/targets/" + std::to_string(target), tenant_key,
           R"({"externalIds": {"logistics_erp": null}})");
  EXPECT_EQ(r.status, 422);

  // Publish with an idempotency key; the repeat answers the same.
  std::string event = json::serialize(json::object{
      {"eventType", "appointment.completed"},
      {"targetId", target},
      {"occurredAtUtc", "2026-06-25T14:31:00Z"},
      {"data", json::object{{"appointmentId", 441}, {"completedAtUtc", "2026-06-25T14:30:00Z"}}}});
  r = Send("POST", "/v1/events", tenant_key, event, {{"Idempotency-Key", "k-1"}});
  ASSERT_EQ(r.status, 202) << r.body;
  std::string event_id(r.Json().at("eventId").as_string());
  Reply again = Send("POST", "/v1/events", tenant_key, event, {{"Idempotency-Key", "k-1"}});
  EXPECT_EQ(again.status, 202);
  EXPECT_EQ(again.Json().at("eventId"), json::value(event_id));
  r = Send("POST", "/v1/events", tenant_key, event, {{"Idempotency-Key", std::string(256, 'k')}});
  EXPECT_EQ(r.status, 422);

  r = Send("GET", "/v1/events/" + event_id, c1_key);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json().at("event").at("eventType"), "appointment.completed");
  auto deliveries = r.Json().at("deliveries").as_array();
  ASSERT_EQ(deliveries.size(), 1u);  // only the client's own subscription
  EXPECT_EQ(deliveries[0].at("subscriptionId").as_int64(), sub1);
  EXPECT_EQ(deliveries[0].at("payload").at("eventId"), json::value(event_id));
  EXPECT_TRUE(deliveries[0].at("payload").at("deliveryId").is_null());
  EXPECT_EQ(deliveries[0].at("payload").at("data").at("externalId"), "DEL-1");
  r = Send("GET", "/v1/events/" + event_id, tenant_key);
  EXPECT_EQ(r.Json().at("deliveries").as_array().size(), 2u);

  r = Send("GET", "/v1/events?eventType=appointment.completed", tenant_key);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Json().at("data").as_array().size(), 1u);
  r = Send("GET", "/v1/events?eventType=no.such", tenant_key);
  EXPECT_EQ(r.ErrorCode(), "unknown_event_type");

  int due = deliveries_due_;
  // Held by this process (queued for sending, as a dispatcher would have it): left alone, and
  // the answer says why.
  r = Send("POST", "/v1/events/" + event_id + "/redeliver", c1_key, "");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(r.ErrorCode(), "delivery_in_flight");
  EXPECT_EQ(deliveries_due_, due);
  ReleaseSunk();
  r = Send("POST", "/v1/events/" + event_id + "/redeliver", c1_key, "");
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.Json().at("redelivered").as_int64(), 1);
  EXPECT_EQ(r.Json().at("inFlight").as_int64(), 0);
  EXPECT_GT(deliveries_due_, due);
  r = Send("POST", "/v1/events/evt_01JD5Z8Q2W3E4R5T6Y7V8X9Z0A/redeliver", c1_key, "");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(Send("GET", "/v1/events/evt_01JD5Z8Q2W3E4R5T6Y7V8X9Z0A", tenant_key).status, 404);
}

TEST_F(ServerTest, RotateSecretAndRecoverAreScoped) {
  auto [tenant_id, key] = NewTenant("Acme");
  Reply r = Send("POST", "/v1/subscriptions/1/rotate-secret", key);
  EXPECT_EQ(r.status, 404);
  r = Send("POST", "/v1/subscriptions/1/recover", key, R"({"sinceUtc":"2026-01-01T00:00:00Z"})");
  EXPECT_EQ(r.status, 404);
}

TEST_F(ServerTest, EventTypesCatalog) {
  auto [tenant_id, key] = NewTenant("Acme");
  Reply r = Send("GET", "/v1/event-types", key);
  ASSERT_EQ(r.status, 200);
  auto data = r.Json().at("data").as_array();
  ASSERT_EQ(data.size(), 13u);
  EXPECT_EQ(data[0].at("eventType"), "target.imported");
  EXPECT_EQ(data[0].at("eventVersion"), "v1");
  EXPECT_TRUE(data[0].at("schema").is_object());
}

TEST_F(ServerTest, SlowClientsAreDisconnected) {
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->Port()));
  std::string partial = "GET /healthz HTTP/1.1\r\nHost: x\r\n";  // never finished
  asio::write(socket, asio::buffer(partial));
  auto start = std::chrono::steady_clock::now();
  char buf[256];
  beast::error_code ec;
  socket.read_some(asio::buffer(buf), ec);  // returns when the server gives up (2 s here)
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(ec);
  EXPECT_LT(waited, std::chrono::seconds(10));
  EXPECT_EQ(Send("GET", "/healthz", "").status, 200);
}

TEST_F(ServerTest, ExpectContinueIsHonoured) {
  auto [tenant_id, key] = NewTenant("Acme");
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->Port()));
  std::string body = R"({"name": "ERP", "sourceSystem": "erp"})";
  std::string head = "POST /v1/clients HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
                     "\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
                     "Content-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n";
  asio::write(socket, asio::buffer(head));
  beast::flat_buffer buffer;
  http::response<http::empty_body> interim;
  http::read(socket, buffer, interim);
  EXPECT_EQ(interim.result_int(), 100u);
  asio::write(socket, asio::buffer(body));
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  EXPECT_EQ(res.result_int(), 201u) << res.body();
}

// The answer to HEAD has no body (RFC 9110 §9.3.2): the body of its 405 was sent, and a client
// on the same kept-alive connection read it as the start of the next answer. Found by
// fuzz/api_fuzz.cpp, whose raw mode reads back everything the server writes.
TEST_F(ServerTest, HeadIsAnsweredWithoutABody) {
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->Port()));
  beast::flat_buffer buffer;
  asio::write(socket, asio::buffer(std::string("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")));
  http::response_parser<http::string_body> head;
  head.skip(true);  // what a client does after HEAD: the body is not read
  beast::error_code ec;
  http::read(socket, buffer, head, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(head.get().result_int(), 405u);
  EXPECT_EQ(head.get()[http::field::allow], "GET");
  EXPECT_TRUE(head.get().keep_alive());

  asio::write(socket, asio::buffer(std::string("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")));
  http::response<http::string_body> next;
  http::read(socket, buffer, next, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(next.result_int(), 200u);
  EXPECT_EQ(next.body(), R"({"status":"ok"})");
}

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->Port()));
  beast::flat_buffer buffer;
  for (int i = 0; i < 3; ++i) {
    http::request<http::empty_body> req(http::verb::get, "/healthz", 11);
    req.set(http::field::host, "x");
    http::write(socket, req);
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_TRUE(res.keep_alive());
  }
}

// Shuts a client's socket down when its exchange takes longer than `limit`, so that a request the
// server never answers fails the test instead of blocking it for ever (a blocking read has no
// timeout of its own).
class ClientDeadline {
 public:
  ClientDeadline(tcp::socket& socket, std::chrono::seconds limit)
      : thread_([this, fd = socket.native_handle(), limit] {
          std::unique_lock lock(mu_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) ::shutdown(fd, SHUT_RDWR);
        }) {}
  ~ClientDeadline() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  ClientDeadline(const ClientDeadline&) = delete;
  ClientDeadline& operator=(const ClientDeadline&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: it uses the members above
};

// What a raw client reads of one answer: its status line and fields up to the blank line, then
// its body by Content-Length (none without one).
struct RawAnswer {
  std::string head;
  std::string body;
};
RawAnswer ReadRawAnswer(tcp::socket& socket, std::string& pending, bool to_head = false) {
  RawAnswer a;
  std::array<char, 4096> chunk{};
  auto fill = [&](std::size_t want) {
    while (pending.size() < want) {
      beast::error_code ec;
      const std::size_t n = socket.read_some(asio::buffer(chunk), ec);
      if (ec) return false;
      pending.append(chunk.data(), n);
    }
    return true;
  };
  std::size_t end = std::string::npos;
  while ((end = pending.find("\r\n\r\n")) == std::string::npos) {
    if (!fill(pending.size() + 1)) return a;
  }
  a.head = pending.substr(0, end + 4);
  pending.erase(0, end + 4);
  const std::size_t at = a.head.find("\r\nContent-Length: ");
  if (at != std::string::npos && !to_head) {
    const std::size_t length = std::stoul(a.head.substr(at + 18));
    if (fill(length)) a.body = pending.substr(0, length);
    pending.erase(0, std::min(length, pending.size()));
  }
  return a;
}

// The answers' heads as Beast's serializer wrote them before Session::Write wrote them itself
// (issue 8): the status line of the request's version, the fields, Connection as the version
// asks, Content-Length but for a 204; the connection then serves the next request, or is closed.
TEST_F(ServerTest, AnswerHeadsCarryTheirFieldsForEachVersion) {
  auto [tenant_id, key] = NewTenant("Acme");
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->Port()));
  const ClientDeadline deadline(socket, std::chrono::seconds(10));
  std::string pending;

  asio::write(socket, asio::buffer(std::string("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")));
  RawAnswer ok = ReadRawAnswer(socket, pending);
  EXPECT_EQ(ok.head,
            "HTTP/1.1 200 OK\r\nServer: outbound\r\nContent-Type: application/json\r\n"
            "Cache-Control: no-store\r\nContent-Length: 15\r\n\r\n");
  EXPECT_EQ(ok.body, R"({"status":"ok"})");

  // An answer's own fields follow; a 405 names what is allowed.
  asio::write(socket, asio::buffer(std::string("PUT /healthz HTTP/1.1\r\nHost: x\r\n\r\n")));
  RawAnswer not_allowed = ReadRawAnswer(socket, pending);
  EXPECT_EQ(not_allowed.head.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0u)
      << not_allowed.head;
  EXPECT_NE(not_allowed.head.find("\r\nAllow: GET\r\n"), std::string::npos) << not_allowed.head;
  EXPECT_NE(not_allowed.body.find("method_not_allowed"), std::string::npos) << not_allowed.body;

  // A 204 has no Content-Length and no body: the next answer on the connection reads whole.
  const std::int64_t client = NewClient(key, "erp").first;
  asio::write(socket, asio::buffer("DELETE /v1/clients/" + std::to_string(client) +
                                   " HTTP/1.1\r\nHost: x\r\n" + "Authorization: Bearer " + key +
                                   "\r\n\r\n"));
  RawAnswer deleted = ReadRawAnswer(socket, pending);
  EXPECT_EQ(deleted.head,
            "HTTP/1.1 204 No Content\r\nServer: outbound\r\nCache-Control: no-store\r\n\r\n");

  // HEAD: the head of the answer a GET would have, its Content-Length included, and no body:
  // the next answer on the connection reads whole.
  asio::write(socket, asio::buffer(std::string("HEAD /v1/events HTTP/1.1\r\nHost: x\r\n"
                                               "Authorization: Bearer " +
                                               key + "\r\n\r\n")));
  RawAnswer head = ReadRawAnswer(socket, pending, /*to_head=*/true);
  EXPECT_EQ(head.head.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0u) << head.head;
  EXPECT_NE(head.head.find("\r\nContent-Length: "), std::string::npos) << head.head;
  EXPECT_EQ(head.head.find("\r\nContent-Length: 0\r\n"), std::string::npos) << head.head;

  // HTTP/1.0 asking to be kept alive: answered in 1.0, and kept alive.
  asio::write(socket, asio::buffer(std::string(
                          "GET /healthz HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")));
  RawAnswer old = ReadRawAnswer(socket, pending);
  EXPECT_EQ(old.head,
            "HTTP/1.0 200 OK\r\nServer: outbound\r\nContent-Type: application/json\r\n"
            "Cache-Control: no-store\r\nConnection: keep-alive\r\nContent-Length: 15\r\n\r\n");

  // HTTP/1.1 asking to close: told so, and the connection ends after the answer.
  asio::write(
      socket,
      asio::buffer(std::string("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")));
  RawAnswer last = ReadRawAnswer(socket, pending);
  EXPECT_EQ(last.head,
            "HTTP/1.1 200 OK\r\nServer: outbound\r\nContent-Type: application/json\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\nContent-Length: 15\r\n\r\n");
  EXPECT_EQ(last.body, R"({"status":"ok"})");
  std::array<char, 16> more{};
  beast::error_code ec;
  socket.read_some(asio::buffer(more), ec);
  EXPECT_EQ(ec, asio::error::eof);

  // HTTP/1.0 without keep-alive: no Connection field, and the connection ends after the answer.
  tcp::socket old_client(ioc);
  old_client.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->Port()));
  const ClientDeadline old_deadline(old_client, std::chrono::seconds(10));
  std::string old_pending;
  asio::write(old_client, asio::buffer(std::string("GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")));
  RawAnswer plain = ReadRawAnswer(old_client, old_pending);
  EXPECT_EQ(plain.head,
            "HTTP/1.0 200 OK\r\nServer: outbound\r\nContent-Type: application/json\r\n"
            "Cache-Control: no-store\r\nContent-Length: 15\r\n\r\n");
  old_client.read_some(asio::buffer(more), ec);
  EXPECT_EQ(ec, asio::error::eof);
}

// Requests sent back to back before any answer (HTTP/1.1 pipelining) are answered in order: the
// requests after the first are parsed from what a read left in the buffer, not waited for. The
// three (over 1 KB, past the 512 bytes a read used to take) usually arrive in one read now that
// the buffer has room for 4 KB from the start. (Fails with the leftover dropped: the second
// answer never comes, and the fixture's 2 s request timeout closes the connection.)
TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  const std::string key = NewTenant("Acme").second;
  const std::string body = R"({"eventType":"appointment.started","targetId":424242,)"
                           R"("occurredAtUtc":"2026-06-25T14:31:00Z","data":{"appointmentId":1,)"
                           R"("startedAtUtc":"2026-06-25T14:02:00Z"}})";
  std::string wire;
  wire += "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(600, 'p') + "\r\n\r\n";
  wire += "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
          "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
          "\r\n\r\n" + body;
  wire += "GET /v1/events?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key + "\r\n\r\n";
  ASSERT_GT(wire.size(), 1024u);
  ASSERT_LT(wire.size(), 4096u);  // one read can take them all

  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->Port()));
  const ClientDeadline deadline(socket, std::chrono::seconds(10));
  asio::write(socket, asio::buffer(wire));
  beast::flat_buffer buffer;
  std::vector<http::response<http::string_body>> answers(3);
  for (auto& res : answers) {
    beast::error_code ec;
    http::read(socket, buffer, res, ec);
    ASSERT_FALSE(ec) << ec.message();
  }
  EXPECT_EQ(answers[0].result_int(), 200u) << answers[0].body();
  EXPECT_EQ(answers[1].result_int(), 404u) << answers[1].body();  // the target is unknown
  EXPECT_NE(answers[1].body().find("target_not_found"), std::string::npos) << answers[1].body();
  EXPECT_EQ(answers[2].result_int(), 200u) << answers[2].body();
}

// With several I/O threads each connection runs on a strand of its own (ServerImpl::Accept);
// nothing configures more than one today, so this is where that branch runs: connections on
// both threads at once, each with requests one after another, answered from a handler thread
// (a key not yet cached), from the I/O thread and from a commit. It fails on a crash, a hang or
// a wrong answer; a strand left out would be a data race that only a ThreadSanitizer build
// would show (a connection has one operation at a time, besides its timer).
TEST_F(ServerTest, SeveralIoThreadsServeConnectionsAtOnce) {
  const std::string key = NewTenant("Acme").second;
  server_->Stop();
  ApiOptions options;
  options.listen = "127.0.0.1:0";
  options.operator_token = kOperatorToken;
  options.handler_threads = 2;
  options.io_threads = 2;
  auto server = Server::Create(options, *store_, *ingest_, clock_, ids_, {});
  ASSERT_TRUE(server) << server.error().message;
  server_ = std::move(*server);
  ASSERT_TRUE(server_->Start());
  const std::string event = R"({"eventType":"appointment.started","targetId":424242,)"
                            R"("occurredAtUtc":"2026-06-25T14:31:00Z","data":{"appointmentId":1,)"
                            R"("startedAtUtc":"2026-06-25T14:02:00Z"}})";
  constexpr int kConnections = 6;
  constexpr int kRounds = 15;
  std::vector<std::future<std::string>> clients;
  clients.reserve(kConnections);
  for (int c = 0; c < kConnections; ++c) {
    clients.push_back(std::async(std::launch::async, [this, key = key, event]() -> std::string {
      asio::io_context ioc;
      tcp::socket socket(ioc);
      socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->Port()));
      const ClientDeadline deadline(socket, std::chrono::seconds(20));
      beast::flat_buffer buffer;
      for (int i = 0; i < kRounds; ++i) {
        const bool publish = i % 3 != 0;
        http::request<http::string_body> req(publish ? http::verb::post : http::verb::get,
                                             publish ? "/v1/events" : "/v1/events?limit=1", 11);
        req.set(http::field::host, "x");
        req.set(http::field::authorization, "Bearer " + key);
        if (publish) {
          req.set(http::field::content_type, "application/json");
          req.body() = event;
        }
        req.prepare_payload();
        beast::error_code ec;
        http::write(socket, req, ec);
        if (ec) return "write: " + ec.message();
        http::response<http::string_body> res;
        http::read(socket, buffer, res, ec);
        if (ec) return "read: " + ec.message();
        const unsigned want = publish ? 404u : 200u;
        if (res.result_int() != want || !res.keep_alive()) {
          return "round " + std::to_string(i) + ": " + std::to_string(res.result_int()) + " " +
                 res.body();
        }
      }
      return "";
    }));
  }
  for (auto& c : clients) EXPECT_EQ(c.get(), "");  // each bounded by its ClientDeadline
}

}  // namespace
}  // namespace outbound::api
