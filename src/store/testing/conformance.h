// The Store conformance suite: every backend runs the same tests through the Store interface.
// The tests (conformance.cpp) are an object library; each backend's test executable
// instantiates them with its Backend (sqlite/sqlite_store_test.cpp, postgres/pg_store_test.cpp):
//   INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformance, ::testing::Values(MyBackend()));
// Tests about one backend's own promises live beside that backend.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/ids.h"
#include "store/store.h"

namespace outbound::store::testing {

using core::ErrorKind;
using core::EventType;
using core::Result;
using core::Status;

// --- backends ---

struct OpenOptions {
  std::size_t max_queue = 100000;
  std::size_t max_batch = 512;
  // --secrets-key NEW,OLD,...; empty: the backend's usual key.
  std::vector<std::string> secrets_keys;
  // One transaction at a time (tests that hold the writer to fill the queue).
  bool single_writer = false;
};

struct Backend {
  std::string name;
  // Several processes may share the database (subscription ownership, store.h).
  bool shared = false;
  // Opens the store kept in `dir` (a fresh temporary directory per test; opening it again
  // after Close reopens the same data: a backend that keeps its data elsewhere derives the
  // place from `dir`).
  std::function<core::Result<std::unique_ptr<Store>>(const std::string& dir, OpenOptions)> open;
  // Runs one SQL statement on the data kept in `dir`, beside the store (tests of how rows are
  // stored, or that write a row as an older version did); answers the first column of the first
  // row as an integer, 0 without one.
  std::function<core::Result<std::int64_t>(const std::string& dir, const std::string& sql)> sql;
};

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "outbound-store-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// --- fixture ---

// The lease owner that Publish inserts deliveries for.
inline constexpr const char* kPublisher = "test-owner";

inline constexpr UnixMs kT0 = 1'780'000'000'000;  // 2026-05-28

// The first attempt of `job` (leased), made at `at` and answered `http_status`; the caller sets
// what it came to (new_status, next_attempt_at, error).
inline Outcome FirstAttempt(core::UlidGenerator& ids, const DeliveryJob& job, UnixMs at,
                            int http_status) {
  Outcome o;
  o.delivery = job.id;
  o.tenant = job.tenant;
  o.subscription = job.subscription;
  o.event_id = job.event_id;
  o.attempt.delivery_id = "del_" + ids.Next(at);
  o.attempt.attempt = 1;
  o.attempt.attempted_at = at;
  o.attempt.http_status = http_status;
  return o;
}

// A target of `tenant` to insert, imported by `client` of `source_system` as `external_id`, of
// customer 1, status "Imported", created at kT0.
inline Target TargetRow(TenantId tenant, ClientId client, const std::string& source_system,
                        const std::string& external_id) {
  Target t;
  t.tenant = tenant;
  t.import_client = client;
  t.source_system = source_system;
  t.external_id = external_id;
  t.customer_id = 1;
  t.title = "Fix";
  t.status = "Imported";
  t.created_at = kT0;
  t.updated_at = kT0;
  return t;
}

// In `tenant`: customer 1 ("Bakery", C-1, erp id K-1, internal notes), its location 2 ("Shop",
// an access secret) and its contact 3 ("Ana", a phone number), for targets to refer to. Every
// field is named (designated initializers): a field added to the model warns here.
struct SampleRecords {
  Customer customer;
  Location location;
  Contact contact;
};
inline SampleRecords SampleDirectory(TenantId tenant) {
  return SampleRecords{Customer{.tenant = tenant,
                                .id = 1,
                                .customer_number = "C-1",
                                .name = "Bakery",
                                .internal_notes = "secret notes",
                                .external_ids = {{"erp", "K-1"}}},
                       Location{.tenant = tenant,
                                .id = 2,
                                .customer_id = 1,
                                .name = "Shop",
                                .address = std::nullopt,
                                .access_secret = "door code",
                                .internal_notes = std::nullopt,
                                .external_ids = {}},
                       Contact{.tenant = tenant,
                               .id = 3,
                               .customer_id = 1,
                               .display_name = "Ana",
                               .phone = "+49",
                               .email = std::nullopt,
                               .internal_notes = std::nullopt,
                               .external_ids = {}}};
}

class StoreConformance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { Open(); }
  void TearDown() override {
    if (store_) store_->Close();
  }

  void Open(OpenOptions o = {}) {
    auto s = GetParam().open(dir_.path(), std::move(o));
    ASSERT_TRUE(s.has_value()) << s.error().message;
    store_ = std::move(*s);
  }
  void Reopen(OpenOptions o = {}) {
    store_->Close();
    store_.reset();
    Open(std::move(o));
  }

  // Runs fn in a write transaction and expects it to commit.
  void W(const std::function<void(Txn&)>& fn) {
    auto st = store_->Write([&](Txn& tx) -> Status {
      fn(tx);
      return {};
    });
    ASSERT_TRUE(st.has_value()) << st.error().message;
  }
  void R(const std::function<void(Txn&)>& fn) {
    auto st = store_->Read([&](Txn& tx) -> Status {
      fn(tx);
      return {};
    });
    ASSERT_TRUE(st.has_value()) << st.error().message;
  }

