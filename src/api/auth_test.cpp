#include "api/auth.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace outbound::api {
namespace {

// The operator is known by the hash of the configured token (OperatorTokenHash, made once): the
// token itself is the operator, another token or one longer by a character is not, and with no
// operator token (or an empty one) nothing is.
TEST(AuthTest, TheOperatorIsKnownByTheConfiguredTokensHash) {
  KeyCache keys(1000, 16);
  auto is_operator = [&keys](const std::string& token, const std::optional<std::string>& op) {
    auto got = AuthenticateWithoutStore("Bearer " + token, OperatorTokenHash(op), 0, keys);
    return got && *got && (*got)->kind == CallerKind::kOperator;
  };
  const std::optional<std::string> first = "operator-token-one-0123456789";
  const std::optional<std::string> second = "operator-token-two-0123456789";
  EXPECT_TRUE(is_operator(*first, first));
  EXPECT_FALSE(is_operator(*second, first));
  EXPECT_FALSE(is_operator(*first + "x", first));
  EXPECT_TRUE(is_operator(*second, second));
  EXPECT_FALSE(is_operator(*first, second));
  EXPECT_FALSE(is_operator(*first, std::nullopt));
  EXPECT_FALSE(OperatorTokenHash(std::optional<std::string>("")));
  EXPECT_FALSE(is_operator("", std::optional<std::string>("")));
  EXPECT_EQ(OperatorTokenHash(first)->size(), 64u);
}

}  // namespace
}  // namespace outbound::api
