#include "core/secretbox.h"

#include <gtest/gtest.h>

namespace outbound::core {
namespace {

TEST(SecretBoxTest, SealsAndOpens) {
  auto box = SecretBox::FromBase64Key(SecretBox::NewBase64Key());
  ASSERT_TRUE(box);
  const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  std::string sealed = box->Seal(secret);
  EXPECT_EQ(sealed.rfind("v1:", 0), 0u);
  EXPECT_EQ(sealed.find(secret), std::string::npos);
  EXPECT_NE(box->Seal(secret), sealed) << "a fresh nonce each time";
  auto opened = box->Open(sealed);
  ASSERT_TRUE(opened);
  EXPECT_EQ(*opened, secret);
}

TEST(SecretBoxTest, AnotherKeyOrAlteredValueIsAnError) {
  auto a = SecretBox::FromBase64Key(SecretBox::NewBase64Key());
  auto b = SecretBox::FromBase64Key(SecretBox::NewBase64Key());
  ASSERT_TRUE(a && b);
  std::string sealed = a->Seal("payload");
  auto wrong = b->Open(sealed);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, "secrets_key_mismatch");
  sealed[sealed.size() - 3] = sealed[sealed.size() - 3] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(a->Open(sealed));
  EXPECT_FALSE(a->Open("plain text"));
}

TEST(SecretBoxTest, KeyMustBe32Bytes) {
  EXPECT_FALSE(SecretBox::FromBase64Key("c2hvcnQ="));
  EXPECT_FALSE(SecretBox::FromBase64Key("not base64 at all!"));
}

}  // namespace
}  // namespace outbound::core
