#include "api/errors.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace outbound::api {
namespace {

namespace json = boost::json;

TEST(ErrorsTest, StatusPerKind) {
  EXPECT_EQ(HttpStatus(core::ErrorKind::kInvalid), 422);
  EXPECT_EQ(HttpStatus(core::ErrorKind::kMalformed), 400);
  EXPECT_EQ(HttpStatus(core::ErrorKind::kNotFound), 404);
  EXPECT_EQ(HttpStatus(core::ErrorKind::kConflict), 409);
  EXPECT_EQ(HttpStatus(core::ErrorKind::kTooLarge), 413);
  EXPECT_EQ(HttpStatus(core::ErrorKind::kUnauthorized), 401);
  EXPECT_EQ(HttpStatus(core::ErrorKind::kForbidden), 403);
  EXPECT_EQ(HttpStatus(core::ErrorKind::kUnavailable), 503);
  EXPECT_EQ(HttpStatus(core::ErrorKind::kInternal), 500);
}

TEST(ErrorsTest, BodyOmitsEmptyFieldAndDetails) {
  auto v = json::parse(ErrorBody(core::Error::NotFound("client")));
  const auto& e = v.at("error").as_object();
  EXPECT_EQ(e.at("code"), "not_found");
  EXPECT_EQ(e.at("message"), "client not found");
  EXPECT_FALSE(e.contains("field"));
  EXPECT_FALSE(e.contains("details"));
}

TEST(ErrorsTest, ValidationListsEveryField) {
  auto err = core::Error::Validation({{"name", "required", "name is required"},
                                      {"sourceSystem", "invalid_type", "must be a string"}});
  auto v = json::parse(ErrorBody(err));
  const auto& e = v.at("error").as_object();
  EXPECT_EQ(e.at("code"), "validation_failed");
  EXPECT_EQ(e.at("field"), "name");
  ASSERT_EQ(e.at("details").as_array().size(), 2u);
  EXPECT_EQ(e.at("details").as_array()[1].at("field"), "sourceSystem");
  EXPECT_EQ(e.at("details").as_array()[1].at("code"), "invalid_type");
}

TEST(ErrorsTest, InternalMessagesStayInternal) {
  auto r = ErrorResponse(core::Error::Internal("sqlite: no such table deliveries"));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body.find("sqlite"), std::string::npos);
  EXPECT_NE(r.body.find("\"internal\""), std::string::npos);
}

TEST(ErrorsTest, HeadersFor503And401) {
  auto r = ErrorResponse(core::Error::Unavailable("queue full"));
  EXPECT_EQ(r.status, 503);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "Retry-After");
  r = ErrorResponse(MakeError(core::ErrorKind::kUnauthorized, "unauthorized", "no"));
  EXPECT_EQ(r.status, 401);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "WWW-Authenticate");
}

}  // namespace
}  // namespace outbound::api
