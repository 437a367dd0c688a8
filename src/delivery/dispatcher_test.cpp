// The dispatcher against a real HTTP receiver on 127.0.0.1 and a real SQLite store.
#include "delivery/dispatcher.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/signing.h"
#include "delivery/internal/http_util.h"
#include "store/sqlite/sqlite_store.h"

namespace outbound::delivery {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
using boost::asio::ip::tcp;
using core::UnixMs;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// A small HTTP/1.1 receiver: keep-alive, one thread per connection, a scripted reply per request.

struct Received {
  std::string target;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  int index = 0;  // 0-based arrival order
};

struct Reply {
  int status = 200;
  std::string body = "ok";
  std::vector<std::pair<std::string, std::string>> headers;
  bool hang = false;  // never answer (until the receiver stops)
};

class Receiver {
 public:
  using Script = std::function<Reply(const Received&)>;

  explicit Receiver(Script script = [](const Received&) { return Reply{}; })
      : script_(std::move(script)), acceptor_(ioc_) {
    std::signal(SIGPIPE, SIG_IGN);
    tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~Receiver() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    cv_.notify_all();
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    accept_thread_.join();
    for (auto& t : conn_threads_) t.join();
  }

  std::string Url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int port() const { return port_; }

  std::vector<Received> Requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::size_t Count() {
    std::lock_guard lock(mu_);
    return requests_.size();
  }
  bool WaitForCount(std::size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
  }

 private:
  void AcceptLoop() {
    while (true) {
      boost::system::error_code ec;
      tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      std::lock_guard lock(mu_);
      if (ec || stopping_) return;
      fds_.push_back(socket.native_handle());
      conn_threads_.emplace_back(
          [this, s = std::make_shared<tcp::socket>(std::move(socket))]() mutable { Serve(*s); });
    }
  }

  void Serve(tcp::socket& socket) {
    beast::flat_buffer buffer;
    while (true) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(16 * 1024 * 1024);
      boost::system::error_code ec;
      http::read(socket, buffer, parser, ec);
      if (ec) return;
      auto& req = parser.get();
      Received r;
      r.target = std::string(req.target());
      for (const auto& field : req) {
        std::string name(field.name_string());
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers[name] = std::string(field.value());
      }
      r.body = req.body();
      {
        std::lock_guard lock(mu_);
        r.index = static_cast<int>(requests_.size());
        requests_.push_back(r);
      }
      cv_.notify_all();
      Reply reply = script_(r);
      if (reply.hang) {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_; });
        return;
      }
      http::response<http::string_body> res{static_cast<http::status>(reply.status), 11};
      res.set(http::field::content_type, "text/plain");
      for (const auto& [k, v] : reply.headers) res.set(k, v);
      res.body() = reply.body;
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      http::write(socket, res, ec);
      if (ec || !req.keep_alive()) return;
    }
  }

  Script script_;
  boost::asio::io_context ioc_;
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::thread accept_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                  // guarded by mu_
  std::vector<int> fds_;                   // guarded by mu_
  std::vector<std::thread> conn_threads_;  // guarded by mu_ (joined after the accept thread)
  std::vector<Received> requests_;         // guarded by mu_
};

// ---------------------------------------------------------------------------------------------

class FakeClock final : public core::Clock {
 public:
  explicit FakeClock(UnixMs now) : now_(now) {}
  UnixMs Now() const override { return now_.load(); }
  void Set(UnixMs now) { now_.store(now); }
  void Advance(UnixMs ms) { now_.fetch_add(ms); }

 private:
  std::atomic<UnixMs> now_;
};

core::RetryPolicy Schedule(const char* text) {
  auto p = core::RetryPolicy::Parse(text, 0.0);
  EXPECT_TRUE(p.has_value());
  return *p;
}

