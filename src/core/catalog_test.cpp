#include "core/catalog.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <set>

namespace outbound::core {
namespace {

namespace json = boost::json;

std::set<std::string> FieldsOf(const Error& e) {
  std::set<std::string> out;
  for (const FieldError& f : e.details) out.insert(f.field);
  return out;
}

std::string CodeOf(const Error& e, std::string_view field) {
  for (const FieldError& f : e.details) {
    if (f.field == field) return f.code;
  }
  return "<none>";
}

std::string MessageOf(const Error& e, std::string_view field) {
  for (const FieldError& f : e.details) {
    if (f.field == field) return f.message;
  }
  return "<none>";
}

TEST(CatalogTest, ThirteenTypesVerbatim) {
  ASSERT_EQ(Catalog().size(), 13u);
  struct Row {
    const char* name;
    const char* description;
    const char* status;
    bool publishable;
  };
  const Row rows[] = {
      {"target.imported", "Sent when an inbound target was imported successfully", "Imported",
       false},
      {"target.rejected", "Sent when an inbound target was rejected", "Rejected", false},
      {"target.updated", "Sent when an imported target was updated", "", false},
      {"target.cancelled", "Sent when an imported target was cancelled", "Cancelled", false},
      {"target.scheduled", "Sent when a target is scheduled as an appointment", "Scheduled", true},
      {"route.suggestion.created", "Sent when a route suggestion was created", "RouteSuggested",
       true},
      {"route.published", "Sent when a route was published to an employee", "RoutePublished", true},
      {"appointment.started", "Sent when an employee starts an appointment", "Started", true},
      {"appointment.completed", "Sent when an employee completes an appointment", "Completed",
       true},
      {"appointment.problem_reported", "Sent when an employee reports a problem", "ProblemReported",
       true},
      {"visit_report.approved", "Sent when a visit report is approved", "ReportApproved", true},
      {"visit_report.follow_up_required", "Sent when a report requires follow-up work",
       "FollowUpRequired", true},
      {"billing.event_created",
       "Sent when a billable approved visit creates a billing trigger event", "BillingTriggered",
       true},
  };
  for (int i = 0; i < kEventTypeCount; ++i) {
    const EventTypeInfo& info = Catalog()[static_cast<std::size_t>(i)];
    EXPECT_EQ(static_cast<int>(info.type), i);
    EXPECT_EQ(info.name, rows[i].name);
    EXPECT_EQ(info.description, rows[i].description);
    EXPECT_EQ(info.status, rows[i].status);
    EXPECT_EQ(info.publishable, rows[i].publishable);
    EXPECT_EQ(&Info(info.type), &info);
    EXPECT_EQ(ParseEventType(info.name), info.type);
  }
  EXPECT_EQ(ParseEventType("target.Imported"), std::nullopt);
  EXPECT_EQ(ParseEventType("subscription.disabled"), std::nullopt);
  EXPECT_EQ(ParseEventType(""), std::nullopt);
}

TEST(DataSchemaTest, EveryTypeDescribesItsData) {
  for (const EventTypeInfo& info : Catalog()) {
    SCOPED_TRACE(std::string(info.name));
    json::object s = DataSchema(info.type);
    EXPECT_EQ(s.at("$schema"), "https://json-schema.org/draft/2020-12/schema");
    EXPECT_EQ(s.at("type"), "object");
    EXPECT_EQ(s.at("description"), json::string(info.description));
    const json::object& props = s.at("properties").as_object();
    for (const char* k : {"targetId", "externalId", "sourceSystem", "status", "customerContext"}) {
      EXPECT_TRUE(props.contains(k)) << k;
    }
    const json::array& required = s.at("required").as_array();
    for (const char* k : {"targetId", "externalId", "sourceSystem", "status"}) {
      EXPECT_NE(std::find(required.begin(), required.end(), json::value(k)), required.end()) << k;
    }
    const bool report = info.type == EventType::kVisitReportApproved ||
                        info.type == EventType::kVisitReportFollowUpRequired;
    EXPECT_EQ(props.contains("summaryPreview"), report);
    EXPECT_EQ(props.contains("billing"), info.type == EventType::kBillingEventCreated);
    EXPECT_FALSE(props.contains("summary"));
    EXPECT_FALSE(props.contains("internalNotes"));
    if (!info.status.empty()) {
      EXPECT_EQ(props.at("status").at("const"), json::string(info.status));
    }
    const json::object& ctx = props.at("customerContext").at("properties").as_object();
    EXPECT_TRUE(ctx.at("customer").at("properties").as_object().contains("customerNumber"));
    EXPECT_TRUE(ctx.at("location").at("properties").as_object().contains("ordinavoLocationId"));
    EXPECT_TRUE(ctx.at("contact").at("properties").as_object().contains("displayName"));
  }
}

TEST(DataSchemaTest, TypeFields) {
  auto props = [](EventType t) { return DataSchema(t).at("properties").as_object(); };
  EXPECT_TRUE(props(EventType::kTargetRejected).contains("errors"));
  EXPECT_TRUE(props(EventType::kTargetUpdated).contains("changedFields"));
  EXPECT_TRUE(props(EventType::kTargetUpdated).at("status").as_object().contains("enum"));
  EXPECT_TRUE(props(EventType::kTargetCancelled).contains("reason"));
  auto route = props(EventType::kRoutePublished);
  EXPECT_EQ(route.at("plannedArrivalUtc").at("format"), "date-time");
  EXPECT_EQ(route.at("routeId").at("type"), "integer");
  auto problem = props(EventType::kAppointmentProblemReported).at("problem").as_object();
  EXPECT_TRUE(problem.at("properties").as_object().contains("description"));
  auto billing = props(EventType::kBillingEventCreated).at("billing").as_object();
  EXPECT_EQ(billing.at("properties").at("currency").at("pattern"), "^[A-Z]{3}$");
  // The schema's own field order follows CONTRACT.md §3.
  auto billing_props = props(EventType::kBillingEventCreated);
  std::vector<std::string> keys;
  for (const auto& kv : billing_props) keys.emplace_back(kv.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"targetId", "externalId", "sourceSystem",
                                            "appointmentId", "visitReportId", "billingEventId",
                                            "status", "billing", "customerContext"}));
  // Not required on delivery: option-controlled or optional fields.
  auto required = DataSchema(EventType::kTargetCancelled).at("required").as_array();
  EXPECT_EQ(std::find(required.begin(), required.end(), json::value("reason")), required.end());
}