  TenantId NewTenant(const std::string& name = "acme") {
    TenantId id;
    W([&](Txn& tx) { id = tx.CreateTenant(name, kT0).value().id; });
    return id;
  }
  Client NewClient(TenantId tenant, const std::string& system = "logistics_erp") {
    Client c;
    c.tenant = tenant;
    c.name = "client " + system;
    c.source_system = system;
    c.created_at = kT0;
    W([&](Txn& tx) { c = tx.CreateClient(c).value(); });
    return c;
  }
  Subscription NewSubscription(TenantId tenant, ClientId client, bool enabled = true) {
    Subscription s;
    s.tenant = tenant;
    s.client = client;
    s.url = "https://receiver.example/hook";
    s.event_types = {"appointment.*", "target.imported"};
    s.options.include_summary_preview = true;
    s.ordered = true;
    s.enabled = enabled;
    s.description = "test";
    s.rate_limit_per_second = 12.5;
    s.max_concurrency = 3;
    s.headers = {{"Authorization", "Bearer receiver-token"}, {"X-Env", "test"}};
    s.secret = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0";
    s.created_at = kT0;
    s.updated_at = kT0;
    W([&](Txn& tx) { s = tx.CreateSubscription(s).value(); });
    return s;
  }
  // NewSubscription, then made unordered (UpdateSubscription): its deliveries go out in parallel.
  Subscription NewUnorderedSubscription(TenantId tenant, ClientId client) {
    Subscription s = NewSubscription(tenant, client);
    s.ordered = false;
    W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(s).has_value()); });
    return s;
  }
  // SampleDirectory(tenant), stored.
  void NewCustomerLocationContact(TenantId tenant) {
    const SampleRecords d = SampleDirectory(tenant);
    W([&](Txn& tx) {
      ASSERT_TRUE(tx.UpsertCustomer(d.customer).has_value());
      ASSERT_TRUE(tx.UpsertLocation(d.location).has_value());
      ASSERT_TRUE(tx.UpsertContact(d.contact).has_value());
    });
  }
  StoredEvent MakeEvent(TenantId tenant, std::optional<std::int64_t> target, UnixMs accepted,
                        EventType type = EventType::kAppointmentCompleted) {
    StoredEvent e;
    e.record.event_id = "evt_" + ids_.Next(accepted);
    e.record.type = type;
    e.record.tenant = tenant;
    e.record.occurred_at = accepted - 1000;
    e.record.accepted_at = accepted;
    e.record.target_id = target;
    e.record.data = {{"appointmentId", 441}, {"completedAtUtc", "2026-06-25T14:31:00Z"}};
    return e;
  }
  // An event with one delivery per subscription, inserted leased by `owner`.
  std::vector<DeliveryJob> Publish(const StoredEvent& e, const std::vector<SubscriptionId>& subs,
                                   const std::string& owner = kPublisher,
                                   UnixMs lease_until = kT0 + 60'000) {
    std::vector<DeliveryJob> jobs;
    W([&](Txn& tx) {
      ASSERT_TRUE(tx.InsertEvent(e).has_value());
      std::vector<NewDelivery> rows;
      rows.reserve(subs.size());
      for (auto sub : subs) {
        rows.push_back(NewDelivery{e.record.tenant, e.record.event_id, sub,
                                   R"({"targetId":1,"sub":)" + std::to_string(sub.value) + "}",
                                   e.record.accepted_at});
      }
      auto r = tx.InsertDeliveries(rows, owner, e.record.accepted_at, lease_until);
      ASSERT_TRUE(r.has_value()) << r.error().message;
      jobs = *r;
    });
    return jobs;
  }
  Outcome MakeOutcome(const DeliveryJob& job, DeliveryStatus status, UnixMs at,
                      std::optional<UnixMs> next = std::nullopt, int attempt = 1) {
    Outcome o = FirstAttempt(ids_, job, at, status == DeliveryStatus::kSucceeded ? 200 : 500);
    o.attempt.attempt = attempt;
    o.attempt.duration_ms = 12;
    if (status != DeliveryStatus::kSucceeded) o.attempt.error = "http_500";
    o.attempt.response_snippet = "ok";
    o.new_status = status;
    o.next_attempt_at = next;
    return o;
  }
  std::optional<Subscription> GetSub(TenantId t, SubscriptionId id) {
    std::optional<Subscription> s;
    R([&](Txn& tx) { s = tx.GetSubscription(t, id).value(); });
    return s;
  }
  // Backend::sql on this test's data; a failure fails the test.
  std::int64_t Sql(const std::string& sql) {
    auto r = GetParam().sql(dir_.path(), sql);
    EXPECT_TRUE(r.has_value()) << sql << ": " << r.error().message;
    return r.value_or(0);
  }
  std::vector<DeliveryView> Deliveries(TenantId t, const std::string& event_id,
                                       std::optional<ClientId> client = std::nullopt) {
    std::vector<DeliveryView> v;
    R([&](Txn& tx) { v = tx.GetDeliveries(t, event_id, client).value(); });
    return v;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  core::UlidGenerator ids_;
};

}  // namespace outbound::store::testing