std::string ImfDate(UnixMs ms) {
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
      const std::vector<core::SubscriptionId>& subs, bool leased = true) {
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
      for (auto sub : subs) {
        rows.push_back({tenant_, event_id, sub,
                        R"({"targetId":991,"externalId":"DEL-1","sourceSystem":"logistics_erp",)"
                        R"("appointmentId":441,"status":"Completed"})",
                        clock_now()});
      }
      auto r = txn.InsertDeliveries(rows, store_->Owner(), clock_now(), clock_now() + 60000);
      if (!r) return core::Fail(r.error());
      jobs = std::move(*r);
      if (!leased) {
        std::vector<core::DeliveryRowId> ids;
        for (auto& j : jobs) ids.push_back(j.id);
        if (auto s = txn.ReleaseLeases(store_->Owner(), ids); !s) return core::Fail(s.error());
      }
      return {};
    });
    EXPECT_TRUE(st.has_value()) << st.error().message;
    return {event_id, jobs};
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
  FakeClock fake_clock_{1'800'000'000'000};  // whole seconds; used where a test says so
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Dispatcher> dispatcher_;  // declared after store_ and the clocks: gone first
  FakeClock* fake_ = nullptr;
  core::UlidGenerator ulids_;
  core::TenantId tenant_;
  core::ClientId client_;
};

void ExpectSigned(const Received& r, const std::string& secret, const std::string& event_id) {
  ASSERT_EQ(r.headers.count("webhook-signature"), 1u);
  const std::string& ts = r.headers.at("webhook-timestamp");
  auto key = core::DecodeSecret(secret);
  ASSERT_TRUE(key.has_value());
  const std::string expected = core::Sign(*key, event_id, std::stoll(ts), r.body);
  EXPECT_EQ(r.headers.at("webhook-signature"), expected);
}

TEST_F(DispatcherTest, SendsSignedStandardWebhook) {
  Receiver rx;
  Sub sub = AddSubscription(rx.Url(), std::nullopt, {{"Authorization", "Bearer receiver-token"}});
  auto [event_id, jobs] = AddEvent({sub.id});
  ASSERT_EQ(jobs.size(), 1u);
  Dispatcher& d = StartDispatcher(LocalOptions());
  d.Offer(jobs);

  auto view = WaitForDelivery(event_id, store::DeliveryStatus::kSucceeded);
  ASSERT_TRUE(view.has_value());
  ASSERT_EQ(rx.Count(), 1u);
  const Received r = rx.Requests()[0];
  EXPECT_EQ(r.target, "/hook");
  EXPECT_EQ(r.headers.at("content-type"), "application/json");
  EXPECT_EQ(r.headers.at("webhook-id"), event_id);
  EXPECT_EQ(r.headers.at("ordinavo-event-type"), "appointment.completed");
  EXPECT_EQ(r.headers.at("ordinavo-attempt"), "1");
  EXPECT_EQ(r.headers.at("authorization"), "Bearer receiver-token");
  EXPECT_NE(r.headers.at("user-agent").find("Outbound"), std::string::npos);
  EXPECT_EQ(r.headers.count("expect"), 0u);
  const UnixMs ts = std::stoll(r.headers.at("webhook-timestamp"));
  EXPECT_LE(std::abs(ts - system_clock_.Now() / 1000), 60);
  ExpectSigned(r, sub.secret, event_id);

  auto body = boost::json::parse(r.body).as_object();
  EXPECT_EQ(body.at("eventId").as_string(), event_id);
  EXPECT_EQ(body.at("eventType").as_string(), "appointment.completed");
  EXPECT_EQ(body.at("tenantId").as_int64(), tenant_.value);
  EXPECT_EQ(body.at("occurredAtUtc").as_string(), "2026-06-25T14:31:00Z");
  EXPECT_EQ(body.at("deliveryId").as_string(), r.headers.at("ordinavo-delivery-id"));
  EXPECT_EQ(body.at("data").as_object().at("appointmentId").as_int64(), 441);

  ASSERT_EQ(view->attempts.size(), 1u);
  const auto& a = view->attempts[0];
  EXPECT_EQ(a.attempt, 1);
  EXPECT_EQ(a.http_status, 200);
  EXPECT_FALSE(a.error.has_value());
  EXPECT_EQ(a.delivery_id, r.headers.at("ordinavo-delivery-id"));
  EXPECT_EQ(a.response_snippet.value_or(""), "ok");
}