TEST(ValidatePublishDataTest, ValidDataOfEveryPublishableType) {
  struct Case {
    EventType type;
    const char* data;
  };
  const Case cases[] = {
      {EventType::kTargetScheduled,
       R"({"appointmentId":441,"scheduledStartUtc":"2026-06-25T08:00:00+02:00",)"
       R"("scheduledEndUtc":"2026-06-25T07:00:00Z"})"},
      {EventType::kRouteSuggestionCreated,
       R"({"appointmentId":441,"routeId":7,"sequence":0,"plannedArrivalUtc":"2026-06-25T06:30:00Z"})"},
      {EventType::kRoutePublished,
       R"({"appointmentId":441,"routeId":7,"sequence":3,"plannedArrivalUtc":"2026-06-25T06:30:00Z"})"},
      {EventType::kAppointmentStarted,
       R"({"appointmentId":441,"startedAtUtc":"2026-06-25T14:00:00.250Z"})"},
      {EventType::kAppointmentCompleted,
       R"({"appointmentId":441,"completedAtUtc":"2026-06-25T14:31:00Z"})"},
      {EventType::kAppointmentProblemReported,
       R"({"appointmentId":441,"problem":{"code":"no_access","description":"Gate locked"}})"},
      {EventType::kVisitReportApproved, R"({"appointmentId":441,"visitReportId":9})"},
      {EventType::kVisitReportFollowUpRequired,
       R"({"appointmentId":441,"visitReportId":9,"followUpReason":"Part missing"})"},
      {EventType::kBillingEventCreated,
       R"({"appointmentId":441,"visitReportId":9,"billingEventId":3})"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(Info(c.type).name));
    auto r = ValidatePublishData(c.type, json::parse(c.data));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->at("appointmentId"), 441);
  }
}

