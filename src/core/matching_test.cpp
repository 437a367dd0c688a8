#include "core/matching.h"

#include <gtest/gtest.h>

#include "core/catalog.h"

namespace outbound::core {
namespace {

TEST(MatchingTest, ExactWildcardAndPrefix) {
  EXPECT_TRUE(Matches("*", "appointment.completed"));
  EXPECT_TRUE(Matches("appointment.completed", "appointment.completed"));
  EXPECT_FALSE(Matches("appointment.completed", "appointment.started"));
  EXPECT_TRUE(Matches("route.*", "route.suggestion.created"));
  EXPECT_TRUE(Matches("route.*", "route.published"));
  EXPECT_TRUE(Matches("route.suggestion.*", "route.suggestion.created"));
  EXPECT_FALSE(Matches("route.*", "target.imported"));
  EXPECT_FALSE(Matches("route.*", "route"));
  EXPECT_FALSE(Matches("rout.*", "route.published"));
  EXPECT_FALSE(Matches("route*", "route.published"));
  EXPECT_FALSE(Matches("", "route.published"));
}

TEST(MatchingTest, MatchesAny) {
  std::vector<std::string> patterns = {"target.*", "billing.event_created"};
  EXPECT_TRUE(MatchesAny(patterns, "target.rejected"));
  EXPECT_TRUE(MatchesAny(patterns, "billing.event_created"));
  EXPECT_FALSE(MatchesAny(patterns, "visit_report.approved"));
  EXPECT_FALSE(MatchesAny({}, "target.imported"));
}

TEST(MatchingTest, ValidPatterns) {
  for (const EventTypeInfo& info : Catalog()) EXPECT_TRUE(IsValidPattern(info.name)) << info.name;
  for (const char* p : {"*", "target.*", "route.*", "route.suggestion.*", "appointment.*",
                        "visit_report.*", "billing.*"}) {
    EXPECT_TRUE(IsValidPattern(p)) << p;
  }
  for (const char* p : {"", "target.unknown", "nothing.*", "*.*", "route*", ".*", "targ.*",
                        "target.**", "*target", "subscription.disabled", "delivery.dead"}) {
    EXPECT_FALSE(IsValidPattern(p)) << p;
  }
}

TEST(MatchingTest, OperationalTypesMatchNoPattern) {
  // §11: operational events are not in the catalog; only "*" would match their name, and they
  // never go through subscription matching. A prefix pattern must not reach them.
  EXPECT_FALSE(Matches("subscription.*", "target.imported"));
}

}  // namespace
}  // namespace outbound::core