TEST_F(DispatcherTest, SignsWithPreviousSecretDuringGrace) {
  Receiver rx;
  Sub sub = AddSubscription(rx.Url());
  const std::string old_secret = core::NewSecret();
  auto st = store_->Write([&](store::Txn& txn) -> core::Status {
    auto s = txn.GetSubscription(tenant_, sub.id);
    if (!s) return core::Fail(s.error());
    (*s)->previous_secret = old_secret;
    (*s)->previous_secret_expires_at = system_clock_.Now() + 3600000;
    return txn.UpdateSubscription(**s);
  });
  ASSERT_TRUE(st.has_value()) << st.error().message;
  auto [event_id, jobs] = AddEvent({sub.id});
  StartDispatcher(LocalOptions()).Offer(jobs);
  ASSERT_TRUE(WaitForDelivery(event_id, store::DeliveryStatus::kSucceeded).has_value());
  const Received r = rx.Requests().at(0);
  const std::string sigs = r.headers.at("webhook-signature");
  const auto space = sigs.find(' ');
  ASSERT_NE(space, std::string::npos) << sigs;
  const std::int64_t ts = std::stoll(r.headers.at("webhook-timestamp"));
  EXPECT_EQ(sigs.substr(0, space),
            core::Sign(*core::DecodeSecret(sub.secret), event_id, ts, r.body));
  EXPECT_EQ(sigs.substr(space + 1),
            core::Sign(*core::DecodeSecret(old_secret), event_id, ts, r.body));
}

TEST_F(DispatcherTest, FailsTwiceThenSucceeds) {
  Receiver rx([](const Received& r) {
    Reply reply;
    if (r.index < 2) {
      reply.status = 500;
      reply.body = "boom";
    }
    return reply;
  });
  Sub sub = AddSubscription(rx.Url());
  auto [event_id, jobs] = AddEvent({sub.id});
  StartDispatcher(LocalOptions("0s,100ms,100ms")).Offer(jobs);

  auto view = WaitForDelivery(event_id, store::DeliveryStatus::kSucceeded, 3);
  ASSERT_TRUE(view.has_value());
  ASSERT_EQ(view->attempts.size(), 3u);
  auto reqs = rx.Requests();
  ASSERT_EQ(reqs.size(), 3u);
  std::set<std::string> delivery_ids;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(reqs[i].headers.at("ordinavo-attempt"), std::to_string(i + 1));
    EXPECT_EQ(reqs[i].headers.at("webhook-id"), event_id);
    ExpectSigned(reqs[i], sub.secret, event_id);
    delivery_ids.insert(reqs[i].headers.at("ordinavo-delivery-id"));
    EXPECT_EQ(view->attempts[i].attempt, i + 1);
    EXPECT_EQ(view->attempts[i].delivery_id, reqs[i].headers.at("ordinavo-delivery-id"));
  }
  EXPECT_EQ(delivery_ids.size(), 3u);
  EXPECT_EQ(view->attempts[0].http_status, 500);
  EXPECT_EQ(view->attempts[0].error.value_or(""), "http_status");
  EXPECT_EQ(view->attempts[0].response_snippet.value_or(""), "boom");
  EXPECT_EQ(view->attempts[2].http_status, 200);
}

