#include "core/catalog_examples.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "core/internal/catalog_fields.h"

namespace outbound::core {
namespace {

namespace json = boost::json;

Recipient AllOptions(std::string system) {
  return Recipient{std::move(system), PayloadOptions{true, true, true, true}, true};
}

TEST(CatalogExamplesTest, PublishableExamplesPassValidationUnchanged) {
  for (const EventTypeInfo& info : Catalog()) {
    if (!info.publishable) continue;
    SCOPED_TRACE(std::string(info.name));
    const EventRecord e = ExampleEvent(info.type, "evt_x", TenantId(1), 0);
    auto valid = ValidatePublishData(info.type, json::value(e.data));
    ASSERT_TRUE(valid) << valid.error().message;
    EXPECT_EQ(*valid, e.data);
  }
}

TEST(CatalogExamplesTest, EveryFieldOfEveryTypeIsFilled) {
  for (const EventTypeInfo& info : Catalog()) {
    SCOPED_TRACE(std::string(info.name));
    const json::object data =
        json::parse(RenderExampleData(info.type, AllOptions("logistics_erp"))).as_object();
    for (const internal::FieldSpec& f : internal::FieldsOf(info.type).fields) {
      ASSERT_TRUE(data.contains(f.name)) << f.name;
      EXPECT_FALSE(data.at(f.name).is_null()) << f.name;
    }
    EXPECT_TRUE(data.at("status").is_string());
    EXPECT_EQ(data.at("sourceSystem"), "logistics_erp");
    // The subscriber's own system has an example id; target.rejected has no Ordinavo target.
    EXPECT_EQ(data.at("externalId"), "EXAMPLE-T-1001");
    EXPECT_EQ(data.at("targetId").is_null(), info.type == EventType::kTargetRejected);
    const json::object& ctx = data.at("customerContext").as_object();
    EXPECT_EQ(ctx.at("customer").at("externalId"), "EXAMPLE-C-42");
    EXPECT_EQ(ctx.at("contact").at("displayName"), "Alex Example");
  }
}

TEST(CatalogExamplesTest, RenderedWithTheRecipientsOptions) {
  Recipient none{"erp", PayloadOptions{false, false, false, false}, false};
  json::object data =
      json::parse(RenderExampleData(EventType::kVisitReportApproved, none)).as_object();
  EXPECT_FALSE(data.contains("customerContext"));
  EXPECT_FALSE(data.contains("summaryPreview"));
  EXPECT_FALSE(data.contains("summary"));  // the full summary never leaves

  Recipient preview{"erp", PayloadOptions{false, true, true, false}, false};
  data = json::parse(RenderExampleData(EventType::kVisitReportApproved, preview)).as_object();
  EXPECT_TRUE(data.at("summaryPreview").is_string());
  EXPECT_FALSE(data.at("customerContext").as_object().contains("customer"));
  EXPECT_TRUE(data.at("customerContext").as_object().contains("contact"));

  // Billing only with the option AND the tenant's permission.
  Recipient billing{"erp", PayloadOptions{false, false, false, true}, false};
  data = json::parse(RenderExampleData(EventType::kBillingEventCreated, billing)).as_object();
  EXPECT_FALSE(data.contains("billing"));
  billing.billing_details_allowed = true;
  data = json::parse(RenderExampleData(EventType::kBillingEventCreated, billing)).as_object();
  EXPECT_EQ(data.at("billing").at("amount"), "149.50");
}

TEST(CatalogExamplesTest, TestEventData) {
  const json::object data = json::parse(TestEventData(SubscriptionId(42))).as_object();
  EXPECT_EQ(data.at("subscriptionId"), 42);
  EXPECT_TRUE(data.at("message").is_string());
  EXPECT_EQ(data.size(), 2u);
}

}  // namespace
}  // namespace outbound::core
