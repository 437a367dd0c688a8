#include "cli/verify.h"

#include <gtest/gtest.h>

#include "core/signing.h"

namespace outbound::cli {
namespace {

constexpr std::int64_t kNow = 1'780'000'000;

struct Signed {
  std::string key;
  std::string body = R"({"eventId":"evt_1","eventType":"target.imported"})";
  std::string sig;
};

Signed Make() {
  Signed s;
  s.key = *core::DecodeSecret(core::NewSecret());
  s.sig = core::Sign(s.key, "evt_1", kNow, s.body);
  return s;
}

TEST(VerifyWebhookTest, AcceptsTheSignatureOfTheSecret) {
  Signed s = Make();
  EXPECT_TRUE(VerifyWebhook(s.key, "evt_1", std::to_string(kNow), s.sig, s.body, kNow));
  // While a rotated secret is still valid, two signatures are sent: either one may match.
  std::string both = "v1,AAAA " + s.sig;
  EXPECT_TRUE(VerifyWebhook(s.key, "evt_1", std::to_string(kNow), both, s.body, kNow));
}

TEST(VerifyWebhookTest, RefusesATamperedBodyIdOrTimestamp) {
  Signed s = Make();
  const std::string ts = std::to_string(kNow);
  EXPECT_EQ(VerifyWebhook(s.key, "evt_1", ts, s.sig, s.body + " ", kNow).error().code,
            "invalid_signature");
  EXPECT_EQ(VerifyWebhook(s.key, "evt_2", ts, s.sig, s.body, kNow).error().code,
            "invalid_signature");
  EXPECT_EQ(
      VerifyWebhook(s.key, "evt_1", std::to_string(kNow + 1), s.sig, s.body, kNow).error().code,
      "invalid_signature");
  auto other_key = *core::DecodeSecret(core::NewSecret());
  EXPECT_EQ(VerifyWebhook(other_key, "evt_1", ts, s.sig, s.body, kNow).error().code,
            "invalid_signature");
  // A v2 signature with the right bytes is not a v1 signature.
  std::string v2 = "v2," + s.sig.substr(3);
  EXPECT_EQ(VerifyWebhook(s.key, "evt_1", ts, v2, s.body, kNow).error().code, "invalid_signature");
}

TEST(VerifyWebhookTest, RefusesOldAndFutureTimestampsAndMissingHeaders) {
  Signed s = Make();
  const std::string ts = std::to_string(kNow);
  EXPECT_TRUE(VerifyWebhook(s.key, "evt_1", ts, s.sig, s.body, kNow + 300));
  EXPECT_EQ(VerifyWebhook(s.key, "evt_1", ts, s.sig, s.body, kNow + 301).error().code,
            "timestamp_out_of_tolerance");
  EXPECT_EQ(VerifyWebhook(s.key, "evt_1", ts, s.sig, s.body, kNow - 301).error().code,
            "timestamp_out_of_tolerance");
  EXPECT_EQ(VerifyWebhook(s.key, "evt_1", "12x", s.sig, s.body, kNow).error().code,
            "invalid_timestamp");
  EXPECT_EQ(VerifyWebhook(s.key, "", ts, s.sig, s.body, kNow).error().code, "missing_header");
  EXPECT_EQ(VerifyWebhook(s.key, "evt_1", ts, "", s.body, kNow).error().code, "missing_header");
}

}  // namespace
}  // namespace outbound::cli
