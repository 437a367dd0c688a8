#include "core/json_text.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <limits>

#include "core/render.h"

namespace outbound::core {
namespace {

namespace json = boost::json;

TEST(ExactJsonTest, KeepsEveryNumbersText) {
  EXPECT_EQ(ExactJson(R"( [ 149.50 , 1e2, 1E+2, -0.0, 0.10, 12345678901234567890123, 7, -3 ] )"),
            "[149.50,1e2,1E+2,-0.0,0.10,12345678901234567890123,7,-3]");
  // What a double round trip would make of them, for contrast.
  EXPECT_EQ(ToJson(json::parse("[149.50,1e2]")), "[149.5,100]");
}

TEST(ExactJsonTest, CompactsAndReescapesTheRest) {
  EXPECT_EQ(
      ExactJson("{ \"a\" : [ true , false , null , { } , [ ] ] ,\n\t\"s\" : \"x\\u0041\\n\\\"\" }"),
      R"({"a":[true,false,null,{},[]],"s":"xA\n\""})");
  EXPECT_EQ(ExactJson(R"("\u00fc")"), "\"\xc3\xbc\"");
  EXPECT_EQ(ExactJson(R"({"k\"ey":1})"), R"({"k\"ey":1})");
}

TEST(ExactJsonTest, MemberAtAPath) {
  const std::string text = R"({"eventType":"x","billing":9,"data":{"a":[{"billing":1}],"billing":)"
                           R"({"amount":149.50,"lines":[{"q":1e2}]},"z":0.0}})";
  EXPECT_EQ(ExactJson(text, {"data", "billing"}), R"({"amount":149.50,"lines":[{"q":1e2}]})");
  EXPECT_EQ(ExactJson(text, {"data", "z"}), "0.0");
  EXPECT_EQ(ExactJson(text, {"billing"}), "9");
  EXPECT_EQ(ExactJson(text, {"data", "billing", "amount"}), "149.50");
  EXPECT_EQ(ExactJson(text, {"data", "missing"}), std::nullopt);
  EXPECT_EQ(ExactJson(text, {"eventType", "x"}), std::nullopt);  // not an object
  EXPECT_EQ(ExactJson("[1,2]", {"0"}), std::nullopt);            // arrays have no keys
}

TEST(ExactJsonTest, ADuplicateKeyCountsAsItsLast) {
  const std::string text = R"({"b":{"v":1.0},"b":{"v":2.50}})";
  EXPECT_EQ(ExactJson(text, {"b"}), R"({"v":2.50})");
  EXPECT_EQ(json::parse(text).at("b").at("v"), 2.5);  // as boost::json::parse keeps it
}

TEST(ExactJsonTest, RefusesWhatIsNotJson) {
  EXPECT_EQ(ExactJson("{\"a\":01}"), std::nullopt);
  EXPECT_EQ(ExactJson("{\"a\":1"), std::nullopt);
  EXPECT_EQ(ExactJson("{\"a\":1} x"), std::nullopt);
  EXPECT_EQ(ExactJson("{\"a\":1} {}"), std::nullopt);
  EXPECT_EQ(ExactJson(" {\"a\":1.0} \n"), "{\"a\":1.0}");
  EXPECT_EQ(ExactJson("\"\xff\""), std::nullopt);
  EXPECT_EQ(ExactJson(std::string(65, '[') + std::string(65, ']')), std::nullopt);
  EXPECT_TRUE(ExactJson(std::string(64, '[') + std::string(64, ']')));
}

TEST(RawJsonTest, OnlyRawJsonIsRaw) {
  json::value raw = RawJson("1.50");
  ASSERT_NE(IfRawJson(raw), nullptr);
  EXPECT_EQ(*IfRawJson(raw), "1.50");
  EXPECT_EQ(ToJson(raw), "1.50");
  EXPECT_EQ(IfRawJson(json::parse(R"({"raw-json":"1.50"})")), nullptr);
  // "\u00ff" is U+00FF in UTF-8 (0xC3 0xBF), never the lone 0xFF byte of the wrapper's key.
  EXPECT_EQ(IfRawJson(json::parse(R"({"\u00ffraw-json":"1.50"})")), nullptr);
  EXPECT_EQ(IfRawJson(json::parse("\"1.50\"")), nullptr);
}

}  // namespace
}  // namespace outbound::core

namespace outbound::core {
namespace {

TEST(IntegralDoubleTest, IntegersWrittenWithAFractionOnly) {
  EXPECT_EQ(IntegralDouble(441.0), 441);
  EXPECT_EQ(IntegralDouble(-3.0), -3);
  EXPECT_EQ(IntegralDouble(8.9e15), static_cast<std::int64_t>(8.9e15));
  EXPECT_FALSE(IntegralDouble(5.5));
  EXPECT_FALSE(IntegralDouble(9.0e15)) << "not exact in a double beyond";
  EXPECT_FALSE(IntegralDouble(std::numeric_limits<double>::infinity()));
  EXPECT_FALSE(IntegralDouble(std::numeric_limits<double>::quiet_NaN()));
}

}  // namespace
}  // namespace outbound::core