TEST(ValidatePublishDataTest, NormalisesTimesToUtc) {
  auto r = ValidatePublishData(
      EventType::kTargetScheduled,
      json::parse(R"({"scheduledEndUtc":"2026-06-25T12:00:00.5+02:00","appointmentId":1,)"
                  R"("scheduledStartUtc":"2026-06-25T08:00:00+02:00"})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(json::serialize(*r), R"({"appointmentId":1,"scheduledStartUtc":"2026-06-25T06:00:00Z",)"
                                 R"("scheduledEndUtc":"2026-06-25T10:00:00.500Z"})");
}

TEST(ValidatePublishDataTest, ReportsEveryBadFieldAtOnce) {
  auto r = ValidatePublishData(
      EventType::kRoutePublished,
      json::parse(
          R"({"appointmentId":"441","sequence":-1,"plannedArrivalUtc":"2026-06-25T06:30:00",)"
          R"("colour":"red","customerNumber":"RRM-001"})"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "validation_failed");
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalid);
  EXPECT_EQ(FieldsOf(r.error()), (std::set<std::string>{"data.appointmentId", "data.routeId",
                                                        "data.sequence", "data.plannedArrivalUtc",
                                                        "data.colour", "data.customerNumber"}));
  EXPECT_EQ(CodeOf(r.error(), "data.appointmentId"), "invalid_type");
  EXPECT_EQ(CodeOf(r.error(), "data.routeId"), "required");
  EXPECT_EQ(CodeOf(r.error(), "data.sequence"), "invalid_value");
  EXPECT_EQ(CodeOf(r.error(), "data.plannedArrivalUtc"), "invalid_time");
  EXPECT_EQ(CodeOf(r.error(), "data.colour"), "unknown_field");
  EXPECT_EQ(CodeOf(r.error(), "data.customerNumber"), "unknown_field");
}

TEST(ValidatePublishDataTest, SingleErrorKeepsItsCode) {
  auto r = ValidatePublishData(EventType::kAppointmentCompleted,
                               json::parse(R"({"appointmentId":441})"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "required");
  EXPECT_EQ(r.error().field, "data.completedAtUtc");
}

TEST(ValidatePublishDataTest, Ids) {
  auto bad = [](const char* id) {
    auto r = ValidatePublishData(
        EventType::kAppointmentStarted,
        json::parse(std::string(R"({"startedAtUtc":"2026-06-25T14:00:00Z","appointmentId":)") + id +
                    "}"));
    return r ? std::string("ok") : r.error().details.front().code;
  };
  EXPECT_EQ(bad("1"), "ok");
  EXPECT_EQ(bad("9223372036854775807"), "ok");
  EXPECT_EQ(bad("441.0"), "ok");
  EXPECT_EQ(bad("0"), "invalid_value");
  EXPECT_EQ(bad("-3"), "invalid_value");
  EXPECT_EQ(bad("18446744073709551615"), "invalid_value");
  EXPECT_EQ(bad("1.5"), "invalid_type");
  EXPECT_EQ(bad("true"), "invalid_type");
  EXPECT_EQ(bad("\"441\""), "invalid_type");
  EXPECT_EQ(bad("null"), "required");
}

TEST(ValidatePublishDataTest, ProblemObject) {
  auto r = ValidatePublishData(EventType::kAppointmentProblemReported,
                               json::parse(R"({"appointmentId":1,"problem":{"code":5,"x":1}})"));
  ASSERT_FALSE(r);
  EXPECT_EQ(FieldsOf(r.error()), (std::set<std::string>{"data.problem.code", "data.problem.x",
                                                        "data.problem.description"}));
  auto s = ValidatePublishData(EventType::kAppointmentProblemReported,
                               json::parse(R"({"appointmentId":1,"problem":"broken"})"));
  ASSERT_FALSE(s);
  EXPECT_EQ(CodeOf(s.error(), "data.problem"), "invalid_type");
}

TEST(ValidatePublishDataTest, ReportSummaryKeptInternalNotesDropped) {
  auto r = ValidatePublishData(
      EventType::kVisitReportApproved,
      json::parse(R"({"appointmentId":1,"visitReportId":2,"summary":"All good.",)"
                  R"("internalNotes":"SECRET-MARKER"})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->at("summary"), "All good.");
  EXPECT_FALSE(r->contains("internalNotes"));
  EXPECT_EQ(json::serialize(*r).find("SECRET-MARKER"), std::string::npos);

  auto wrong = ValidatePublishData(
      EventType::kVisitReportApproved,
      json::parse(R"({"appointmentId":1,"visitReportId":2,"summary":7,"internalNotes":[]})"));
  ASSERT_FALSE(wrong);
  EXPECT_EQ(FieldsOf(wrong.error()), (std::set<std::string>{"data.summary", "data.internalNotes"}));
}

TEST(ValidatePublishDataTest, SummaryAndBillingOnlyWhereTheyBelong) {
  auto r = ValidatePublishData(
      EventType::kAppointmentCompleted,
      json::parse(R"({"appointmentId":1,"completedAtUtc":"2026-06-25T14:31:00Z","summary":"x",)"
                  R"("billing":{"amount":1,"currency":"EUR"}})"));
  ASSERT_FALSE(r);
  EXPECT_EQ(CodeOf(r.error(), "data.summary"), "unknown_field");
  EXPECT_EQ(CodeOf(r.error(), "data.billing"), "unknown_field");
}

TEST(ValidatePublishDataTest, BillingPassesThroughExactly) {
  const char* text =
      R"({"appointmentId":1,"visitReportId":2,"billingEventId":3,"internalNotes":"n",)"
      R"("billing":{"amount":"12.50","currency":"EUR","lines":[)"
      R"({"description":"Labour","quantity":1.5,"unitPrice":"5.00"},)"
      R"({"description":"Part","quantity":2,"unitPrice":4.25}]}})";
  auto r = ValidatePublishData(EventType::kBillingEventCreated, json::parse(text));
  ASSERT_TRUE(r) << r.error().message;
  const json::object& b = r->at("billing").as_object();
  EXPECT_EQ(b.at("amount"), "12.50");
  EXPECT_TRUE(b.at("lines").at(0).at("quantity").is_double());
  EXPECT_EQ(b.at("lines").at(0).at("unitPrice"), "5.00");
  EXPECT_EQ(b.at("lines").at(1).at("quantity"), 2);
  EXPECT_FALSE(r->contains("internalNotes"));
}

TEST(ValidatePublishDataTest, BillingErrorsNamed) {
  auto r = ValidatePublishData(
      EventType::kBillingEventCreated,
      json::parse(R"({"appointmentId":1,"visitReportId":2,"billingEventId":3,)"
                  R"("billing":{"amount":"12,50","currency":"eur","tax":1,"lines":[)"
                  R"({"description":"Labour","quantity":"1.","unitPrice":true},"oops",)"
                  R"({"quantity":1,"unitPrice":1,"sku":"x"}]}})"));
  ASSERT_FALSE(r);
  EXPECT_EQ(
      FieldsOf(r.error()),
      (std::set<std::string>{"data.billing.amount", "data.billing.currency", "data.billing.tax",
                             "data.billing.lines[0].quantity", "data.billing.lines[0].unitPrice",
                             "data.billing.lines[1]", "data.billing.lines[2].description",
                             "data.billing.lines[2].sku"}));
  EXPECT_EQ(CodeOf(r.error(), "data.billing.amount"), "invalid_value");
  EXPECT_EQ(CodeOf(r.error(), "data.billing.currency"), "invalid_value");
  EXPECT_EQ(CodeOf(r.error(), "data.billing.tax"), "unknown_field");
  EXPECT_EQ(CodeOf(r.error(), "data.billing.lines[0].quantity"), "invalid_value");
  EXPECT_EQ(CodeOf(r.error(), "data.billing.lines[0].unitPrice"), "invalid_type");
  EXPECT_EQ(CodeOf(r.error(), "data.billing.lines[1]"), "invalid_type");
  EXPECT_EQ(CodeOf(r.error(), "data.billing.lines[2].description"), "required");

  auto missing = ValidatePublishData(
      EventType::kBillingEventCreated,
      json::parse(R"({"appointmentId":1,"visitReportId":2,"billingEventId":3,"billing":{}})"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(FieldsOf(missing.error()),
            (std::set<std::string>{"data.billing.amount", "data.billing.currency"}));
}

TEST(ValidatePublishDataTest, DecimalStrings) {
  auto amount = [](const char* a) {
    return ValidatePublishData(
               EventType::kBillingEventCreated,
               json::parse(std::string(R"({"appointmentId":1,"visitReportId":2,"billingEventId":3,)"
                                       R"("billing":{"currency":"EUR","amount":)") +
                           a + "}}"))
        .has_value();
  };
  for (const char* ok : {"\"0\"", "\"12\"", "\"12.50\"", "\"-3.125\"", "12.5", "-1", "0"}) {
    EXPECT_TRUE(amount(ok)) << ok;
  }
  for (const char* bad : {"\"\"", "\"1.\"", "\".5\"", "\"+1\"", "\"1e3\"", "\"1,5\"", "\" 1\"",
                          "\"--1\"", "null", "[]"}) {
    EXPECT_FALSE(amount(bad)) << bad;
  }
}

TEST(ValidatePublishDataTest, ImportTypesAreNotPublishable) {
  for (EventType t : {EventType::kTargetImported, EventType::kTargetRejected,
                      EventType::kTargetUpdated, EventType::kTargetCancelled}) {
    auto r = ValidatePublishData(t, json::object{});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, "event_type_not_publishable");
    EXPECT_EQ(r.error().field, "eventType");
  }
}

TEST(ValidatePublishDataTest, DataMustBeAnObject) {
  auto r = ValidatePublishData(EventType::kAppointmentCompleted, json::array{});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "data");
  EXPECT_EQ(r.error().code, "invalid_type");
  // null is an empty object: every required field is named.
  auto n = ValidatePublishData(EventType::kAppointmentCompleted, nullptr);
  ASSERT_FALSE(n);
  EXPECT_EQ(FieldsOf(n.error()),
            (std::set<std::string>{"data.appointmentId", "data.completedAtUtc"}));
}

TEST(ValidatePublishDataTest, FollowUpReasonMustNotBeEmpty) {
  auto r = ValidatePublishData(
      EventType::kVisitReportFollowUpRequired,
      json::parse(R"({"appointmentId":1,"visitReportId":2,"followUpReason":""})"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "data.followUpReason");
}

// The schema GET /v1/event-types serves says what validation does: where an empty string is
// refused (followUpReason, problem.code, problem.description), the schema has minLength 1, so a
// publisher that checks its data against the schema is not refused for "".
TEST(DataSchemaTest, EmptyStringsRefusedWhereTheSchemaSaysMinLength) {
  auto schema = [](EventType t) { return DataSchema(t).at("properties").as_object(); };
  EXPECT_EQ(schema(EventType::kVisitReportFollowUpRequired).at("followUpReason").at("minLength"),
            1);
  const json::object problem_type = schema(EventType::kAppointmentProblemReported);
  const auto& problem = problem_type.at("problem").at("properties").as_object();
  EXPECT_EQ(problem.at("code").at("minLength"), 1);
  EXPECT_EQ(problem.at("description").at("minLength"), 1);
  for (const char* data : {R"({"appointmentId":1,"problem":{"code":"","description":"x"}})",
                           R"({"appointmentId":1,"problem":{"code":"c","description":""}})"}) {
    EXPECT_FALSE(ValidatePublishData(EventType::kAppointmentProblemReported, json::parse(data)))
        << data;
  }
}

// CONTRACT.md §10: `lines` is optional; the schema requires only amount and currency, allows
// lines to be left out or null, and validation accepts exactly that.
TEST(ValidatePublishDataTest, BillingLinesAreOptional) {
  json::object billing =
      DataSchema(EventType::kBillingEventCreated).at("properties").at("billing").as_object();
  EXPECT_EQ(billing.at("required"), json::parse(R"(["amount","currency"])"));
  EXPECT_EQ(billing.at("properties").at("lines").at("type"), json::parse(R"(["array","null"])"));
  for (const char* lines : {"", R"(,"lines":null)", R"(,"lines":[])"}) {
    auto r = ValidatePublishData(
        EventType::kBillingEventCreated,
        json::parse(std::string(R"({"appointmentId":1,"visitReportId":2,"billingEventId":3,)"
                                R"("billing":{"amount":1,"currency":"EUR")") +
                    lines + "}}"));
    ASSERT_TRUE(r) << lines << ": " << r.error().message;
    EXPECT_EQ(r->at("billing").as_object().contains("lines"), *lines != '\0') << lines;
  }
}

// As imports refuse latestEndUtc before earliestStartUtc.
TEST(ValidatePublishDataTest, ScheduledEndNotBeforeStart) {
  auto publish = [](const char* start, const char* end) {
    return ValidatePublishData(
        EventType::kTargetScheduled,
        json::parse(std::string(R"({"appointmentId":1,"scheduledStartUtc":")") + start +
                    R"(","scheduledEndUtc":")" + end + "\"}"));
  };
  auto r = publish("2026-06-25T10:00:00Z", "2026-06-25T09:59:59.999Z");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalid);  // 422
  EXPECT_EQ(FieldsOf(r.error()), (std::set<std::string>{"data.scheduledEndUtc"}));
  EXPECT_EQ(CodeOf(r.error(), "data.scheduledEndUtc"), "invalid_value");
  EXPECT_EQ(MessageOf(r.error(), "data.scheduledEndUtc"),
            "data.scheduledEndUtc must not be before data.scheduledStartUtc");
  // Compared as instants, not as text: 11:00+02:00 is before 10:00Z.
  EXPECT_FALSE(publish("2026-06-25T10:00:00Z", "2026-06-25T11:00:00+02:00"));
  EXPECT_TRUE(publish("2026-06-25T10:00:00+02:00", "2026-06-25T09:00:00Z"));  // equal: accepted
  EXPECT_TRUE(publish("2026-06-25T10:00:00Z", "2026-06-25T11:00:00Z"));
}

TEST(ValidatePublishDataTest, UnknownFieldSaysWhichNameIsMeant) {
  auto r = ValidatePublishData(
      EventType::kBillingEventCreated,
      json::parse(R"({"AppointmentId":1,"visitReportId":2,"billing_event_id":3,"Billing":null,)"
                  R"("billing":{"Amount":1,"currency":"EUR","lines":[{"Description":"x",)"
                  R"("quantity":1,"unitPrice":1}]},"other":1})"));
  ASSERT_FALSE(r);
  EXPECT_EQ(CodeOf(r.error(), "data.AppointmentId"), "unknown_field");
  EXPECT_EQ(MessageOf(r.error(), "data.AppointmentId"),
            "data.AppointmentId is not a field of billing.event_created; did you mean "
            "appointmentId?");
  EXPECT_EQ(MessageOf(r.error(), "data.billing_event_id"),
            "data.billing_event_id is not a field of billing.event_created; did you mean "
            "billingEventId?");
  EXPECT_EQ(MessageOf(r.error(), "data.Billing"),
            "data.Billing is not a field of billing.event_created; did you mean billing?");
  EXPECT_EQ(MessageOf(r.error(), "data.billing.Amount"),
            "data.billing.Amount is not a field of this object; did you mean amount?");
  EXPECT_EQ(CodeOf(r.error(), "data.billing.lines[0].Description"), "unknown_field");
  EXPECT_EQ(MessageOf(r.error(), "data.other"),
            "data.other is not a field of billing.event_created");
}

}  // namespace
}  // namespace outbound::core
