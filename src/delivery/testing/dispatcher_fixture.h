// The dispatcher's test fixture: a SQLite store in a temporary directory with one tenant and
// client, subscriptions and events made to order, and a dispatcher started on the real or fake
// clocks. Header-only, for test executables.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/signing.h"
#include "core/testing/fakes.h"
#include "delivery/dispatcher.h"
#include "delivery/testing/receiver.h"
#include "store/sqlite/sqlite_store.h"

namespace outbound::delivery::testing {

using core::UnixMs;

inline core::RetryPolicy Schedule(const char* text) {
  auto p = core::RetryPolicy::Parse(text, 0.0);
  EXPECT_TRUE(p.has_value());
  return *p;
}

inline std::string ImfDate(UnixMs ms) {
  std::time_t t = ms / 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() /
           ("outbound-delivery-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
    store::SqliteOptions o;
    o.path = (dir_ / "outbound.db").string();
    auto s = store::OpenSqlite(o);
    ASSERT_TRUE(s.has_value()) << s.error().message;
    store_ = std::move(*s);
    auto st = store_->Write([&](store::Txn& txn) -> core::Status {
      auto tenant = txn.CreateTenant("acme", 1000);
      if (!tenant) return core::Fail(tenant.error());
      tenant_ = tenant->id;
      store::Client c;
      c.tenant = tenant_;
      c.name = "erp";
      c.source_system = "logistics_erp";
      auto client = txn.CreateClient(c);
      if (!client) return core::Fail(client.error());
      client_ = client->id;
      return {};
    });
    ASSERT_TRUE(st.has_value()) << st.error().message;
  }

  void TearDown() override {
    dispatcher_.reset();
    if (store_) store_->Close();
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  struct Sub {
    core::SubscriptionId id;
    std::string secret;
  };

  Sub AddSubscription(const std::string& url, std::optional<int> max_concurrency = std::nullopt,
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
    store::Subscription s;
    s.tenant = tenant_;
    s.client = client_;
    s.url = url;
    s.event_types = {"*"};
    s.secret = core::NewSecret();
    s.max_concurrency = max_concurrency;
    s.headers = std::move(headers);
    Sub out;
    auto st = store_->Write([&](store::Txn& txn) -> core::Status {
      auto r = txn.CreateSubscription(s);
      if (!r) return core::Fail(r.error());
      out.id = r->id;
      return {};
    });
    EXPECT_TRUE(st.has_value()) << st.error().message;
    out.secret = s.secret;
    return out;
  }

  // One event with one delivery per subscription, leased to this process (as fan-out does).
  std::pair<std::string, std::vector<store::DeliveryJob>> AddEvent(
      const std::vector<core::SubscriptionId>& subs, bool leased = true,
      const std::string& data = R"({"targetId":991,"externalId":"DEL-1","sourceSystem":)"
                                R"("logistics_erp","appointmentId":441,"status":"Completed"})") {
    const std::string event_id = "evt_" + ulids_.Next(clock_now());
    std::vector<store::DeliveryJob> jobs;
    auto st = store_->Write([&](store::Txn& txn) -> core::Status {
      store::StoredEvent e;
      e.record.event_id = event_id;
      e.record.type = core::EventType::kAppointmentCompleted;
      e.record.tenant = tenant_;
      e.record.occurred_at = 1782397860000;  // 2026-06-25T14:31:00Z
      e.record.accepted_at = clock_now();
      e.record.target_id = 991;
      if (auto s = txn.InsertEvent(e); !s) return s;
      std::vector<store::NewDelivery> rows;
      rows.reserve(subs.size());
      for (auto sub : subs) {
        rows.push_back({tenant_, event_id, sub, data, clock_now()});
      }
      auto r = txn.InsertDeliveries(rows, store_->Owner(), clock_now(), clock_now() + 60000);
      if (!r) return core::Fail(r.error());
      jobs = std::move(*r);
      if (!leased) {
        std::vector<core::DeliveryRowId> ids;
        ids.reserve(jobs.size());
        for (auto& j : jobs) ids.push_back(j.id);
        if (auto s = txn.ReleaseLeases(store_->Owner(), ids); !s) return core::Fail(s.error());
      }
      return {};
    });
    EXPECT_TRUE(st.has_value()) << st.error().message;
    return {event_id, jobs};
  }

  // The database as another connection sees it: the first column of the first row, or how
  // many rows the statement changed.
  std::string Sql(const std::string& statement) {
    sqlite3* db = nullptr;
    std::string out = "(failed)";
    if (sqlite3_open((dir_ / "outbound.db").c_str(), &db) == SQLITE_OK) {
      sqlite3_busy_timeout(db, 10'000);
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(db, statement.c_str(), -1, &stmt, nullptr) == SQLITE_OK) {
        const int rc = sqlite3_step(stmt);
        const unsigned char* text = rc == SQLITE_ROW ? sqlite3_column_text(stmt, 0) : nullptr;
        if (text != nullptr) out = reinterpret_cast<const char*>(text);
        if (rc == SQLITE_DONE) out = std::to_string(sqlite3_changes(db));
      }
      sqlite3_finalize(stmt);
    }
    sqlite3_close(db);
    return out;
  }

  std::vector<store::DeliveryView> Deliveries(const std::string& event_id) {
    std::vector<store::DeliveryView> out;
    auto st = store_->Read([&](store::Txn& txn) -> core::Status {
      auto r = txn.GetDeliveries(tenant_, event_id, std::nullopt);
      if (!r) return core::Fail(r.error());
      out = std::move(*r);
      return {};
    });
    EXPECT_TRUE(st.has_value()) << st.error().message;
    return out;
  }

  // Waits until the event's single delivery has `status` and at least `attempts` attempts.
  std::optional<store::DeliveryView> WaitForDelivery(const std::string& event_id,
                                                     store::DeliveryStatus status,
                                                     std::size_t attempts = 1,
                                                     std::chrono::milliseconds timeout = 15s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto views = Deliveries(event_id);
      if (views.size() == 1 && views[0].status == status && views[0].attempts.size() >= attempts) {
        return views[0];
      }
      std::this_thread::sleep_for(20ms);
    }
    auto views = Deliveries(event_id);
    if (!views.empty()) {
      ADD_FAILURE() << "delivery status " << store::ToString(views[0].status) << " with "
                    << views[0].attempts.size() << " attempts";
    }
    return std::nullopt;
  }

  Dispatcher& StartDispatcher(DispatcherOptions options, const core::Clock* clock = nullptr) {
    auto d = Dispatcher::Create(*store_, clock ? *clock : system_clock_, std::move(options));
    EXPECT_TRUE(d.has_value());
    dispatcher_ = std::move(*d);
    dispatcher_->Start();
    return *dispatcher_;
  }

  // A long lane whose endpoint is answering while the dispatcher is down to the short lanes'
  // reserve (issue 8): starts a dispatcher with max_queued 20 (the claims' share is 18; a lane of
  // 1 and more is long beyond it), stores `count` deliveries for `sub` (leased to it, so no claim
  // takes them), offers two more and waits until `receiver` has answered the first (`sub` must
  // send one request at a time: maxConcurrency 1). Returns the stored deliveries, to be offered
  // while the lane's success is recent; a test checks HasFailure() after it.
  std::vector<store::DeliveryJob> StartWithAnsweringLongLane(Receiver& receiver,
                                                             core::SubscriptionId sub, int count) {
    DispatcherOptions o = LocalOptions();
    o.max_queued = 20;
    o.max_queued_per_subscription = 1000;
    Dispatcher& d = StartDispatcher(o);
    std::vector<store::DeliveryJob> jobs;
    for (int i = 0; i < count; ++i) {
      for (auto& j : AddEvent({sub}).second) jobs.push_back(std::move(j));
    }
    d.Offer(AddEvent({sub}).second);
    d.Offer(AddEvent({sub}).second);
    EXPECT_TRUE(receiver.WaitForCount(2, std::chrono::seconds(5)));
    return jobs;
  }

  // Pending rows given back (unleased) due after `from` and before `to`, once there are `want`
  // of them or after 3 s.
  int WaitForRowsGivenBackDue(core::UnixMs from, core::UnixMs to, int want) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    int n = 0;
    while (n < want && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      n = std::stoi(
          Sql("SELECT COUNT(*) FROM deliveries WHERE lease_owner IS NULL AND status = 'pending' "
              "AND next_attempt_at > " +
              std::to_string(from) + " AND next_attempt_at < " + std::to_string(to)));
    }
    return n;
  }

