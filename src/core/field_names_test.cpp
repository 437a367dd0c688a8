#include "core/field_names.h"

#include <gtest/gtest.h>

#include <array>
#include <set>
#include <string>
#include <string_view>

namespace outbound::core {
namespace {

TEST(FieldNamesTest, SameNameLoosely) {
  struct Case {
    std::string_view written;
    std::string_view name;
    bool same;
  };
  const Case cases[] = {
      {"IncludeCustomerContext", "includeCustomerContext", true},
      {"include_customer_context", "includeCustomerContext", true},
      {"INCLUDE-CONTACT-DETAILS", "includeContactDetails", true},
      {"url", "url", true},
      {"includeCustomer", "includeCustomerContext", false},
      {"includeCustomerContexts", "includeCustomerContext", false},
      {"", "a", false},
  };
  for (const Case& c : cases) EXPECT_EQ(SameNameLoosely(c.written, c.name), c.same) << c.written;
}

TEST(FieldNamesTest, DidYouMeanEveryOptionTheSeedsWay) {
  constexpr std::array<std::string_view, 4> kOptions = {
      "includeCustomerContext", "includeContactDetails", "includeSummaryPreview",
      "includeBillingDetails"};
  for (std::string_view seed : {"IncludeCustomerContext", "IncludeContactDetails",
                                "IncludeSummaryPreview", "IncludeBillingDetails"}) {
    std::string meant(seed);
    meant[0] = 'i';
    EXPECT_EQ(DidYouMean(seed, kOptions), "; did you mean " + meant + "?");
  }
  EXPECT_EQ(DidYouMean("includeCustomerContext", kOptions), "");  // the name itself
  EXPECT_EQ(DidYouMean("somethingElse", kOptions), "");
  const std::set<std::string, std::less<>> seen{"eventTypes", "url"};
  EXPECT_EQ(DidYouMean("EventTypes", seen), "; did you mean eventTypes?");
}

}  // namespace
}  // namespace outbound::core
