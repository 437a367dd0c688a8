// The dispatcher against a real HTTP receiver on 127.0.0.1 and a real SQLite store.
#include "delivery/dispatcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/json/parse.hpp>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/signing.h"
#include "delivery/testing/dispatcher_fixture.h"
#include "delivery/testing/receiver.h"
#include "store/counters.h"
#include "store/testing/hold_writer.h"

namespace outbound::delivery {
namespace {

using core::UnixMs;
using core::testing::FakeClock;
using testing::DispatcherTest;
using testing::ExpectSigned;
using testing::ImfDate;
using testing::Received;
using testing::Receiver;
using testing::Reply;
using namespace std::chrono_literals;

// A receiver's script for an endpoint that never answers (until the receiver stops).
Reply Hang(const Received& /*request*/) { return Reply{200, "", {}, true}; }

// `o` for a test whose endpoint hangs behind a claimed backlog: a claim asks for up to 50 rows,
// a request waits 30 s (the hang outlasts the test) and stopping gives the hung requests 200 ms.
DispatcherOptions WithHungBacklog(DispatcherOptions o) {
  o.claim_batch = 50;
  o.request_timeout_ms = 30000;
  o.stop_grace_ms = 200;
  return o;
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

// The dispatcher unpacks claimed renderings after the claim's commit, off the writer (issue 8:
// inflating in the claim was an eighth of the writer during a drain). A rendering that does not
// unpack (a damaged database) holds back its own delivery, not the claim: the others are sent.
// (Fails when unpacking fails the claim, as inflating inside it did: nothing is sent.)
TEST_F(DispatcherTest, ADamagedStoredRenderingHoldsBackItsDeliveryAlone) {
  Receiver rx;
  Sub sub = AddSubscription(rx.Url());
  std::string data = R"({"appointmentId":441,"notes":")";
  while (data.size() < 1000) data += "Kühlraum geprüft, Dichtung neu. ";
  data += R"("})";
  auto [damaged_id, damaged_jobs] = AddEvent({sub.id}, /*leased=*/false, data);
  auto [sound_id, sound_jobs] = AddEvent({sub.id}, /*leased=*/false, data + " ");
  EXPECT_EQ(Sql("UPDATE payloads SET data_json = substr(data_json, 1, length(data_json) - 4) "
                "WHERE typeof(data_json) = 'blob' AND id IN (SELECT payload_id FROM deliveries "
                "WHERE event_id = '" +
                damaged_id + "')"),
            "1")
      << "the rendering is stored compressed";

  const std::uint64_t unreadable_before = store::Counters::Read().unreadable_renderings;
  StartDispatcher(LocalOptions());
  auto sound = WaitForDelivery(sound_id, store::DeliveryStatus::kSucceeded);
  ASSERT_TRUE(sound.has_value()) << "the claim's other delivery is sent";
  // Counted for the operator (outbound_unreadable_renderings_total), at every claim of it.
  EXPECT_GE(store::Counters::Read().unreadable_renderings, unreadable_before + 1);
  ASSERT_EQ(rx.Count(), 1u);
  const auto body = boost::json::parse(rx.Requests()[0].body).as_object();
  EXPECT_EQ(body.at("eventId").as_string(), sound_id);
  EXPECT_EQ(body.at("data"), boost::json::parse(data)) << "sent as rendered, unpacked";
  // Its row: still pending, never attempted (its detail cannot be read: it does not unpack).
  EXPECT_EQ(Sql("SELECT d.status || '/' || (SELECT COUNT(*) FROM attempts a WHERE "
                "a.delivery_row_id = d.id) FROM deliveries d WHERE d.event_id = '" +
                damaged_id + "'"),
            "pending/0");
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
  // The control: a subscription on the same schedule that fails once and then succeeds.
  Receiver control_rx([](const Received& r) {
    return Reply{r.index == 0 ? 500 : 200, "ok", {}, false};
  });
  Sub sub = AddSubscription(rx.Url());
  Sub control = AddSubscription(control_rx.Url());
  auto [event_id, jobs] = AddEvent({sub.id});
  Dispatcher& d = StartDispatcher(LocalOptions("0s,100ms,100ms"));
  d.Offer(jobs);
  auto view = WaitForDelivery(event_id, store::DeliveryStatus::kDead, 3);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->attempts.size(), 3u);
  EXPECT_FALSE(view->next_attempt_at.has_value());
  // Nothing more is sent. The wait is not a bare sleep that would pass whatever happens: it
  // lasts until the control's retry, due 100 ms after its first attempt (the same delay that a
  // fourth attempt of the dead delivery would have had), has gone out and been recorded.
  auto [control_event, control_jobs] = AddEvent({control.id});
  d.Offer(control_jobs);
  ASSERT_TRUE(WaitForDelivery(control_event, store::DeliveryStatus::kSucceeded, 2).has_value());
  EXPECT_EQ(control_rx.Count(), 2u);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(rx.Count(), 3u);
  EXPECT_EQ(Deliveries(event_id).at(0).attempts.size(), 3u);
}