TEST_F(DispatcherTest, ExhaustedScheduleGoesDead) {
  Receiver rx([](const Received&) { return Reply{503, "down", {}, false}; });
  Sub sub = AddSubscription(rx.Url());
  auto [event_id, jobs] = AddEvent({sub.id});
  StartDispatcher(LocalOptions("0s,100ms,100ms")).Offer(jobs);
  auto view = WaitForDelivery(event_id, store::DeliveryStatus::kDead, 3);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->attempts.size(), 3u);
  std::this_thread::sleep_for(300ms);  // nothing more is sent
  EXPECT_EQ(rx.Count(), 3u);
}

TEST_F(DispatcherTest, StatusLineDecidesWhateverTheBodySize) {
  const std::string huge(2 * 1024 * 1024, 'x');
  Receiver ok([&](const Received&) { return Reply{200, huge, {}, false}; });
  Receiver bad([&](const Received&) { return Reply{500, huge, {}, false}; });
  Sub s1 = AddSubscription(ok.Url());
  Sub s2 = AddSubscription(bad.Url());
  auto [e1, j1] = AddEvent({s1.id});
  auto [e2, j2] = AddEvent({s2.id});
  Dispatcher& d = StartDispatcher(LocalOptions("0s"));
  d.Offer(j1);
  d.Offer(j2);
  auto v1 = WaitForDelivery(e1, store::DeliveryStatus::kSucceeded);
  auto v2 = WaitForDelivery(e2, store::DeliveryStatus::kDead);
  ASSERT_TRUE(v1 && v2);
  EXPECT_EQ(v1->attempts[0].http_status, 200);
  EXPECT_LE(v1->attempts[0].response_snippet.value_or("").size(), 4096u);
  EXPECT_EQ(v2->attempts[0].http_status, 500);
  EXPECT_EQ(v2->attempts[0].error.value_or(""), "http_status");
  EXPECT_EQ(v2->attempts[0].response_snippet.value_or("").size(), 4096u);
}

TEST_F(DispatcherTest, StoredBodyIsCutOnACharacterBoundary) {
  std::string euros;
  for (int i = 0; i < 2000; ++i) euros += "\xE2\x82\xAC";  // "€", 3 bytes; 6,000 in all
  // 4,096 is not a multiple of 3: the last whole character ends at 4,095.
  EXPECT_EQ(StoredSnippet(euros), euros.substr(0, 4095));
}

TEST_F(DispatcherTest, StoredBodyThatIsNotTextIsScrubbed) {
  // Bytes that are not UTF-8 would make the delivery log (a JSON answer) invalid JSON.
  EXPECT_EQ(StoredSnippet(std::string("bad \xff\xfe\xc3", 7)),
            "bad \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_F(DispatcherTest, HangingEndpointDoesNotDelayOthers) {
  Receiver slow([](const Received&) { return Reply{200, "", {}, true}; });
  Receiver fast;
  Sub s_slow = AddSubscription(slow.Url(), 2);
  Sub s_fast = AddSubscription(fast.Url());
  DispatcherOptions o = LocalOptions("0s,10s");
  o.request_timeout_ms = 5000;
  o.max_in_flight = 4;
  Dispatcher& d = StartDispatcher(o);
  std::vector<std::string> slow_events;
  for (int i = 0; i < 6; ++i) {
    auto [e, jobs] = AddEvent({s_slow.id});
    slow_events.push_back(e);
    d.Offer(jobs);
  }
  ASSERT_TRUE(slow.WaitForCount(2));
  std::vector<std::string> fast_events;
  for (int i = 0; i < 20; ++i) {
    auto [e, jobs] = AddEvent({s_fast.id});
    fast_events.push_back(e);
    d.Offer(jobs);
  }
  ASSERT_TRUE(fast.WaitForCount(20));
  // All 20 went through while the slow lane's first two requests were still hanging: none of
  // its attempts has been recorded yet, and it never had more than its 2 slots.
  EXPECT_EQ(slow.Count(), 2u);
  for (const auto& e : slow_events) {
    auto views = Deliveries(e);
    ASSERT_EQ(views.size(), 1u);
    EXPECT_TRUE(views[0].attempts.empty());
  }
  for (const auto& e : fast_events) {
    EXPECT_TRUE(WaitForDelivery(e, store::DeliveryStatus::kSucceeded).has_value());
  }
  // The hanging requests end as timeouts.
  auto v = WaitForDelivery(slow_events[0], store::DeliveryStatus::kFailed, 1, 20s);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->attempts[0].error.value_or(""), "timeout");
  EXPECT_FALSE(v->attempts[0].http_status.has_value());
}

