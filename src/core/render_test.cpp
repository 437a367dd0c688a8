#include "core/render.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <limits>
#include <vector>

#include "core/internal/catalog_fields.h"
#include "core/json_text.h"
#include "core/preview.h"

namespace outbound::core {
namespace {

namespace json = boost::json;

constexpr const char* kMarker = "INTERNAL-MARKER-7f3a";
constexpr UnixMs kOccurred = 1782397860000;  // 2026-06-25T14:31:00Z

TargetSnapshot SampleTarget() {
  TargetSnapshot t;
  t.target_id = 991;
  t.external_ids = {{"logistics_erp", "DEL-2026-000918"}, {"crm", "CRM-77"}};
  t.customer = CustomerSnapshot{
      12, "RRM-001", "Rhein-Ruhr Medical Supply", {{"logistics_erp", "CUST-10042"}}};
  t.location = LocationSnapshot{34, "Essen Center", {{"logistics_erp", "LOC-ESSEN-01"}}};
  t.contact = ContactSnapshot{
      56, "Anna Weber", "+49 201 1234567", std::nullopt, {{"logistics_erp", "CONT-44"}}};
  return t;
}

// Publish input for every publishable type, each with the marker planted as internalNotes.
std::string PublishInput(EventType type) {
  const std::string notes = std::string(R"("internalNotes":")") + kMarker + "\"";
  switch (type) {
    case EventType::kTargetScheduled:
      return R"({"appointmentId":441,"scheduledStartUtc":"2026-06-25T08:00:00+02:00",)"
             R"("scheduledEndUtc":"2026-06-25T09:00:00+02:00",)" +
             notes + "}";
    case EventType::kRouteSuggestionCreated:
    case EventType::kRoutePublished:
      return R"({"appointmentId":441,"routeId":7,"sequence":2,)"
             R"("plannedArrivalUtc":"2026-06-25T06:30:00Z",)" +
             notes + "}";
    case EventType::kAppointmentStarted:
      return R"({"appointmentId":441,"startedAtUtc":"2026-06-25T14:00:00Z",)" + notes + "}";
    case EventType::kAppointmentCompleted:
      return R"({"appointmentId":441,"completedAtUtc":"2026-06-25T14:31:00Z",)" + notes + "}";
    case EventType::kAppointmentProblemReported:
      return R"({"appointmentId":441,"problem":{"code":"no_access","description":"Locked"},)" +
             notes + "}";
    case EventType::kVisitReportApproved:
      return R"({"appointmentId":441,"visitReportId":9,"summary":"Filter replaced.",)" + notes +
             "}";
    case EventType::kVisitReportFollowUpRequired:
      return R"({"appointmentId":441,"visitReportId":9,"followUpReason":"Part missing",)"
             R"("summary":"Pump worn.",)" +
             notes + "}";
    case EventType::kBillingEventCreated:
      return R"({"appointmentId":441,"visitReportId":9,"billingEventId":3,)"
             R"("billing":{"amount":"12.50","currency":"EUR","lines":[)"
             R"({"description":"Labour","quantity":1.5,"unitPrice":"5.00"},)"
             R"({"description":"Part","quantity":2,"unitPrice":4.25}]},)" +
             notes + "}";
    default:
      return "";
  }
}

EventRecord SampleEvent(EventType type) {
  EventRecord e;
  e.event_id = "evt_01JD5Z8Q2W3E4R5T6Y7V8X9Z0A";
  e.type = type;
  e.tenant = TenantId(15);
  e.occurred_at = kOccurred;
  e.accepted_at = kOccurred;
  e.target_id = 991;
  switch (type) {
    case EventType::kTargetImported:
      break;
    case EventType::kTargetRejected:
      e.target_id.reset();
      e.data = json::parse(R"({"errors":[{"field":"customerExternalId","code":"not_found",)"
                           R"("message":"unknown customer"}]})")
                   .as_object();
      break;
    case EventType::kTargetUpdated:
      e.data = json::parse(R"({"status":"Scheduled","changedFields":["title","internalNotes"]})")
                   .as_object();
      break;
    case EventType::kTargetCancelled:
      e.data = json::parse(R"({"reason":"Customer called off"})").as_object();
      break;
    default: {
      auto v = ValidatePublishData(type, json::parse(PublishInput(type)));
      EXPECT_TRUE(v) << v.error().message;
      if (v) e.data = *v;
    }
  }
  return e;
}

std::vector<std::string> Keys(const json::object& o) {
  std::vector<std::string> k;
  for (const auto& kv : o) k.emplace_back(kv.key());
  return k;
}

std::vector<std::string> OwnFields(EventType type) {
  switch (type) {
    case EventType::kTargetImported:
      return {};
    case EventType::kTargetRejected:
      return {"errors"};
    case EventType::kTargetUpdated:
      return {"changedFields"};
    case EventType::kTargetCancelled:
      return {"reason"};
    case EventType::kTargetScheduled:
      return {"appointmentId", "scheduledStartUtc", "scheduledEndUtc"};
    case EventType::kRouteSuggestionCreated:
    case EventType::kRoutePublished:
      return {"appointmentId", "routeId", "sequence", "plannedArrivalUtc"};
    case EventType::kAppointmentStarted:
      return {"appointmentId", "startedAtUtc"};
    case EventType::kAppointmentCompleted:
      return {"appointmentId", "completedAtUtc"};
    case EventType::kAppointmentProblemReported:
      return {"appointmentId", "problem"};
    case EventType::kVisitReportApproved:
      return {"appointmentId", "visitReportId"};
    case EventType::kVisitReportFollowUpRequired:
      return {"appointmentId", "visitReportId", "followUpReason"};
    case EventType::kBillingEventCreated:
      return {"appointmentId", "visitReportId", "billingEventId"};
  }
  return {};
}

PayloadOptions OptionsFromBits(int bits) {
  PayloadOptions o;
  o.include_customer_context = bits & 1;
  o.include_contact_details = bits & 2;
  o.include_summary_preview = bits & 4;
  o.include_billing_details = bits & 8;
  return o;
}

// RenderData writes every key as it is, unescaped, once: each type's own field names must be
// plain names and none of the keys it writes itself (else the text would hold a key twice).
TEST(RenderDataTest, FieldNamesArePlainAndNeverAFixedKey) {
  const std::vector<std::string_view> fixed{"targetId",       "externalId", "sourceSystem",
                                            "status",         "billing",    "summaryPreview",
                                            "customerContext"};
  for (const EventTypeInfo& info : Catalog()) {
    for (const internal::FieldSpec& f : internal::FieldsOf(info.type).fields) {
      EXPECT_FALSE(f.name.empty());
      for (char c : f.name) {
        EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << info.name << ": " << f.name;
      }
      EXPECT_EQ(std::count(fixed.begin(), fixed.end(), f.name), 0) << info.name << ": " << f.name;
    }
  }
}

TEST(RenderDataTest, EveryTypeUnderEveryOptionCombination) {
  const TargetSnapshot target = SampleTarget();
  for (const EventTypeInfo& info : Catalog()) {
    const EventRecord event = SampleEvent(info.type);
    const bool report = info.type == EventType::kVisitReportApproved ||
                        info.type == EventType::kVisitReportFollowUpRequired;
    const bool billing = info.type == EventType::kBillingEventCreated;
    for (int bits = 0; bits < 16; ++bits) {
      for (bool allowed : {false, true}) {
        SCOPED_TRACE(std::string(info.name) + " options=" + std::to_string(bits) +
                     " billingAllowed=" + std::to_string(allowed));
        Recipient r{"logistics_erp", OptionsFromBits(bits), allowed};
        const std::string text = RenderData(event, target, r);
        EXPECT_EQ(text.find(kMarker), std::string::npos);
        EXPECT_EQ(text.find("\"internalNotes\":"), std::string::npos);
        EXPECT_EQ(text.find("\"summary\""), std::string::npos);
        const json::object data = json::parse(text).as_object();

        std::vector<std::string> expected = {"targetId", "externalId", "sourceSystem"};
        for (auto& f : OwnFields(info.type)) expected.push_back(f);
        expected.push_back("status");
        const bool want_preview = report && r.options.include_summary_preview;
        const bool want_billing = billing && r.options.include_billing_details && allowed;
        const bool want_ctx =
            r.options.include_customer_context || r.options.include_contact_details;
        if (want_preview) expected.push_back("summaryPreview");
        if (want_billing) expected.push_back("billing");
        if (want_ctx) expected.push_back("customerContext");
        EXPECT_EQ(Keys(data), expected);

        if (info.type == EventType::kTargetRejected) {
          EXPECT_TRUE(data.at("targetId").is_null());
        } else {
          EXPECT_EQ(data.at("targetId"), 991);
        }
        EXPECT_EQ(data.at("externalId"), "DEL-2026-000918");
        EXPECT_EQ(data.at("sourceSystem"), "logistics_erp");
        EXPECT_EQ(data.at("status"),
                  info.type == EventType::kTargetUpdated ? "Scheduled" : json::string(info.status));

        if (want_ctx) {
          const json::object& ctx = data.at("customerContext").as_object();
          std::vector<std::string> ctx_keys;
          if (r.options.include_customer_context) {
            ctx_keys = {"customer", "location"};
            EXPECT_EQ(json::serialize(ctx.at("customer")),
                      R"({"ordinavoCustomerId":12,"externalId":"CUST-10042",)"
                      R"("customerNumber":"RRM-001","name":"Rhein-Ruhr Medical Supply"})");
            EXPECT_EQ(json::serialize(ctx.at("location")),
                      R"({"ordinavoLocationId":34,"externalId":"LOC-ESSEN-01",)"
                      R"("name":"Essen Center"})");
          }
          if (r.options.include_contact_details) {
            ctx_keys.push_back("contact");
            EXPECT_EQ(
                json::serialize(ctx.at("contact")),
                R"({"ordinavoContactId":56,"externalId":"CONT-44","displayName":"Anna Weber",)"
                R"("phone":"+49 201 1234567","email":null})");
          }
          EXPECT_EQ(Keys(ctx), ctx_keys);
        }
        if (want_preview) {
          EXPECT_TRUE(data.at("summaryPreview").is_string());
        }
        if (want_billing) {
          EXPECT_NE(text.find(R"("billing":{"amount":"12.50","currency":"EUR","lines":[)"
                              R"({"description":"Labour","quantity":1.5,"unitPrice":"5.00"},)"
                              R"({"description":"Part","quantity":2,"unitPrice":4.25}]})"),
                    std::string::npos)
              << text;
        }
      }
    }
  }
}

TEST(RenderDataTest, TypeFieldValues) {
  const TargetSnapshot target = SampleTarget();
  Recipient r{"logistics_erp", OptionsFromBits(0), false};
  EXPECT_EQ(RenderData(SampleEvent(EventType::kAppointmentCompleted), target, r),
            R"({"targetId":991,"externalId":"DEL-2026-000918","sourceSystem":"logistics_erp",)"
            R"("appointmentId":441,"completedAtUtc":"2026-06-25T14:31:00Z","status":"Completed"})");
  EXPECT_EQ(RenderData(SampleEvent(EventType::kTargetScheduled), target, r),
            R"({"targetId":991,"externalId":"DEL-2026-000918","sourceSystem":"logistics_erp",)"
            R"("appointmentId":441,"scheduledStartUtc":"2026-06-25T06:00:00Z",)"
            R"("scheduledEndUtc":"2026-06-25T07:00:00Z","status":"Scheduled"})");
  EXPECT_EQ(RenderData(SampleEvent(EventType::kTargetUpdated), target, r),
            R"({"targetId":991,"externalId":"DEL-2026-000918","sourceSystem":"logistics_erp",)"
            R"("changedFields":["title","internalNotes"],"status":"Scheduled"})");
}

TEST(RenderDataTest, CancelledReasonOnlyWhenPresent) {
  EventRecord e = SampleEvent(EventType::kTargetCancelled);
  e.data = {};
  Recipient r{"logistics_erp", OptionsFromBits(0), false};
  EXPECT_EQ(RenderData(e, SampleTarget(), r),
            R"({"targetId":991,"externalId":"DEL-2026-000918","sourceSystem":"logistics_erp",)"
            R"("status":"Cancelled"})");
}

TEST(RenderDataTest, ExternalIdsResolveForTheRecipientsSystem) {
  Recipient r{"crm", PayloadOptions{}, false};
  json::object data =
      json::parse(RenderData(SampleEvent(EventType::kTargetImported), SampleTarget(), r))
          .as_object();
  EXPECT_EQ(data.at("externalId"), "CRM-77");
  EXPECT_EQ(data.at("sourceSystem"), "crm");
  const json::object& ctx = data.at("customerContext").as_object();
  EXPECT_TRUE(ctx.at("customer").at("externalId").is_null());
  EXPECT_TRUE(ctx.at("location").at("externalId").is_null());
  EXPECT_TRUE(ctx.at("contact").at("externalId").is_null());
  // The customer number always comes from the customer record.
  EXPECT_EQ(ctx.at("customer").at("customerNumber"), "RRM-001");

  Recipient none{"billing_system", PayloadOptions{}, false};
  data = json::parse(RenderData(SampleEvent(EventType::kTargetImported), SampleTarget(), none))
             .as_object();
  EXPECT_TRUE(data.at("externalId").is_null());
  EXPECT_EQ(data.at("sourceSystem"), "billing_system");
}

TEST(RenderDataTest, MissingLocationAndContactAreNull) {
  TargetSnapshot t = SampleTarget();
  t.location.reset();
  t.contact.reset();
  Recipient r{"logistics_erp", PayloadOptions{}, false};
  json::object data =
      json::parse(RenderData(SampleEvent(EventType::kTargetImported), t, r)).as_object();
  const json::object& ctx = data.at("customerContext").as_object();
  EXPECT_EQ(Keys(ctx), (std::vector<std::string>{"customer", "location", "contact"}));
  EXPECT_TRUE(ctx.at("location").is_null());
  EXPECT_TRUE(ctx.at("contact").is_null());
}

TEST(RenderDataTest, SummaryPreview) {
  Recipient r{"logistics_erp", OptionsFromBits(4), false};
  EventRecord e = SampleEvent(EventType::kVisitReportApproved);
  json::object data = json::parse(RenderData(e, SampleTarget(), r)).as_object();
  EXPECT_EQ(data.at("summaryPreview"), "Filter replaced.");

  std::string long_summary;
  for (int i = 0; i < 50; ++i) long_summary += "word" + std::to_string(i) + " ";
  e.data["summary"] = long_summary;
  data = json::parse(RenderData(e, SampleTarget(), r)).as_object();
  std::string preview(data.at("summaryPreview").as_string());
  EXPECT_EQ(preview, SummaryPreview(long_summary));
  EXPECT_LT(preview.size(), long_summary.size());
  EXPECT_EQ(preview.substr(preview.size() - 3), "\xE2\x80\xA6");

  e.data.erase("summary");
  data = json::parse(RenderData(e, SampleTarget(), r)).as_object();
  EXPECT_TRUE(data.at("summaryPreview").is_null());
}

TEST(RenderDataTest, BillingNumbersAndStringsPassThrough) {
  Recipient r{"logistics_erp", OptionsFromBits(8), true};
  EventRecord e = SampleEvent(EventType::kBillingEventCreated);
  for (const char* amount : {"12.5", "\"12.50\"", "12", "\"0.10\"", "1234567.89", "-0.5"}) {
    auto v = ValidatePublishData(
        EventType::kBillingEventCreated,
        json::parse(std::string(R"({"appointmentId":1,"visitReportId":2,"billingEventId":3,)"
                                R"("billing":{"amount":)") +
                    amount + R"(,"currency":"EUR"}})"));
    ASSERT_TRUE(v) << amount;
    e.data = *v;
    std::string text = RenderData(e, SampleTarget(), r);
    EXPECT_NE(text.find(std::string(R"("billing":{"amount":)") + amount + R"(,"currency":"EUR"})"),
              std::string::npos)
        << text;
  }
  e.data.erase("billing");
  json::object data = json::parse(RenderData(e, SampleTarget(), r)).as_object();
  EXPECT_TRUE(data.at("billing").is_null());
}

// CONTRACT.md §10: a JSON number keeps its text, from the publish request (read with ExactJson,
// as ingest does) through the stored event (EventDataText / ParseEventData) to the payload.
TEST(RenderDataTest, BillingKeepsThePublishedNumberText) {
  const std::string published =
      R"({"appointmentId":1,"visitReportId":2,"billingEventId":3,"billing": { "amount": 149.50,)"
      R"( "currency": "EUR", "lines": [{"description": "Filter", "quantity": 1e2,)"
      R"( "unitPrice": 1.4950E+0}, {"description": "Big", "quantity": 12345678901234567890123,)"
      R"( "unitPrice": "0.50"}]}})";
  const std::string exact =
      R"("billing":{"amount":149.50,"currency":"EUR","lines":[{"description":"Filter",)"
      R"("quantity":1e2,"unitPrice":1.4950E+0},{"description":"Big",)"
      R"("quantity":12345678901234567890123,"unitPrice":"0.50"}]})";
  auto v = ValidatePublishData(EventType::kBillingEventCreated, json::parse(published));
  ASSERT_TRUE(v) << v.error().message;
  EventRecord e = SampleEvent(EventType::kBillingEventCreated);
  e.data = *v;
  auto billing = ExactJson(published, {"billing"});
  ASSERT_TRUE(billing);
  e.data["billing"] = RawJson(*billing);

  const Recipient r{"logistics_erp", OptionsFromBits(8), true};
  std::string text = RenderData(e, SampleTarget(), r);
  EXPECT_NE(text.find(exact), std::string::npos) << text;
  EXPECT_TRUE(json::parse(text).is_object());

  // Stored and read back, it renders the same, byte for byte.
  const std::string stored = EventDataText(e.data);
  EXPECT_NE(stored.find(exact), std::string::npos) << stored;
  auto read = ParseEventData(stored);
  ASSERT_TRUE(read);
  EventRecord again = e;
  again.data = *read;
  EXPECT_EQ(RenderData(again, SampleTarget(), r), text);

  // Without lines: no lines.
  const std::string no_lines = R"({"billing":{"currency":"EUR","amount":1e2}})";
  e.data["billing"] = RawJson(*ExactJson(no_lines, {"billing"}));
  text = RenderData(e, SampleTarget(), r);
  EXPECT_NE(text.find(R"("billing":{"currency":"EUR","amount":1e2})"), std::string::npos) << text;
}

TEST(RenderDataTest, BillingNeedsOptionAndPermission) {
  EventRecord e = SampleEvent(EventType::kBillingEventCreated);
  EXPECT_EQ(
      RenderData(e, SampleTarget(), {"logistics_erp", OptionsFromBits(8), false}).find("billing\""),
      std::string::npos);
  EXPECT_EQ(
      RenderData(e, SampleTarget(), {"logistics_erp", OptionsFromBits(0), true}).find("billing\""),
      std::string::npos);
  EXPECT_NE(
      RenderData(e, SampleTarget(), {"logistics_erp", OptionsFromBits(8), true}).find("billing\""),
      std::string::npos);
}

TEST(EffectiveOptionsTest, BillingOffUnlessAllowed) {
  Recipient r{"x", OptionsFromBits(15), false};
  EXPECT_FALSE(EffectiveOptions(r).include_billing_details);
  EXPECT_TRUE(EffectiveOptions(r).include_summary_preview);
  r.billing_details_allowed = true;
  EXPECT_TRUE(EffectiveOptions(r).include_billing_details);
  EXPECT_EQ(PayloadOptions{}, OptionsFromBits(3));  // the seed's defaults
}

TEST(RenderBodyTest, ContractExampleExactly) {
  EventRecord e = SampleEvent(EventType::kAppointmentCompleted);
  std::string data = RenderData(e, SampleTarget(), {"logistics_erp", OptionsFromBits(0), false});
  std::string body = RenderBody({"evt_01JD5Z8Q2W3E4R5T6Y7V8X9Z0A", "appointment.completed", 15,
                                 kOccurred, "del_01JD5Z8Q9V0B1N2M3K4J5H6G7F"},
                                data);
  EXPECT_EQ(body,
            R"({"eventId":"evt_01JD5Z8Q2W3E4R5T6Y7V8X9Z0A","eventType":"appointment.completed",)"
            R"("eventVersion":"v1","tenantId":15,"occurredAtUtc":"2026-06-25T14:31:00Z",)"
            R"("deliveryId":"del_01JD5Z8Q9V0B1N2M3K4J5H6G7F","source":"ordinavo",)"
            R"("data":{"targetId":991,"externalId":"DEL-2026-000918",)"
            R"("sourceSystem":"logistics_erp","appointmentId":441,)"
            R"("completedAtUtc":"2026-06-25T14:31:00Z","status":"Completed"}})");
  json::object parsed = json::parse(body).as_object();
  EXPECT_EQ(Keys(parsed),
            (std::vector<std::string>{"eventId", "eventType", "eventVersion", "tenantId",
                                      "occurredAtUtc", "deliveryId", "source", "data"}));
}

TEST(RenderBodyTest, MillisecondsAndEscaping) {
  std::string body = RenderBody({"evt_\"x\\", "t\n", 1, kOccurred + 7, "del_\x01"}, "{}");
  json::object parsed = json::parse(body).as_object();
  EXPECT_EQ(parsed.at("eventId"), "evt_\"x\\");
  EXPECT_EQ(parsed.at("eventType"), "t\n");
  EXPECT_EQ(parsed.at("deliveryId"), "del_\x01");
  EXPECT_EQ(parsed.at("occurredAtUtc"), "2026-06-25T14:31:00.007Z");
}

TEST(RenderBodyTest, EmptyDeliveryIdIsNull) {
  std::string body = RenderBody({"evt_1", "appointment.completed", 1, kOccurred, ""}, "{}");
  EXPECT_TRUE(json::parse(body).as_object().at("deliveryId").is_null()) << body;
}

// AppendJsonString looks at eight bytes at a time: every byte value, at every place of strings
// shorter and longer than a word, escapes as Boost.JSON's serializer escapes it.
TEST(AppendJsonStringTest, EveryByteAtEveryPlaceEscapesAsBoostDoes) {
  for (int byte = 0; byte < 256; ++byte) {
    for (std::size_t length = 1; length <= 24; ++length) {
      for (std::size_t at = 0; at < length; ++at) {
        std::string text;
        for (std::size_t k = 0; k < length; ++k) text.push_back(static_cast<char>('a' + k % 26));
        text[at] = static_cast<char>(byte);
        if (at + 3 < length) text[at + 3] = '"';  // a second one in the same word
        std::string out;
        AppendJsonString(out, text);
        ASSERT_EQ(out, json::serialize(json::string(text)))
            << "byte " << byte << " at " << at << " of " << length;
      }
    }
  }
  std::string plain(37, 'x');
  std::string out = "prefix:";
  AppendJsonString(out, plain);
  EXPECT_EQ(out, "prefix:\"" + plain + "\"");
  out.clear();
  AppendJsonString(out, "K\xc3\xb6ln \xe2\x82\xac 12\x7f\x1f\\");
  EXPECT_EQ(out, "\"K\xc3\xb6ln \xe2\x82\xac 12\x7f\\u001f\\\\\"");
}

TEST(ToJsonTest, MatchesBoostExceptForDoubles) {
  json::value v =
      json::parse(R"({"s":"a\"b\\c\u0001\u00fc","n":null,"b":true,"i":-5,"u":18446744073709551615,)"
                  R"("a":[1,"x",{}],"o":{"k":[]}})");
  EXPECT_EQ(ToJson(v), json::serialize(v));
  EXPECT_EQ(ToJson(json::parse("12.5")), "12.5");
  EXPECT_EQ(ToJson(json::parse("0.1")), "0.1");
  EXPECT_EQ(ToJson(json::parse("[1e2, 19.99]")), "[100,19.99]");
  EXPECT_EQ(ToJson(json::value(std::numeric_limits<double>::infinity())), "null");
}

TEST(ToJsonTest, WritesRawJsonVerbatim) {
  json::object o{{"a", 1}, {"raw", RawJson(R"({"x":149.50,"y":[1e2]})")}, {"z", 2.5}};
  EXPECT_EQ(ToJson(o), R"({"a":1,"raw":{"x":149.50,"y":[1e2]},"z":2.5})");
}

// An object is written by its own overload (no copy into a value first), as its value would be:
// nested and top-level RawJson alike.
TEST(ToJsonTest, AnObjectIsWrittenAsItsValueWouldBe) {
  const json::object nested{{"a", 1}, {"raw", RawJson(R"({"x":149.50})")}, {"s", "q\"\n"}};
  EXPECT_EQ(ToJson(nested), ToJson(json::value(nested)));
  EXPECT_EQ(ToJson(nested), R"({"a":1,"raw":{"x":149.50},"s":"q\"\n"})");
  const json::object top = RawJson("[1e2, 0.50]").as_object();
  EXPECT_EQ(ToJson(top), "[1e2, 0.50]");
  EXPECT_EQ(ToJson(top), ToJson(json::value(top)));
  EXPECT_EQ(ToJson(json::object{}), "{}");
}

}  // namespace
}  // namespace outbound::core