TEST_F(DispatcherTest, StatusLineDecidesWhateverTheBodySize) {
  const std::string huge(std::size_t{2} * 1024 * 1024, 'x');
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
  Receiver slow(Hang);
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

// Hung endpoints do not keep every slot (CONTRACT §6): two whose requests all hang, each allowed
// the dispatcher's whole max_in_flight, and a healthy one. Once the hung ones' first requests
// have timed out they are held to a slot or two each while half of max_in_flight is open, so the
// healthy endpoint's webhooks go out at once instead of one per timeout that frees a slot (the
// first wave, before any timeout, is not known to hang and takes what it is allowed). Counted in
// requests, not timed: when the healthy 20 are in, the hung endpoints have seen their first wave
// (8) and the few that followed its timeouts (4), not wave after wave. Seen failing with timeouts
// ignored: the hung lanes took every slot back as it freed (16 after the first timeouts, and more
// than 40 by the time the healthy 20 were in).
TEST_F(DispatcherTest, HungEndpointsAreHeldToAFewSlotsOnceHalfAreOpen) {
  Receiver hung1(Hang);
  Receiver hung2(Hang);
  Receiver fast;
  Sub s1 = AddSubscription(hung1.Url(), 8);
  Sub s2 = AddSubscription(hung2.Url(), 8);
  Sub s_fast = AddSubscription(fast.Url());
  DispatcherOptions o = LocalOptions("0s,60s");
  o.request_timeout_ms = 1000;
  o.max_in_flight = 8;
  Dispatcher& d = StartDispatcher(o);
  for (int i = 0; i < 40; ++i) {
    for (const Sub* s : {&s1, &s2}) {
      auto [e, jobs] = AddEvent({s->id});
      d.Offer(jobs);
    }
  }
  auto hung = [&] { return hung1.Count() + hung2.Count(); };
  // The first wave takes every slot; after its timeouts the hung lanes start again.
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (hung() < 12 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GE(hung(), 12u);
  std::vector<std::string> fast_events;
  for (int i = 0; i < 20; ++i) {
    auto [e, jobs] = AddEvent({s_fast.id});
    fast_events.push_back(e);
    d.Offer(jobs);
  }
  ASSERT_TRUE(fast.WaitForCount(20, 30s));
  EXPECT_LE(hung(), 20u) << "the healthy webhooks waited for hung slots to time out";
  for (const auto& e : fast_events) {
    EXPECT_TRUE(WaitForDelivery(e, store::DeliveryStatus::kSucceeded).has_value());
  }
}

// An interim answer (102 Processing) is not the attempt's status: the endpoint that sends one and
// then nothing more times out, as any that never answers (the attempt's error `timeout`, no HTTP
// status), and the subscription keeps its concurrency (timeouts do not lower it).
TEST_F(DispatcherTest, AnInterimAnswerThenSilenceIsATimeoutNotItsStatus) {
  Receiver processing([](const Received&) {
    Reply r;
    r.interim = "HTTP/1.1 102 Processing\r\n\r\n";
    r.hang = true;
    return r;
  });
  Sub sub = AddSubscription(processing.Url());
  DispatcherOptions o = LocalOptions("0s,10s");
  o.request_timeout_ms = 500;
  Dispatcher& d = StartDispatcher(o);
  auto [e, jobs] = AddEvent({sub.id});
  d.Offer(jobs);
  auto v = WaitForDelivery(e, store::DeliveryStatus::kFailed, 1, 10s);
  ASSERT_TRUE(v.has_value());
  ASSERT_EQ(v->attempts.size(), 1u);
  EXPECT_EQ(v->attempts[0].error.value_or(""), "timeout");
  EXPECT_FALSE(v->attempts[0].http_status.has_value()) << *v->attempts[0].http_status;
}

// Once an endpoint's failures are known, its subscription keeps few requests in flight (2, not
// its maxConcurrency of 8) until an attempt succeeds; the first success gives the full limit
// back. (Issue 8's backlog fill: ten subscriptions answering 503 at once kept 160 requests in
// flight, and a healthy subscription's fresh events waited behind their turns and answers.)
TEST_F(DispatcherTest, AFailingEndpointGetsFewerRequestsAtOnceUntilItSucceeds) {
  std::atomic<int> open{0};
  std::atomic<int> failing_peak{0};    // requests open at once, from the 24th of the failures on
  std::atomic<int> recovered_peak{0};  // the same once the endpoint answers 200
  std::atomic<bool> healthy{false};
  auto note = [](std::atomic<int>& peak, int value) {
    int seen = peak.load();
    while (value > seen && !peak.compare_exchange_weak(seen, value)) {
    }
  };
  Receiver rx([&](const Received& r) {
    const bool ok = healthy.load();
    const int now = ++open;
    if (ok) {
      note(recovered_peak, now);
    } else if (r.index >= 24) {
      note(failing_peak, now);
    }
    std::this_thread::sleep_for(30ms);
    --open;
    return ok ? Reply{} : Reply{503, "down", {}};
  });
  Sub sub = AddSubscription(rx.Url(), 8);
  Dispatcher& d = StartDispatcher(LocalOptions("0s"));
  std::vector<std::string> failed;
  for (int i = 0; i < 40; ++i) {
    auto [e, jobs] = AddEvent({sub.id});
    failed.push_back(e);
    d.Offer(jobs);
  }
  for (const auto& e : failed) {
    ASSERT_TRUE(WaitForDelivery(e, store::DeliveryStatus::kDead, 1, 30s).has_value());
  }
  EXPECT_EQ(rx.Count(), 40u);
  EXPECT_GE(failing_peak.load(), 1);
  EXPECT_LE(failing_peak.load(), 2);

  healthy = true;
  std::vector<std::string> delivered;
  for (int i = 0; i < 40; ++i) {
    auto [e, jobs] = AddEvent({sub.id});
    delivered.push_back(e);
    d.Offer(jobs);
  }
  for (const auto& e : delivered) {
    ASSERT_TRUE(WaitForDelivery(e, store::DeliveryStatus::kSucceeded, 1, 30s).has_value());
  }
  EXPECT_GE(recovered_peak.load(), 4);  // 8 when the machine keeps up; 2 while still failing
  EXPECT_LE(recovered_peak.load(), 8);
}

// Timeouts leave the limit as it is while the dispatcher has room (fewer than half of
// max_in_flight open; HungEndpointsAreHeldToAFewSlotsOnceHalfAreOpen is the other side): a hung
// endpoint holds slots (its maxConcurrency, bounded), not the dispatcher's turns, so its later
// attempts still go out `maxConcurrency` at a time.
TEST_F(DispatcherTest, TimeoutsDoNotLowerASubscriptionsConcurrency) {
  std::mutex mu;
  std::vector<std::chrono::steady_clock::time_point> arrivals;
  Receiver rx([&](const Received&) {
    {
      std::lock_guard lock(mu);
      arrivals.push_back(std::chrono::steady_clock::now());
    }
    std::this_thread::sleep_for(700ms);  // past the request timeout below
    return Reply{};
  });
  Sub sub = AddSubscription(rx.Url(), 4);
  DispatcherOptions o = LocalOptions("0s");
  o.request_timeout_ms = 300;
  Dispatcher& d = StartDispatcher(o);
  std::vector<std::string> events;
  for (int i = 0; i < 12; ++i) {
    auto [e, jobs] = AddEvent({sub.id});
    events.push_back(e);
    d.Offer(jobs);
  }
  for (const auto& e : events) {
    auto v = WaitForDelivery(e, store::DeliveryStatus::kDead, 1, 30s);
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->attempts[0].error.value_or(""), "timeout");
  }
  // The requests after the first four timed out: the most that arrived within 100 ms of each
  // other (a wave; waves are 300 ms apart). 4 with the limit kept, 2 had it been lowered.
  std::lock_guard lock(mu);
  ASSERT_EQ(arrivals.size(), 12u);
  std::size_t wave = 0;
  for (std::size_t i = 4; i < arrivals.size(); ++i) {
    std::size_t n = 0;
    for (std::size_t j = 4; j <= i; ++j) n += arrivals[i] - arrivals[j] <= 100ms ? 1 : 0;
    wave = std::max(wave, n);
  }
  EXPECT_GE(wave, 3u);
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

  // Not due before the Retry-After, although the schedule's 100 ms are long past: at 4.999 s
  // nothing is sent. The control, a delivery of another subscription that is due then, is
  // claimed by the same claim that would have taken the retry, and arrives: the dispatcher did
  // look at the store at 4.999 s, so "nothing arrived" is not for want of looking.
  clock.Set(1'800'000'004'999);
  Receiver control_rx;
  Sub control = AddSubscription(control_rx.Url());
  auto [control_event, control_jobs] = AddEvent({control.id}, /*leased=*/false);
  d.Wake();
  ASSERT_TRUE(WaitForDelivery(control_event, store::DeliveryStatus::kSucceeded).has_value());
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(rx.Count(), 1u);

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

  // Disabled: nothing is sent. The control, a delivery of another (enabled) subscription to the
  // same receiver, handed over after the disabled one, arrives: the dispatcher took both in, so
  // "nothing arrived" is not for want of waiting long enough. (Seen failing with the enabled
  // check of Lanes::Enqueue removed: the disabled delivery reached `second`.)
  Sub control = AddSubscription(second.Url("/control"));
  update([&](store::Subscription& s) { s.enabled = false; });
  auto [e3, j3] = AddEvent({sub.id});
  auto [e4, j4] = AddEvent({control.id});
  d.Offer(j3);
  d.Offer(j4);
  ASSERT_TRUE(WaitForDelivery(e4, store::DeliveryStatus::kSucceeded).has_value());
  std::this_thread::sleep_for(200ms);  // a send started together with the control's has landed
  const auto reqs = second.Requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].target, "/control");
  auto views = Deliveries(e3);
  ASSERT_EQ(views.size(), 1u);
  EXPECT_TRUE(views[0].attempts.empty());
  EXPECT_EQ(views[0].status, store::DeliveryStatus::kPending);
}

