#include "core/signing.h"

#include <gtest/gtest.h>

namespace outbound::core {
namespace {

TEST(SigningTest, StandardWebhooksTestVector) {
  auto key = DecodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  ASSERT_TRUE(key) << key.error().message;
  EXPECT_EQ(key->size(), 24u);
  // Each thread reuses one HMAC context: a signature with a longer key just before changes
  // nothing of the next.
  (void)Sign(std::string(64, 'x'), "msg_other", 1, "{}");
  EXPECT_EQ(Sign(*key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST(SigningTest, SignatureDependsOnEveryPart) {
  std::string key(32, 'k');
  std::string base = Sign(key, "evt_1", 100, "{}");
  EXPECT_NE(base, Sign(key, "evt_2", 100, "{}"));
  EXPECT_NE(base, Sign(key, "evt_1", 101, "{}"));
  EXPECT_NE(base, Sign(key, "evt_1", 100, "{ }"));
  EXPECT_NE(base, Sign(std::string(32, 'j'), "evt_1", 100, "{}"));
  EXPECT_EQ(base, Sign(key, "evt_1", 100, "{}"));
}

TEST(SigningTest, NewSecretRoundTrips) {
  std::string s = NewSecret();
  EXPECT_EQ(s.rfind("whsec_", 0), 0u);
  auto key = DecodeSecret(s);
  ASSERT_TRUE(key);
  EXPECT_EQ(key->size(), 32u);
  EXPECT_NE(s, NewSecret());
}

TEST(SigningTest, DecodeSecretRejects) {
  for (const char* s : {"", "whsec_", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                        "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!!",
                        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",  // 22 bytes
                        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"}) {
    auto k = DecodeSecret(s);
    EXPECT_FALSE(k) << s;
    if (!k) {
      EXPECT_EQ(k.error().code, "invalid_secret");
    }
  }
  EXPECT_TRUE(DecodeSecret("whsec_" + Base64Encode(std::string(64, 'x'))));
  EXPECT_FALSE(DecodeSecret("whsec_" + Base64Encode(std::string(65, 'x'))));
  EXPECT_FALSE(DecodeSecret("whsec_" + Base64Encode(std::string(23, 'x'))));
}

TEST(Base64Test, EncodeDecodeWithPadding) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(*Base64Decode("Zg=="), "f");
  EXPECT_EQ(*Base64Decode("Zm8="), "fo");
  EXPECT_EQ(*Base64Decode("Zm9v"), "foo");
  EXPECT_EQ(*Base64Decode(""), "");
  std::string binary("\0\xff\x10\x80", 4);
  EXPECT_EQ(*Base64Decode(Base64Encode(binary)), binary);
}

TEST(Base64Test, DecodeRejectsMalformed) {
  for (const char* s : {"Zg", "Zg=", "Z===", "Zg==Zg==", "Zm9v!", "=Zg=", "Zm 9v"}) {
    EXPECT_FALSE(Base64Decode(s)) << s;
  }
}

TEST(Sha256HexTest, KnownValues) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(RetiredSecretsTest, ReadWhatIsWrittenAndTheOneSecretOfOlderBuilds) {
  const std::vector<RetiredSecret> two = {{"whsec_AAAA", 2000}, {"whsec_BBBB", 1500}};
  EXPECT_EQ(WriteRetiredSecrets(two), "whsec_AAAA@2000 whsec_BBBB@1500");
  auto back = ReadRetiredSecrets(WriteRetiredSecrets(two), 9);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].secret, "whsec_AAAA");
  EXPECT_EQ(back[0].expires_at, 2000);
  EXPECT_EQ(back[1].secret, "whsec_BBBB");
  EXPECT_EQ(back[1].expires_at, 1500);
  // One secret alone is written as older builds wrote it, the secret itself (its end is the
  // column's), so that they still read it beside this one.
  EXPECT_EQ(WriteRetiredSecrets({{"whsec_ONE", 5000}}), "whsec_ONE");
  // One secret without an end (written before several were kept, or alone): the column's end.
  auto legacy = ReadRetiredSecrets("whsec_CCCC", 777);
  ASSERT_EQ(legacy.size(), 1u);
  EXPECT_EQ(legacy[0].secret, "whsec_CCCC");
  EXPECT_EQ(legacy[0].expires_at, 777);
  EXPECT_TRUE(ReadRetiredSecrets("", 1).empty());
  EXPECT_EQ(ReadRetiredSecrets("whsec_X@notanumber whsec_Y@5", 1).size(), 1u);
}

TEST(RetiredSecretsTest, RetiringKeepsTheUnexpiredNewestFirstAndAtMostFour) {
  std::vector<RetiredSecret> kept;
  UnixMs now = 1000;
  for (int i = 0; i < 6; ++i, now += 10) {
    kept = RetireSecret("whsec_" + std::to_string(i), now, 100, std::move(kept));
  }
  ASSERT_EQ(kept.size(), kMaxRetiredSecrets);
  EXPECT_EQ(kept[0].secret, "whsec_5");
  EXPECT_EQ(kept[0].expires_at, 1150);
  EXPECT_EQ(kept[3].secret, "whsec_2");
  // Those whose grace has ended go.
  kept = RetireSecret("whsec_6", 1145, 100, std::move(kept));
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].secret, "whsec_6");
  EXPECT_EQ(kept[1].secret, "whsec_5");
}

}  // namespace
}  // namespace outbound::core