TEST_F(DispatcherTest, RetryAfterIsHonouredAndCapped) {
  FakeClock& clock = fake_clock_;
  fake_ = &clock;
  Receiver rx([&](const Received& r) {
    Reply reply;
    if (r.index == 0) {
      reply.status = 503;
      reply.headers = {{"Retry-After", "3600"}};  // capped at the longest delay (5 s)
    } else if (r.index == 1) {
      reply.status = 429;
      reply.headers = {{"Retry-After", ImfDate(1'800'000'005'000 + 3000)}};
    }
    return reply;
  });
  Sub sub = AddSubscription(rx.Url());
  auto [event_id, jobs] = AddEvent({sub.id});
  Dispatcher& d = StartDispatcher(LocalOptions("0s,100ms,100ms,5s"), &clock);
  d.Offer(jobs);

  auto v = WaitForDelivery(event_id, store::DeliveryStatus::kFailed, 1);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->attempts[0].http_status, 503);
  EXPECT_EQ(v->next_attempt_at, 1'800'000'000'000 + 5000);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(rx.Count(), 1u);  // not due before the Retry-After

  clock.Set(1'800'000'005'000);
  d.Wake();
  v = WaitForDelivery(event_id, store::DeliveryStatus::kFailed, 2);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->attempts[1].http_status, 429);
  EXPECT_EQ(v->next_attempt_at, 1'800'000'005'000 + 3000);  // more than the schedule's 100 ms

  clock.Set(1'800'000'008'000);
  v = WaitForDelivery(event_id, store::DeliveryStatus::kSucceeded, 3);
  ASSERT_TRUE(v.has_value());
  const auto reqs = rx.Requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[2].headers.at("webhook-timestamp"), "1800000008");
  EXPECT_EQ(reqs[2].headers.at("ordinavo-attempt"), "3");
}

TEST_F(DispatcherTest, ClaimsDueDeliveriesFromTheStore) {
  Receiver rx;
  Sub sub = AddSubscription(rx.Url());
  StartDispatcher(LocalOptions());
  auto [event_id, jobs] = AddEvent({sub.id}, /*leased=*/false);
  dispatcher_->Wake();
  ASSERT_TRUE(WaitForDelivery(event_id, store::DeliveryStatus::kSucceeded).has_value());
  EXPECT_EQ(rx.Count(), 1u);
}

TEST_F(DispatcherTest, PlainHttpIsRefusedWithoutPrivateNetworks) {
  Receiver rx;
  Sub http_sub = AddSubscription(rx.Url());
  Sub loopback = AddSubscription("https://127.0.0.1:" + std::to_string(rx.port()) + "/hook");
  auto [e1, j1] = AddEvent({http_sub.id});
  auto [e2, j2] = AddEvent({loopback.id});
  DispatcherOptions o = LocalOptions("0s");
  o.allow_private_networks = false;
  Dispatcher& d = StartDispatcher(o);
  d.Offer(j1);
  d.Offer(j2);
  auto v1 = WaitForDelivery(e1, store::DeliveryStatus::kDead);
  auto v2 = WaitForDelivery(e2, store::DeliveryStatus::kDead);
  ASSERT_TRUE(v1 && v2);
  EXPECT_EQ(v1->attempts[0].error.value_or(""), "insecure_url");
  EXPECT_EQ(v2->attempts[0].error.value_or(""), "private_address");
  EXPECT_EQ(rx.Count(), 0u);
}