// Memory is bounded by max_queued whatever the backlog (docs/RELIABILITY.md): 300 deliveries
// for three subscriptions, half handed over by fan-out in one batch and half left in the store
// to be claimed, against max_queued 8. What the dispatcher holds (queued in lanes plus in
// flight, Dispatcher::Held) never goes above 8 and does reach 8 (the bound, not a slow
// trickle, is what held the backlog back); the receivers never see more than 8 requests at
// once; everything is delivered, each exactly once; and nothing is held at the end.
TEST_F(DispatcherTest, BoundedMemoryReleasesWhatDoesNotFit) {
  constexpr std::size_t kMaxQueued = 8;
  constexpr int kSubs = 3;
  constexpr int kPerSub = 100;
  constexpr std::size_t kTotal = std::size_t{kSubs} * kPerSub;
  std::atomic<int> concurrent{0};
  std::atomic<int> max_concurrent{0};
  auto slow = [&](const Received&) {
    const int now = ++concurrent;
    int seen = max_concurrent.load();
    while (now > seen && !max_concurrent.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(3ms);  // long enough that attempts pile up in flight
    --concurrent;
    return Reply{};
  };
  std::vector<std::unique_ptr<Receiver>> receivers;
  std::vector<Sub> subs;
  for (int i = 0; i < kSubs; ++i) {
    receivers.push_back(std::make_unique<Receiver>(slow));
    subs.push_back(AddSubscription(receivers.back()->Url()));
  }
  DispatcherOptions o = LocalOptions();
  o.max_queued = kMaxQueued;
  o.claim_batch = 50;  // a claim asks for no more than there is room for, whatever this says
  std::vector<store::DeliveryJob> offered;
  std::vector<std::string> events;
  for (int i = 0; i < kPerSub; ++i) {
    for (const Sub& sub : subs) {
      const bool leased = i % 2 == 0;
      auto [e, jobs] = AddEvent({sub.id}, leased);
      events.push_back(e);
      if (leased) offered.insert(offered.end(), jobs.begin(), jobs.end());
    }
  }
  ASSERT_EQ(offered.size(), kTotal / 2);
  Dispatcher& d = StartDispatcher(o);
  d.Offer(offered);  // far more than fits: the rest is released and claimed again later

  std::size_t sampled_max = 0;
  auto delivered = [&] {
    std::size_t n = 0;
    for (auto& rx : receivers) n += rx->Count();
    return n;
  };
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (delivered() < kTotal && std::chrono::steady_clock::now() < deadline) {
    sampled_max = std::max(sampled_max, d.Held().held);
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(delivered(), kTotal);
  for (const auto& e : events) {
    ASSERT_TRUE(WaitForDelivery(e, store::DeliveryStatus::kSucceeded).has_value());
  }
  std::set<std::string> webhook_ids;
  for (auto& rx : receivers) {
    for (const Received& r : rx->Requests()) webhook_ids.insert(r.headers.at("webhook-id"));
  }
  EXPECT_EQ(webhook_ids.size(), kTotal);  // each exactly once
  EXPECT_EQ(delivered(), kTotal);

  const Dispatcher::Memory memory = d.Held();
  EXPECT_LE(memory.peak_held, kMaxQueued);
  EXPECT_GE(memory.peak_held, kMaxQueued) << "never full: the bound held nothing back";
  EXPECT_LE(sampled_max, kMaxQueued);
  EXPECT_LE(max_concurrent.load(), static_cast<int>(kMaxQueued));
  for (int i = 0; i < 200 && d.Held().held != 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(d.Held().held, 0u);
}

// A claimed backlog does not hold back what fan-out hands over (issue 8): one subscription's
// 60 due deliveries, claimed from the store, would fill max_queued 20 (its endpoint hangs, one
// request at a time); a new delivery of another subscription, offered leased as fan-out does,
// is taken in and sent at once rather than given back to wait behind the backlog.
TEST_F(DispatcherTest, OfferedWorkIsNotHeldBackByAClaimedBacklog) {
  Receiver stuck(Hang);
  Receiver healthy;
  Sub backlog = AddSubscription(stuck.Url(), 1);
  Sub other = AddSubscription(healthy.Url());
  for (int i = 0; i < 60; ++i) AddEvent({backlog.id}, /*leased=*/false);
  DispatcherOptions o = WithHungBacklog(LocalOptions());
  o.max_queued = 20;
  o.max_queued_per_subscription = 1000;
  Dispatcher& d = StartDispatcher(o);
  // The backlog is claimed as far as the dispatcher lets claims go, and stays there.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (d.Held().held < 18 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GE(d.Held().held, 18u);
  ASSERT_TRUE(stuck.WaitForCount(1));
  auto [e, jobs] = AddEvent({other.id});
  d.Offer(jobs);
  EXPECT_TRUE(WaitForDelivery(e, store::DeliveryStatus::kSucceeded, 1, 10s).has_value());
  EXPECT_EQ(healthy.Count(), 1u);
  EXPECT_LE(d.Held().peak_held, 20u);
}

// Nor by an offered backlog (issue 8): one subscription's endpoint hangs while fan-out offers
// it 40 deliveries, more than max_queued 20; they fill the dispatcher only up to the claims'
// share (18), the rest is given back due later, and a new delivery of another subscription is
// taken in and sent at once. (Seen failing with the long lane's offers taken up to max_queued:
// the other delivery was given back and never claimed while the dispatcher stayed full.)
TEST_F(DispatcherTest, OfferedWorkIsNotHeldBackByAnotherSubscriptionsOfferedBacklog) {
  Receiver stuck(Hang);
  Receiver healthy;
  Sub backlog = AddSubscription(stuck.Url(), 1);
  Sub other = AddSubscription(healthy.Url());
  DispatcherOptions o = WithHungBacklog(LocalOptions());
  o.max_queued = 20;
  o.max_queued_per_subscription = 1000;
  Dispatcher& d = StartDispatcher(o);
  for (int i = 0; i < 40; ++i) d.Offer(AddEvent({backlog.id}).second);
  ASSERT_TRUE(stuck.WaitForCount(1));
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (d.Held().held < 18 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GE(d.Held().held, 18u);
  auto [e, jobs] = AddEvent({other.id});
  d.Offer(jobs);
  EXPECT_TRUE(WaitForDelivery(e, store::DeliveryStatus::kSucceeded, 1, 10s).has_value())
      << "the other subscription's delivery waited behind the offered backlog";
  EXPECT_EQ(healthy.Count(), 1u);
  EXPECT_LE(d.Held().peak_held, 20u);
}

// A deferral that fails is tried again as a deferral (issue 8): retried as a plain release, as
// it was, its rows were due at once and the next claim took the long lane's rows straight back.
// The deferral's UPDATE (it moves next_attempt_at on) is made to fail by a trigger on the real
// database; a second trigger logs every lease given back without it. Seen failing with the
// retry as a release: the deferred row was given back due at once.
TEST_F(DispatcherTest, AFailedDeferralIsTriedAgainAsADeferral) {
  Receiver stuck(Hang);
  Sub backlog = AddSubscription(stuck.Url(), 1);
  ASSERT_EQ(Sql("CREATE TABLE released_now (id INTEGER)"), "0");
  ASSERT_EQ(Sql("CREATE TRIGGER fail_deferrals BEFORE UPDATE OF next_attempt_at ON deliveries "
                "WHEN OLD.lease_owner IS NOT NULL AND NEW.lease_owner IS NULL AND "
                "NEW.next_attempt_at > OLD.next_attempt_at BEGIN SELECT RAISE(ABORT, "
                "'deferral refused by the test'); END"),
            "0");
  ASSERT_EQ(Sql("CREATE TRIGGER log_releases AFTER UPDATE OF lease_owner ON deliveries WHEN "
                "OLD.lease_owner IS NOT NULL AND NEW.lease_owner IS NULL AND "
                "NEW.next_attempt_at IS OLD.next_attempt_at BEGIN INSERT INTO released_now "
                "VALUES (NEW.id); END"),
            "0");
  DispatcherOptions o = WithHungBacklog(LocalOptions());
  o.max_queued = 20;
  o.max_queued_per_subscription = 1000;
  Dispatcher& d = StartDispatcher(o);
  // 18 held (the claims' share of 20), the 19th deferred: its lane is long.
  std::vector<store::DeliveryJob> jobs;
  for (int i = 0; i < 19; ++i) {
    for (auto& j : AddEvent({backlog.id}).second) jobs.push_back(std::move(j));
  }
  d.Offer(jobs);
  ASSERT_TRUE(stuck.WaitForCount(1));
  // Several retries (200 ms apart) of the refused deferral.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM released_now"), "0")
      << "the refused deferral was retried as a release (due at once)";
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM deliveries WHERE lease_owner IS NULL"), "0");
  // Once the database takes it, the row is given back due 5 s later.
  ASSERT_EQ(Sql("DROP TRIGGER fail_deferrals"), "0");
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  std::string deferred = "0";
  while (deferred == "0" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    deferred =
        Sql("SELECT COUNT(*) FROM deliveries WHERE lease_owner IS NULL AND "
            "next_attempt_at > created_at + 4000");
  }
  EXPECT_EQ(deferred, "1");
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM released_now"), "0");
}

// One outcome write at a time (issue 8): while the store's writer is held, 200 deliveries
// offered over 20 loop turns are sent and answered, and their outcomes wait for the one write
// under way instead of queueing a write per turn (in front of every claim and lease renewal of
// the dispatcher). Seen failing with a write per turn: 20 and more tasks queued. Once the writer
// goes on, every outcome is recorded.
TEST_F(DispatcherTest, OutcomesWaitForTheWriteUnderWay) {
  Receiver rx;
  Sub sub = AddSubscription(rx.Url());
  std::vector<std::string> events;
  std::vector<std::vector<store::DeliveryJob>> offers(20);
  for (int i = 0; i < 200; ++i) {
    auto [e, jobs] = AddEvent({sub.id});
    events.push_back(e);
    for (auto& j : jobs) offers[static_cast<std::size_t>(i % 20)].push_back(std::move(j));
  }
  Dispatcher& d = StartDispatcher(LocalOptions());
  std::promise<void> go_on = store::testing::HoldTheWriter(*store_);
  for (auto& offer : offers) {
    d.Offer(std::move(offer));
    std::this_thread::sleep_for(5ms);
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (rx.Count() < 200 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  std::this_thread::sleep_for(100ms);  // the last answers reach the dispatcher
  const std::size_t queued = store_->QueueDepth();
  go_on.set_value();
  ASSERT_EQ(rx.Count(), 200u);
  // The held task, one outcome write, and at most a claim and a lease renewal.
  EXPECT_LE(queued, 4u) << "outcome writes queued one per loop turn";
  for (const std::string& e : events) {
    EXPECT_TRUE(WaitForDelivery(e, store::DeliveryStatus::kSucceeded).has_value()) << e;
  }
}

TEST_F(DispatcherTest, StopReleasesWhatItHolds) {
  Receiver slow(Hang);
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

// A slow or hung endpoint with more due rows than its lane holds must not starve the others'
// due rows (issue 8's isolation). Rows of a full lane used to be given back as they were and a
// claim requested at once, so every claim took the same oldest rows (the hung lane's) back and
// gave them back again, and a later-due row of another subscription was never reached (seen
// failing: the healthy row still pending after 4 s). Now they are given back due
// kFullLaneDeferMs (5 s) later, and the next claim reaches the other rows.
TEST_F(DispatcherTest, AFullLanesRowsAreGivenBackDueLaterSoOthersAreClaimed) {
  Receiver stuck(Hang);
  Receiver healthy;
  Sub hung = AddSubscription(stuck.Url(), 1);
  Sub other = AddSubscription(healthy.Url());
  std::vector<std::string> backlog;
  backlog.reserve(200);
  for (int i = 0; i < 200; ++i) backlog.push_back(AddEvent({hung.id}, /*leased=*/false).first);
  std::this_thread::sleep_for(5ms);  // the healthy row is due after every row of the backlog
  auto [e, jobs] = AddEvent({other.id}, /*leased=*/false);
  const core::UnixMs started = clock_now();
  DispatcherOptions o = WithHungBacklog(LocalOptions());
  o.max_queued_per_subscription = 5;
  o.claim_interval_ms = 20;
  StartDispatcher(o);
  EXPECT_TRUE(WaitForDelivery(e, store::DeliveryStatus::kSucceeded, 1, 4s).has_value())
      << "another subscription's due row waited behind a full lane's";
  EXPECT_EQ(healthy.Count(), 1u);
  // What the hung lane does not hold is back in the store, due no earlier than 5 s after the
  // start, unleased.
  int deferred = 0;
  for (const std::string& id : backlog) {
    for (const store::DeliveryView& v : Deliveries(id)) {
      if (v.status == store::DeliveryStatus::kPending && v.next_attempt_at &&
          *v.next_attempt_at >= started + 4000) {
        ++deferred;
      }
    }
  }
  EXPECT_GE(deferred, 150) << "the overflow of the full lane was not given back due later";
}

// An endpoint that answers each request 300 ms after it came: one at a time (maxConcurrency 1),
// its lane stays long while it keeps answering.
Reply AnswerAfter300Ms(const Received&) {
  std::this_thread::sleep_for(300ms);
  return Reply{};
}

// A full lane whose endpoint is answering gives its overflow back due 1 s later, not 5 s
// (issue 8's drain: a recovered backlog's last rows came back over 5 s at a fifth of the drain's
// rate). The endpoint answers each request after 300 ms, one at a time, so its lane of 5 stays
// full; once it has answered, 40 more rows are claimed and all but the lane's room given back.
// Seen failing with every full lane's rows given back due 5 s later (none within 2.5 s). A hung
// endpoint's rows come back 5 s later or more
// (AFullLanesRowsAreGivenBackDueLaterSoOthersAreClaimed,
// AHungLanesRowsComeBackAsMuchLaterAsItHasHung).
TEST_F(DispatcherTest, AnAnsweringFullLanesRowsComeBackSooner) {
  Receiver slow(AnswerAfter300Ms);
  Sub busy = AddSubscription(slow.Url(), 1);
  for (int i = 0; i < 5; ++i) AddEvent({busy.id}, /*leased=*/false);
  DispatcherOptions o = LocalOptions();
  o.max_queued_per_subscription = 5;
  o.claim_interval_ms = 20;
  StartDispatcher(o);
  ASSERT_TRUE(slow.WaitForCount(2, 5s));  // answered once at least: the lane is answering
  const core::UnixMs t0 = clock_now();
  for (int i = 0; i < 40; ++i) AddEvent({busy.id}, /*leased=*/false);
  EXPECT_GE(WaitForRowsGivenBackDue(t0 + 500, t0 + 2500, 30), 30)
      << "the answering lane's overflow was not given back due ~1 s later";
  EXPECT_EQ(RowsDueAfter(t0 + 4000), 0)
      << "rows of an answering lane were given back due 5 s later";
}

// The same when the dispatcher is down to the short lanes' reserve (max_queued minus the claims'
// share) and the long lane is answering: a healthy endpoint that fell behind a burst of
// fan-out (issue 8's K=10 runs: ten lanes of 4,500 filled the claims' share of 50,000). Its
// overflow came back due 5 s later, and the run's last deliveries waited for it with the machine
// idle (throughput 0.44-0.48 of the bare sender instead of 0.68-0.74). Seen failing that way:
// no row due within 2.5 s.
TEST_F(DispatcherTest, AnAnsweringLongLanesRowsComeBackSoonerWhenOnlyTheReserveIsLeft) {
  Receiver slow(AnswerAfter300Ms);
  Sub busy = AddSubscription(slow.Url(), 1);
  std::vector<store::DeliveryJob> jobs = StartWithAnsweringLongLane(slow, busy.id, 40);
  ASSERT_FALSE(HasFailure());
  // Answered once: the lane is answering. 40 more offered: 18 held at most, the rest given back.
  const core::UnixMs t0 = clock_now();
  dispatcher_->Offer(jobs);
  EXPECT_GE(WaitForRowsGivenBackDue(t0 + 500, t0 + 2500, 15), 15)
      << "the answering lane's overflow was not given back due ~1 s later";
  EXPECT_EQ(RowsDueAfter(t0 + 4000), 0)
      << "rows of an answering lane were given back due 5 s later";
}

// A failed deferral of an answering lane's rows is tried again as long as it was: 1 s, not the
// other full lanes' 5 s (AFailedDeferralIsTriedAgainAsADeferral: the 5 s ones). The deferral's
// UPDATE fails (a trigger) while the lane is answering; once the trigger goes, its rows are due
// about 1 s later. Seen failing when every failed deferral was retried as a 5 s one: none due
// within 2.5 s, every one after 4 s.
TEST_F(DispatcherTest, AFailedShortDeferralIsTriedAgainAsShort) {
  Receiver slow(AnswerAfter300Ms);
  Sub busy = AddSubscription(slow.Url(), 1);
  ASSERT_EQ(Sql("CREATE TRIGGER fail_deferrals BEFORE UPDATE OF next_attempt_at ON deliveries "
                "WHEN OLD.lease_owner IS NOT NULL AND NEW.lease_owner IS NULL AND "
                "NEW.next_attempt_at > OLD.next_attempt_at BEGIN SELECT RAISE(ABORT, "
                "'deferral refused by the test'); END"),
            "0");
  std::vector<store::DeliveryJob> jobs = StartWithAnsweringLongLane(slow, busy.id, 40);
  ASSERT_FALSE(HasFailure());
  dispatcher_->Offer(jobs);             // 18 held at most; the rest deferred by 1 s, refused
  std::this_thread::sleep_for(1000ms);  // several retries (200 ms apart), all refused
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND lease_owner IS NULL"),
            "0");
  ASSERT_EQ(Sql("DROP TRIGGER fail_deferrals"), "0");
  const core::UnixMs t0 = clock_now();
  EXPECT_GE(WaitForRowsGivenBackDue(t0, t0 + 2500, 15), 15)
      << "the retried deferral was not due ~1 s later";
  EXPECT_EQ(RowsDueAfter(t0 + 4000), 0)
      << "an answering lane's failed deferral was retried as a 5 s one";
}

}  // namespace
}  // namespace outbound::delivery
