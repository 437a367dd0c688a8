#include "api/auth.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace outbound::api {
namespace {

// The operator token's hash is kept between requests (IsOperatorToken): a token that is not the
// operator's is refused, and when the configured token changes the old one stops working at once.
TEST(AuthTest, TheOperatorTokenIsTheConfiguredOneAfterAChange) {
  KeyCache keys(1000, 16);
  auto is_operator = [&keys](const std::string& token, const std::optional<std::string>& op) {
    auto got = AuthenticateWithoutStore("Bearer " + token, op, 0, keys);
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
  EXPECT_FALSE(is_operator("", std::optional<std::string>("")));
}

}  // namespace
}  // namespace outbound::api
