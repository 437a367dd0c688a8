// The request builder: what a receiver gets, without a receiver.
#include "delivery/internal/request.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <map>
#include <string>

#include "core/signing.h"

namespace outbound::delivery::internal {
namespace {

using core::UnixMs;

constexpr UnixMs kT = 1'800'000'000'250;

SubInfo Usable(const std::string& secret) {
  SubInfo info;
  info.usable = true;
  info.url = "https://receiver.example/hook";
  info.scheme = UrlScheme::kHttps;
  info.key = *core::DecodeSecret(secret);
  info.header_lines = {"Authorization: Bearer receiver-token"};
  return info;
}

store::DeliveryJob Job() {
  store::DeliveryJob job;
  job.id = core::DeliveryRowId(5);
  job.tenant = core::TenantId(7);
  job.subscription = core::SubscriptionId(9);
  job.event_id = "evt_01JZ";
  job.event_type = "appointment.completed";
  job.occurred_at = 1782397860000;  // 2026-06-25T14:31:00Z
  job.data_json = R"({"appointmentId":441})";
  job.attempts = 2;
  return job;
}

std::map<std::string, std::string> Headers(const Request& r) {
  std::map<std::string, std::string> out;
  for (const auto& line : r.header_lines) {
    const auto colon = line.find(':');
    out[line.substr(0, colon)] = line.substr(colon + 1 == line.size() ? colon + 1 : colon + 2);
  }
  return out;
}

TEST(BuildRequestTest, SignedStandardWebhook) {
  const std::string secret = core::NewSecret();
  const Request r = BuildRequest(Usable(secret), Job(), "del_01JZ", kT);
  EXPECT_EQ(r.url, "https://receiver.example/hook");
  ASSERT_EQ(r.header_lines.size(), 9u);
  EXPECT_EQ(r.header_lines.front(), "Content-Type: application/json");
  EXPECT_EQ(r.header_lines[1], "Expect:");  // no 100-continue round trip
  EXPECT_EQ(r.header_lines.back(), "Authorization: Bearer receiver-token");  // static ones last
  auto h = Headers(r);
  EXPECT_EQ(h["webhook-id"], "evt_01JZ");
  EXPECT_EQ(h["webhook-timestamp"], "1800000000");
  EXPECT_EQ(h["ordinavo-event-type"], "appointment.completed");
  EXPECT_EQ(h["ordinavo-delivery-id"], "del_01JZ");
  EXPECT_EQ(h["ordinavo-attempt"], "3");
  EXPECT_EQ(h["webhook-signature"],
            core::Sign(*core::DecodeSecret(secret), "evt_01JZ", 1800000000, r.body));

  auto body = boost::json::parse(r.body).as_object();
  EXPECT_EQ(body.at("eventId").as_string(), "evt_01JZ");
  EXPECT_EQ(body.at("deliveryId").as_string(), "del_01JZ");
  EXPECT_EQ(body.at("tenantId").as_int64(), 7);
  EXPECT_EQ(body.at("occurredAtUtc").as_string(), "2026-06-25T14:31:00Z");
  EXPECT_EQ(body.at("data").as_object().at("appointmentId").as_int64(), 441);
}

TEST(BuildRequestTest, SignsWithEveryPreviousKeyDuringItsGrace) {
  const std::string secret = core::NewSecret();
  const std::string old_secret = core::NewSecret();
  SubInfo info = Usable(secret);
  const std::string older_secret = core::NewSecret();
  info.previous_keys = {{*core::DecodeSecret(old_secret), kT + 1},
                        {*core::DecodeSecret(older_secret), kT + 1}};
  Request r = BuildRequest(info, Job(), "del_01JZ", kT);
  auto sign = [&](const std::string& s) {
    return core::Sign(*core::DecodeSecret(s), "evt_01JZ", 1800000000, r.body);
  };
  EXPECT_EQ(Headers(r)["webhook-signature"],
            sign(secret) + " " + sign(old_secret) + " " + sign(older_secret));

  info.previous_keys[1].expires_at = kT;  // the older one expired
  r = BuildRequest(info, Job(), "del_01JZ", kT);
  EXPECT_EQ(Headers(r)["webhook-signature"], sign(secret) + " " + sign(old_secret));

  info.previous_keys[0].expires_at = kT;  // both expired
  r = BuildRequest(info, Job(), "del_01JZ", kT);
  EXPECT_EQ(Headers(r)["webhook-signature"],
            core::Sign(*core::DecodeSecret(secret), "evt_01JZ", 1800000000, r.body));
}

TEST(RefusalOfTest, WhatCannotBeSentAtAll) {
  SubInfo info = Usable(core::NewSecret());
  EXPECT_EQ(RefusalOf(info, false), std::nullopt);
  info.scheme = UrlScheme::kHttp;
  EXPECT_EQ(RefusalOf(info, false), "insecure_url");
  EXPECT_EQ(RefusalOf(info, true), std::nullopt);  // private networks allowed: plain http too
  info.scheme = UrlScheme::kOther;
  EXPECT_EQ(RefusalOf(info, true), "invalid_url");
  info.scheme = UrlScheme::kHttps;
  info.key.reset();
  EXPECT_EQ(RefusalOf(info, false), "invalid_secret");
}

}  // namespace
}  // namespace outbound::delivery::internal
