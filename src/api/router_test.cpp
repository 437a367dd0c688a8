#include "api/router.h"

#include <gtest/gtest.h>

namespace outbound::api {
namespace {

Handler Ok(int tag) {
  return [tag](const Call&) -> core::Result<Response> {
    Response r;
    r.status = tag;
    return r;
  };
}

TEST(RouterTest, MatchesLiteralsAndPlaceholders) {
  Router router;
  router.Add("GET", "/v1/clients", kTenant, Ok(1));
  router.Add("GET", "/v1/clients/{id}", kTenant, Ok(2));
  router.Add("POST", "/v1/clients/{id}/keys", kTenant, Ok(3));

  auto m = router.Find("GET", "/v1/clients/42");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->pattern, "/v1/clients/{id}");
  ASSERT_EQ(m.params.size(), 1u);
  EXPECT_EQ(m.params[0], "42");

  m = router.Find("POST", "/v1/clients/7/keys");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.params[0], "7");

  m = router.Find("GET", "/v1/clients");
  ASSERT_NE(m.route, nullptr);
  EXPECT_TRUE(m.params.empty());
}

TEST(RouterTest, UnknownPathAndWrongMethod) {
  Router router;
  router.Add("GET", "/v1/clients/{id}", kTenant, Ok(1));
  router.Add("DELETE", "/v1/clients/{id}", kTenant, Ok(2));

  auto m = router.Find("GET", "/v1/nothing");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_FALSE(m.path_known);

  m = router.Find("POST", "/v1/clients/3");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_TRUE(m.path_known);
  EXPECT_EQ(m.allow, "GET, DELETE");

  // Empty placeholder segments and trailing slashes do not match.
  EXPECT_FALSE(router.Find("GET", "/v1/clients/").path_known);
  EXPECT_FALSE(router.Find("GET", "/v1/clients/3/").path_known);
  EXPECT_FALSE(router.Find("GET", "").path_known);
  EXPECT_FALSE(router.Find("GET", "v1/clients/3").path_known);
}

// CONTRACT §13: literal segments win over placeholders, whatever the registration order.
TEST(RouterTest, LiteralSegmentsWinOverPlaceholders) {
  Router router;
  router.Add("GET", "/v1/events/{eventId}", kTenant, Ok(1));
  router.Add("DELETE", "/v1/events/{eventId}", kTenant, Ok(2));
  router.Add("POST", "/v1/events/batch", kTenant, Ok(3));

  auto m = router.Find("POST", "/v1/events/batch");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->pattern, "/v1/events/batch");
  EXPECT_TRUE(m.params.empty());

  // GET of the literal path is not the event "batch": 405 with the literal route's methods.
  m = router.Find("GET", "/v1/events/batch");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_TRUE(m.path_known);
  EXPECT_EQ(m.allow, "POST");

  // Other ids still reach the placeholder routes.
  m = router.Find("GET", "/v1/events/evt_1");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->pattern, "/v1/events/{eventId}");
  EXPECT_EQ(m.params.at(0), "evt_1");
  m = router.Find("PUT", "/v1/events/evt_1");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_EQ(m.allow, "GET, DELETE");
}

TEST(RouterTest, ListsEveryRouteInTheOrderAdded) {
  Router router;
  router.Add("GET", "/v1/clients/{id}", kTenant, Ok(1));
  router.Add("DELETE", "/v1/clients/{id}", kTenant | kOperator, Ok(2));
  router.Add("GET", "/healthz", kPublic, Ok(3));
  const auto& routes = router.routes();
  ASSERT_EQ(routes.size(), 3u);
  EXPECT_EQ(routes[0].method, "GET");
  EXPECT_EQ(routes[0].pattern, "/v1/clients/{id}");
  EXPECT_EQ(routes[1].method, "DELETE");
  EXPECT_EQ(routes[1].scopes, kTenant | kOperator);
  EXPECT_EQ(routes[2].pattern, "/healthz");
  // The listed route is the one Find() answers with.
  EXPECT_EQ(router.Find("DELETE", "/v1/clients/7").route, &routes[1]);
}

TEST(RouterTest, ScopeBits) {
  EXPECT_EQ(ScopeBit(CallerKind::kOperator), kOperator);
  EXPECT_EQ(ScopeBit(CallerKind::kTenant), kTenant);
  EXPECT_EQ(ScopeBit(CallerKind::kClient), kClient);
}

}  // namespace
}  // namespace outbound::api