TEST_F(DispatcherTest, FollowsSubscriptionChangesAndDisabling) {
  Receiver first;
  Receiver second;
  Sub sub = AddSubscription(first.Url());
  Dispatcher& d = StartDispatcher(LocalOptions());
  auto [e1, j1] = AddEvent({sub.id});
  d.Offer(j1);
  ASSERT_TRUE(WaitForDelivery(e1, store::DeliveryStatus::kSucceeded).has_value());

  auto update = [&](const std::function<void(store::Subscription&)>& change) {
    auto st = store_->Write([&](store::Txn& txn) -> core::Status {
      auto s = txn.GetSubscription(tenant_, sub.id);
      if (!s) return core::Fail(s.error());
      change(**s);
      return txn.UpdateSubscription(**s);
    });
    ASSERT_TRUE(st.has_value()) << st.error().message;
    d.InvalidateSubscription(sub.id);
  };
  update([&](store::Subscription& s) { s.url = second.Url(); });
  auto [e2, j2] = AddEvent({sub.id});
  d.Offer(j2);
  ASSERT_TRUE(WaitForDelivery(e2, store::DeliveryStatus::kSucceeded).has_value());
  EXPECT_EQ(first.Count(), 1u);
  EXPECT_EQ(second.Count(), 1u);

  update([&](store::Subscription& s) { s.enabled = false; });
  auto [e3, j3] = AddEvent({sub.id});
  d.Offer(j3);
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(second.Count(), 1u);
  auto views = Deliveries(e3);
  ASSERT_EQ(views.size(), 1u);
  EXPECT_TRUE(views[0].attempts.empty());
}

TEST_F(DispatcherTest, BoundedMemoryReleasesWhatDoesNotFit) {
  Receiver rx;
  Sub sub = AddSubscription(rx.Url());
  DispatcherOptions o = LocalOptions();
  o.max_queued = 4;
  o.claim_batch = 4;
  Dispatcher& d = StartDispatcher(o);
  std::vector<store::DeliveryJob> all;
  std::vector<std::string> events;
  for (int i = 0; i < 30; ++i) {
    auto [e, jobs] = AddEvent({sub.id});
    events.push_back(e);
    all.insert(all.end(), jobs.begin(), jobs.end());
  }
  d.Offer(all);  // far more than fits: the rest is released and claimed again later
  for (const auto& e : events) {
    ASSERT_TRUE(WaitForDelivery(e, store::DeliveryStatus::kSucceeded).has_value());
  }
  EXPECT_EQ(rx.Count(), 30u);  // each exactly once
}

TEST_F(DispatcherTest, StopReleasesWhatItHolds) {
  Receiver slow([](const Received&) { return Reply{200, "", {}, true}; });
  Sub sub = AddSubscription(slow.Url(), 1);
  DispatcherOptions o = LocalOptions();
  o.stop_grace_ms = 200;
  Dispatcher& d = StartDispatcher(o);
  auto [e1, j1] = AddEvent({sub.id});
  auto [e2, j2] = AddEvent({sub.id});
  d.Offer(j1);
  d.Offer(j2);
  ASSERT_TRUE(slow.WaitForCount(1));
  d.Stop();
  d.Stop();  // idempotent
  // Both rows are back in the store, unleased: another dispatcher claims them.
  Receiver fast;
  auto st = store_->Write([&](store::Txn& txn) -> core::Status {
    auto s = txn.GetSubscription(tenant_, sub.id);
    if (!s) return core::Fail(s.error());
    (*s)->url = fast.Url();
    return txn.UpdateSubscription(**s);
  });
  ASSERT_TRUE(st.has_value());
  StartDispatcher(LocalOptions());
  EXPECT_TRUE(WaitForDelivery(e1, store::DeliveryStatus::kSucceeded).has_value());
  EXPECT_TRUE(WaitForDelivery(e2, store::DeliveryStatus::kSucceeded).has_value());
}

