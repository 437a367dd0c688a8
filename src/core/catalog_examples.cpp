#include "core/catalog_examples.h"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <utility>

#include "core/render.h"

namespace outbound::core {
namespace {

namespace json = boost::json;

// Fixed example ids: recognisable as examples, never a tenant's records.
constexpr std::int64_t kTargetId = 900001;
constexpr std::int64_t kCustomerId = 900101;
constexpr std::int64_t kLocationId = 900201;
constexpr std::int64_t kContactId = 900301;
constexpr std::int64_t kAppointmentId = 900401;
constexpr std::int64_t kRouteId = 900501;
constexpr std::int64_t kVisitReportId = 900601;
constexpr std::int64_t kBillingEventId = 900701;
constexpr std::string_view kExampleSystem = "example_erp";

ExternalIds Ids(std::string_view source_system, std::string_view id) {
  ExternalIds ids{{std::string(kExampleSystem), "ERP-" + std::string(id)}};
  if (!source_system.empty()) ids[std::string(source_system)] = "EXAMPLE-" + std::string(id);
  return ids;
}

// The appointment's id, then `more`.
json::object WithAppointment(const json::object& more) {
  json::object o{{"appointmentId", kAppointmentId}};
  for (const auto& kv : more) o[kv.key()] = kv.value();
  return o;
}

json::object DataOf(EventType type) {
  const auto with = WithAppointment;
  constexpr std::string_view kSummary =
      "Replaced the filter cartridge and the worn door seal of the cold room; the compressor "
      "runs within its rated current. The customer asked for a quote for a second unit in the "
      "storage room, which is outside the scope of this visit and needs a site survey.";
  switch (type) {
    case EventType::kTargetImported:
      return {};
    case EventType::kTargetRejected:
      return {
          {"errors", json::array{json::object{{"field", "customerExternalId"},
                                              {"code", "unknown_reference"},
                                              {"message", "no customer with this external id"}}}}};
    case EventType::kTargetUpdated:
      return {{"changedFields", json::array{"title", "latestEndUtc"}}, {"status", "Imported"}};
    case EventType::kTargetCancelled:
      return {{"reason", "The customer cancelled the visit"}};
    case EventType::kTargetScheduled:
      return with({{"scheduledStartUtc", "2026-06-25T08:00:00Z"},
                   {"scheduledEndUtc", "2026-06-25T09:30:00Z"}});
    case EventType::kRouteSuggestionCreated:
    case EventType::kRoutePublished:
      return with(
          {{"routeId", kRouteId}, {"sequence", 2}, {"plannedArrivalUtc", "2026-06-25T08:00:00Z"}});
    case EventType::kAppointmentStarted:
      return with({{"startedAtUtc", "2026-06-25T08:04:00Z"}});
    case EventType::kAppointmentCompleted:
      return with({{"completedAtUtc", "2026-06-25T09:21:00Z"}});
    case EventType::kAppointmentProblemReported:
      return with({{"problem", json::object{{"code", "no_access"},
                                            {"description", "Nobody on site to open the gate"}}}});
    case EventType::kVisitReportApproved:
      return with({{"visitReportId", kVisitReportId}, {"summary", kSummary}});
    case EventType::kVisitReportFollowUpRequired:
      return with({{"visitReportId", kVisitReportId},
                   {"followUpReason", "A spare part must be ordered"},
                   {"summary", kSummary}});
    case EventType::kBillingEventCreated:
      // Decimal strings: billing values pass through exactly as published (CONTRACT §10).
      return with(
          {{"visitReportId", kVisitReportId},
           {"billingEventId", kBillingEventId},
           {"billing",
            json::object{{"amount", "149.50"},
                         {"currency", "EUR"},
                         {"lines", json::array{json::object{{"description", "Service visit"},
                                                            {"quantity", "1"},
                                                            {"unitPrice", "149.50"}}}}}}});
  }
  return {};
}

}  // namespace

TargetSnapshot ExampleTarget(std::string_view source_system) {
  TargetSnapshot t;
  t.target_id = kTargetId;
  t.external_ids = Ids(source_system, "T-1001");
  t.customer = CustomerSnapshot{kCustomerId, "C-10042", "Example Facility Services Ltd",
                                Ids(source_system, "C-42")};
  t.location =
      LocationSnapshot{kLocationId, "Example Street 1, Cold room", Ids(source_system, "L-7")};
  t.contact = ContactSnapshot{kContactId, "Alex Example", "+49 30 1234567", "alex@example.com",
                              Ids(source_system, "P-3")};
  return t;
}

EventRecord ExampleEvent(EventType type, std::string event_id, TenantId tenant,
                         UnixMs occurred_at) {
  EventRecord e;
  e.event_id = std::move(event_id);
  e.type = type;
  e.tenant = tenant;
  e.occurred_at = occurred_at;
  e.accepted_at = occurred_at;
  if (type != EventType::kTargetRejected) e.target_id = kTargetId;
  e.data = DataOf(type);
  return e;
}

std::string RenderExampleData(EventType type, const Recipient& recipient) {
  return RenderData(ExampleEvent(type, "", TenantId(0), 0), ExampleTarget(recipient.source_system),
                    recipient);
}

std::string TestEventData(SubscriptionId subscription) {
  return ToJson(json::object{
      {"subscriptionId", subscription.value},
      {"message", "This is a test webhook from Ordinavo Outbound; it carries no business data."}});
}

}  // namespace outbound::core