  // Rows (any status) due after `t`: a deferral by 5 s shows here.
  int RowsDueAfter(core::UnixMs t) {
    return std::stoi(
        Sql("SELECT COUNT(*) FROM deliveries WHERE next_attempt_at > " + std::to_string(t)));
  }

  // With steady time and randomness that the test steps: fake_steady_, fake_random_.
  Dispatcher& StartDispatcherWithFakes(DispatcherOptions options,
                                       const core::Clock* clock = nullptr) {
    auto d = Dispatcher::Create(*store_, clock ? *clock : system_clock_, fake_steady_, fake_random_,
                                std::move(options));
    EXPECT_TRUE(d.has_value());
    dispatcher_ = std::move(*d);
    dispatcher_->Start();
    return *dispatcher_;
  }

  static DispatcherOptions LocalOptions(const char* schedule = "0s,100ms,100ms") {
    DispatcherOptions o;
    o.retry = Schedule(schedule);
    o.allow_private_networks = true;
    o.request_timeout_ms = 5000;
    o.claim_interval_ms = 50;
    return o;
  }

  // The response body stored for the one attempt at a receiver that answers 500 `body`.
  std::string StoredSnippet(const std::string& body) {
    Receiver bad([&](const Received&) { return Reply{500, body, {}, false}; });
    Sub s = AddSubscription(bad.Url());
    auto [e, jobs] = AddEvent({s.id});
    StartDispatcher(LocalOptions("0s")).Offer(jobs);
    auto v = WaitForDelivery(e, store::DeliveryStatus::kDead);
    if (!v || v->attempts.empty()) return "<no attempt>";
    return v->attempts[0].response_snippet.value_or("");
  }

  UnixMs clock_now() const { return fake_ ? fake_->Now() : system_clock_.Now(); }

  std::filesystem::path dir_;
  core::SystemClock system_clock_;
  core::testing::FakeClock fake_clock_{1'800'000'000'000};  // whole seconds; where a test says so
  core::testing::FakeMonotonicClock fake_steady_;           // StartDispatcherWithFakes
  core::testing::FakeRandom fake_random_{0.5};              // StartDispatcherWithFakes
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Dispatcher> dispatcher_;  // declared after store_ and the clocks: gone first
  core::testing::FakeClock* fake_ = nullptr;
  core::UlidGenerator ulids_;
  core::TenantId tenant_;
  core::ClientId client_;
};

inline void ExpectSigned(const Received& r, const std::string& secret,
                         const std::string& event_id) {
  ASSERT_EQ(r.headers.count("webhook-signature"), 1u);
  const std::string& ts = r.headers.at("webhook-timestamp");
  auto key = core::DecodeSecret(secret);
  ASSERT_TRUE(key.has_value());
  const std::string expected = core::Sign(*key, event_id, std::stoll(ts), r.body);
  EXPECT_EQ(r.headers.at("webhook-signature"), expected);
}

}  // namespace outbound::delivery::testing