// ---------------------------------------------------------------------------------------------

TEST(HttpUtilTest, ParsesRetryAfter) {
  using internal::ParseRetryAfter;
  EXPECT_EQ(ParseRetryAfter("120", 0), 120000);
  EXPECT_EQ(ParseRetryAfter(" 0 ", 0), 0);
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", 784111777000 - 5000), 5000);
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", 784111777000 + 5000), 0);
  EXPECT_FALSE(ParseRetryAfter("soon", 0).has_value());
  EXPECT_FALSE(ParseRetryAfter("12abc", 0).has_value());
  EXPECT_FALSE(ParseRetryAfter("", 0).has_value());
}

sockaddr_storage V4(const char* text) {
  sockaddr_storage ss{};
  auto* in = reinterpret_cast<sockaddr_in*>(&ss);
  in->sin_family = AF_INET;
  inet_pton(AF_INET, text, &in->sin_addr);
  return ss;
}
sockaddr_storage V6(const char* text) {
  sockaddr_storage ss{};
  auto* in = reinterpret_cast<sockaddr_in6*>(&ss);
  in->sin6_family = AF_INET6;
  inet_pton(AF_INET6, text, &in->sin6_addr);
  return ss;
}

TEST(HttpUtilTest, RecognisesPrivateAddresses) {
  auto priv = [](sockaddr_storage ss) {
    return internal::IsPrivateAddress(reinterpret_cast<sockaddr*>(&ss));
  };
  for (const char* a : {"127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
                        "169.254.169.254", "0.0.0.0", "100.64.0.1", "224.0.0.1"}) {
    EXPECT_TRUE(priv(V4(a))) << a;
  }
  for (const char* a : {"8.8.8.8", "172.32.0.1", "93.184.216.34", "100.128.0.1"}) {
    EXPECT_FALSE(priv(V4(a))) << a;
  }
  for (const char* a : {"::1", "::", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1"}) {
    EXPECT_TRUE(priv(V6(a))) << a;
  }
  for (const char* a : {"2606:4700::1111", "::ffff:8.8.8.8"}) EXPECT_FALSE(priv(V6(a))) << a;
}

TEST(HttpUtilTest, TruncatesOnUtf8Boundaries) {
  std::string s = "ab\xC3\xA9";  // "abé"
  internal::TruncateUtf8(s, 3);
  EXPECT_EQ(s, "ab");
  s = "ab\xE2\x82\xAC";  // "ab€"
  internal::TruncateUtf8(s, 4);
  EXPECT_EQ(s, "ab");
  s = "ab\xE2\x82\xAC";
  internal::TruncateUtf8(s, 5);
  EXPECT_EQ(s, "ab\xE2\x82\xAC");
  s = "abcdef";
  internal::TruncateUtf8(s, 4);
  EXPECT_EQ(s, "abcd");
}

TEST(HttpUtilTest, FiltersStaticHeaders) {
  EXPECT_TRUE(internal::IsAllowedStaticHeader("Authorization", "Bearer x"));
  EXPECT_TRUE(internal::IsAllowedStaticHeader("X-Api-Key", "k"));
  EXPECT_FALSE(internal::IsAllowedStaticHeader("webhook-signature", "v1,forged"));
  EXPECT_FALSE(internal::IsAllowedStaticHeader("Ordinavo-Attempt", "9"));
  EXPECT_FALSE(internal::IsAllowedStaticHeader("Content-Length", "1"));
  EXPECT_FALSE(internal::IsAllowedStaticHeader("X-Bad", "a\r\nX-Injected: 1"));
  EXPECT_FALSE(internal::IsAllowedStaticHeader("Bad Name", "v"));
}

}  // namespace
}  // namespace outbound::delivery
