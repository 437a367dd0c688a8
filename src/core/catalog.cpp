#include "core/catalog.h"

#include <algorithm>
#include <array>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/field_names.h"
#include "core/internal/catalog_fields.h"
#include "core/json_text.h"
#include "core/render.h"

namespace outbound::core {

using internal::FieldKind;
using internal::FieldSpec;
using internal::TypeFields;

namespace {

namespace json = boost::json;

constexpr std::array<EventTypeInfo, kEventTypeCount> kCatalog = {{
    {EventType::kTargetImported, "target.imported",
     "Sent when an inbound target was imported successfully", "Imported", false},
    {EventType::kTargetRejected, "target.rejected", "Sent when an inbound target was rejected",
     "Rejected", false},
    {EventType::kTargetUpdated, "target.updated", "Sent when an imported target was updated", "",
     false},
    {EventType::kTargetCancelled, "target.cancelled", "Sent when an imported target was cancelled",
     "Cancelled", false},
    {EventType::kTargetScheduled, "target.scheduled",
     "Sent when a target is scheduled as an appointment", "Scheduled", true},
    {EventType::kRouteSuggestionCreated, "route.suggestion.created",
     "Sent when a route suggestion was created", "RouteSuggested", true},
    {EventType::kRoutePublished, "route.published",
     "Sent when a route was published to an employee", "RoutePublished", true},
    {EventType::kAppointmentStarted, "appointment.started",
     "Sent when an employee starts an appointment", "Started", true},
    {EventType::kAppointmentCompleted, "appointment.completed",
     "Sent when an employee completes an appointment", "Completed", true},
    {EventType::kAppointmentProblemReported, "appointment.problem_reported",
     "Sent when an employee reports a problem", "ProblemReported", true},
    {EventType::kVisitReportApproved, "visit_report.approved",
     "Sent when a visit report is approved", "ReportApproved", true},
    {EventType::kVisitReportFollowUpRequired, "visit_report.follow_up_required",
     "Sent when a report requires follow-up work", "FollowUpRequired", true},
    {EventType::kBillingEventCreated, "billing.event_created",
     "Sent when a billable approved visit creates a billing trigger event", "BillingTriggered",
     true},
}};

// The statuses a target can have (target.updated reports the current one).
constexpr std::array<std::string_view, 12> kStatuses = {
    "Imported",        "Rejected",       "Cancelled",        "Scheduled",
    "RouteSuggested",  "RoutePublished", "Started",          "Completed",
    "ProblemReported", "ReportApproved", "FollowUpRequired", "BillingTriggered"};

constexpr FieldSpec kAppointmentId{"appointmentId", FieldKind::kId, true,
                                   "Ordinavo id of the appointment"};
constexpr FieldSpec kVisitReportId{"visitReportId", FieldKind::kId, true,
                                   "Ordinavo id of the visit report"};

constexpr FieldSpec kRejectedFields[] = {
    {"errors", FieldKind::kErrors, true, "Why the import item was rejected, one entry per field"}};
constexpr FieldSpec kUpdatedFields[] = {
    {"changedFields", FieldKind::kStringArray, true,
     "Names of the import fields that changed (e.g. title, customerExternalId)"}};
constexpr FieldSpec kCancelledFields[] = {
    {"reason", FieldKind::kString, false, "Why the target was cancelled, when given"}};
constexpr FieldSpec kScheduledFields[] = {
    kAppointmentId,
    {"scheduledStartUtc", FieldKind::kDateTime, true, "Planned start of the appointment (UTC)"},
    {"scheduledEndUtc", FieldKind::kDateTime, true, "Planned end of the appointment (UTC)"}};
constexpr FieldSpec kRouteFields[] = {
    kAppointmentId,
    {"routeId", FieldKind::kId, true, "Ordinavo id of the route"},
    {"sequence", FieldKind::kCount, true, "Position of the appointment within the route"},
    {"plannedArrivalUtc", FieldKind::kDateTime, true, "Planned arrival at the location (UTC)"}};
constexpr FieldSpec kStartedFields[] = {
    kAppointmentId,
    {"startedAtUtc", FieldKind::kDateTime, true, "When the employee started (UTC)"}};
constexpr FieldSpec kCompletedFields[] = {
    kAppointmentId,
    {"completedAtUtc", FieldKind::kDateTime, true, "When the employee completed (UTC)"}};
constexpr FieldSpec kProblemFields[] = {
    kAppointmentId, {"problem", FieldKind::kProblem, true, "The reported problem"}};
constexpr FieldSpec kApprovedFields[] = {kAppointmentId, kVisitReportId};
constexpr FieldSpec kFollowUpFields[] = {
    kAppointmentId,
    kVisitReportId,
    {"followUpReason", FieldKind::kString, true, "Why follow-up work is required"}};
constexpr FieldSpec kBillingFields[] = {
    kAppointmentId,
    kVisitReportId,
    {"billingEventId", FieldKind::kId, true, "Ordinavo id of the billing trigger event"}};

const TypeFields kTypeFields[kEventTypeCount] = {
    {{}, false, false},                // target.imported
    {kRejectedFields, false, false},   // target.rejected
    {kUpdatedFields, false, false},    // target.updated
    {kCancelledFields, false, false},  // target.cancelled
    {kScheduledFields, false, false},  // target.scheduled
    {kRouteFields, false, false},      // route.suggestion.created
    {kRouteFields, false, false},      // route.published
    {kStartedFields, false, false},    // appointment.started
    {kCompletedFields, false, false},  // appointment.completed
    {kProblemFields, false, false},    // appointment.problem_reported
    {kApprovedFields, true, false},    // visit_report.approved
    {kFollowUpFields, true, false},    // visit_report.follow_up_required
    {kBillingFields, false, true},     // billing.event_created
};

// ---- JSON Schema -------------------------------------------------------------------------

json::array Types(std::initializer_list<std::string_view> names) {
  json::array a;
  for (auto n : names) a.emplace_back(n);
  return a;
}

json::object Described(json::object schema, std::string_view description) {
  if (!description.empty()) schema["description"] = description;
  return schema;
}

json::object StringSchema() { return json::object{{"type", "string"}}; }

json::object ObjectSchema(json::object properties, std::initializer_list<std::string_view> required,
                          bool nullable) {
  json::object s;
  if (nullable) {
    s["type"] = Types({"object", "null"});
  } else {
    s["type"] = "object";
  }
  s["properties"] = std::move(properties);
  s["required"] = Types(required);
  return s;
}

json::object NonEmptyStringSchema() {
  json::object s = StringSchema();
  s["minLength"] = 1;
  return s;
}

json::object FieldSchema(const FieldSpec& f) {
  json::object s;
  switch (f.kind) {
    case FieldKind::kId:
      s = {{"type", "integer"}, {"minimum", 1}};
      break;
    case FieldKind::kCount:
      s = {{"type", "integer"}, {"minimum", 0}};
      break;
    case FieldKind::kString:
      s = StringSchema();
      if (f.required) s["minLength"] = 1;  // Validation refuses "" for a required string
      break;
    case FieldKind::kDateTime:
      s = {{"type", "string"}, {"format", "date-time"}};
      break;
    case FieldKind::kProblem:
      s = ObjectSchema({{"code", NonEmptyStringSchema()}, {"description", NonEmptyStringSchema()}},
                       {"code", "description"}, false);
      break;
    case FieldKind::kStringArray:
      s = {{"type", "array"}, {"items", StringSchema()}};
      break;
    case FieldKind::kErrors:
      s = {{"type", "array"},
           {"items",
            ObjectSchema(
                {{"field", StringSchema()}, {"code", StringSchema()}, {"message", StringSchema()}},
                {"field", "code", "message"}, false)}};
      break;
  }
  return Described(std::move(s), f.description);
}

json::object DecimalSchema(std::string_view description) {
  return Described({{"type", Types({"number", "string"})}, {"pattern", "^-?[0-9]+(\\.[0-9]+)?$"}},
                   description);
}

json::object BillingSchema() {
  json::object line = ObjectSchema({{"description", StringSchema()},
                                    {"quantity", DecimalSchema("A JSON number or a decimal string, "
                                                               "exactly as published")},
                                    {"unitPrice", DecimalSchema("A JSON number or a decimal "
                                                                "string, exactly as published")}},
                                   {"description", "quantity", "unitPrice"}, false);
  json::object s = ObjectSchema(
      {{"amount", DecimalSchema("A JSON number or a decimal string, exactly as published")},
       {"currency",
        Described({{"type", "string"}, {"pattern", "^[A-Z]{3}$"}}, "ISO 4217 currency code")},
       {"lines", Described({{"type", Types({"array", "null"})}, {"items", std::move(line)}},
                           "Optional: absent when the publisher left it out, null when it "
                           "sent null, otherwise its items exactly as published")}},
      {"amount", "currency"}, true);
  return Described(std::move(s),
                   "Billing details as published; only with includeBillingDetails on a client "
                   "allowed billing details (null when the event carried none)");
}

json::object ExternalIdSchema() {
  return Described({{"type", Types({"string", "null"})}},
                   "The record's id in the subscribing client's source system, or null");
}

json::object CustomerContextSchema() {
  json::object customer =
      ObjectSchema({{"ordinavoCustomerId", {{"type", "integer"}}},
                    {"externalId", ExternalIdSchema()},
                    {"customerNumber", StringSchema()},
                    {"name", StringSchema()}},
                   {"ordinavoCustomerId", "externalId", "customerNumber", "name"}, true);
  json::object location = ObjectSchema({{"ordinavoLocationId", {{"type", "integer"}}},
                                        {"externalId", ExternalIdSchema()},
                                        {"name", StringSchema()}},
                                       {"ordinavoLocationId", "externalId", "name"}, true);
  json::object contact =
      ObjectSchema({{"ordinavoContactId", {{"type", "integer"}}},
                    {"externalId", ExternalIdSchema()},
                    {"displayName", StringSchema()},
                    {"phone", {{"type", Types({"string", "null"})}}},
                    {"email", {{"type", Types({"string", "null"})}}}},
                   {"ordinavoContactId", "externalId", "displayName", "phone", "email"}, true);
  json::object s{
      {"type", "object"},
      {"properties",
       json::object{{"customer", Described(std::move(customer), "With includeCustomerContext")},
                    {"location", Described(std::move(location),
                                           "With includeCustomerContext; "
                                           "null when the target has no "
                                           "location")},
                    {"contact", Described(std::move(contact),
                                          "With includeContactDetails; "
                                          "null when the target has no "
                                          "contact")}}}};
  return Described(std::move(s),
                   "Absent when both includeCustomerContext and includeContactDetails are off");
}

// ---- validation --------------------------------------------------------------------------

class Checker {
 public:
  void Add(std::string field, std::string code, std::string message) {
    errors_.push_back({std::move(field), std::move(code), std::move(message)});
  }
  std::vector<FieldError>& errors() { return errors_; }

  // A date-time field read by Field(), when it was valid.
  std::optional<UnixMs> Time(std::string_view name) const {
    for (const auto& [n, t] : times_) {
      if (n == name) return t;
    }
    return std::nullopt;
  }

  // Integers arrive as int64, uint64 or (written "441.0") an integral double.
  std::optional<std::int64_t> Integer(const std::string& path, const json::value& v,
                                      std::int64_t min) {
    std::optional<std::int64_t> n;
    if (v.is_int64()) {
      n = v.get_int64();
    } else if (v.is_uint64()) {
      if (v.get_uint64() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        Add(path, "invalid_value", path + " is too large");
        return std::nullopt;
      }
      n = static_cast<std::int64_t>(v.get_uint64());
    } else if (v.is_double() && IntegralDouble(v.get_double())) {
      n = IntegralDouble(v.get_double());
    } else {
      Add(path, "invalid_type", path + " must be an integer");
      return std::nullopt;
    }
    if (*n < min) {
      Add(path, "invalid_value",
          path + (min == 1 ? " must be a positive integer" : " must not be negative"));
      return std::nullopt;
    }
    return n;
  }

  const json::string* String(const std::string& path, const json::value& v, bool non_empty) {
    if (!v.is_string()) {
      Add(path, "invalid_type", path + " must be a string");
      return nullptr;
    }
    if (non_empty && v.get_string().empty()) {
      Add(path, "required", path + " must not be empty");
      return nullptr;
    }
    return &v.get_string();
  }

  // Reports every key of `o` not in `allowed`.
  void Unknown(const std::string& prefix, const json::object& o,
               std::initializer_list<std::string_view> allowed) {
    for (const auto& kv : o) {
      bool known = false;
      for (auto a : allowed) known = known || kv.key() == a;
      if (!known) {
        std::string path = prefix + "." + std::string(kv.key());
        Add(path, "unknown_field",
            path + " is not a field of this object" + DidYouMean(kv.key(), allowed));
      }
    }
  }

  // Members that must be there and not null.
  const json::value* Member(const std::string& prefix, const json::object& o,
                            std::string_view name) {
    const json::value* v = o.if_contains(name);
    if (v == nullptr || v->is_null()) {
      std::string path = prefix + "." + std::string(name);
      Add(path, "required", path + " is required");
      return nullptr;
    }
    return v;
  }

  // A JSON number or a decimal string; the value itself is kept untouched by the caller.
  void Decimal(const std::string& path, const json::value& v) {
    if (v.is_int64() || v.is_uint64()) return;
    if (v.is_double()) {
      if (!std::isfinite(v.get_double())) Add(path, "invalid_value", path + " must be finite");
      return;
    }
    if (!v.is_string()) {
      Add(path, "invalid_type", path + " must be a number or a decimal string");
      return;
    }
    if (!IsDecimalString(v.get_string())) {
      Add(path, "invalid_value", path + " must be a decimal such as \"12.50\"");
    }
  }

  static bool IsDecimalString(std::string_view s) {
    std::size_t i = 0;
    if (i < s.size() && s[i] == '-') ++i;
    std::size_t digits = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == digits) return false;
    if (i == s.size()) return true;
    if (s[i] != '.') return false;
    ++i;
    std::size_t frac = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i > frac && i == s.size();
  }

  void Field(const FieldSpec& f, const json::value& v, json::object& out) {
    const std::string path = "data." + std::string(f.name);
    switch (f.kind) {
      case FieldKind::kId:
      case FieldKind::kCount:
        if (auto n = Integer(path, v, f.kind == FieldKind::kId ? 1 : 0)) out[f.name] = *n;
        break;
      case FieldKind::kString:
        if (auto* s = String(path, v, f.required)) out[f.name] = *s;
        break;
      case FieldKind::kDateTime: {
        if (!v.is_string()) {
          Add(path, "invalid_type", path + " must be an RFC 3339 date-time string");
          break;
        }
        auto t = ParseRfc3339(v.get_string());
        if (!t) {
          Add(path, "invalid_time", path + ": " + t.error().message);
          break;
        }
        out[f.name] = FormatUtc(*t);
        times_.emplace_back(f.name, *t);
        break;
      }
      case FieldKind::kProblem: {
        if (!v.is_object()) {
          Add(path, "invalid_type", path + " must be an object {code, description}");
          break;
        }
        const json::object& o = v.get_object();
        Unknown(path, o, {"code", "description"});
        const json::value* code = Member(path, o, "code");
        const json::value* desc = Member(path, o, "description");
        const json::string* code_s = code ? String(path + ".code", *code, true) : nullptr;
        const json::string* desc_s = desc ? String(path + ".description", *desc, true) : nullptr;
        if (code_s && desc_s)
          out[f.name] = json::object{{"code", *code_s}, {"description", *desc_s}};
        break;
      }
      case FieldKind::kStringArray:
      case FieldKind::kErrors:
        // Only the import types carry these, and they are not publishable.
        Add(path, "unknown_field", path + " is not a field of this event type");
        break;
    }
  }

  void Billing(const json::value& v) {
    const std::string path = "data.billing";
    if (!v.is_object()) {
      Add(path, "invalid_type", path + " must be an object {amount, currency, lines}");
      return;
    }
    const json::object& o = v.get_object();
    Unknown(path, o, {"amount", "currency", "lines"});
    if (const json::value* amount = Member(path, o, "amount")) Decimal(path + ".amount", *amount);
    if (const json::value* currency = Member(path, o, "currency")) {
      if (auto* s = String(path + ".currency", *currency, true)) {
        bool ok = s->size() == 3;
        for (char c : *s) ok = ok && c >= 'A' && c <= 'Z';
        if (!ok) {
          Add(path + ".currency", "invalid_value",
              path + ".currency must be an ISO 4217 code such as \"EUR\"");
        }
      }
    }
    const json::value* lines = o.if_contains("lines");
    if (lines == nullptr || lines->is_null()) return;
    if (!lines->is_array()) {
      Add(path + ".lines", "invalid_type", path + ".lines must be an array");
      return;
    }
    std::size_t i = 0;
    for (const json::value& line : lines->get_array()) {
      const std::string lp = path + ".lines[" + std::to_string(i++) + "]";
      if (!line.is_object()) {
        Add(lp, "invalid_type", lp + " must be an object {description, quantity, unitPrice}");
        continue;
      }
      const json::object& lo = line.get_object();
      Unknown(lp, lo, {"description", "quantity", "unitPrice"});
      if (const json::value* d = Member(lp, lo, "description"))
        String(lp + ".description", *d, false);
      if (const json::value* q = Member(lp, lo, "quantity")) Decimal(lp + ".quantity", *q);
      if (const json::value* p = Member(lp, lo, "unitPrice")) Decimal(lp + ".unitPrice", *p);
    }
  }

 private:
  std::vector<FieldError> errors_;
  std::vector<std::pair<std::string_view, UnixMs>> times_;
};

// Date-time fields of one type that must come in order: the end not before the start (imports
// refuse latestEndUtc before earliestStartUtc the same way). An equal pair is a zero-length
// appointment, which imports accept too.
struct OrderedTimes {
  EventType type;
  std::string_view start;
  std::string_view end;
};
constexpr OrderedTimes kOrderedTimes[] = {
    {EventType::kTargetScheduled, "scheduledStartUtc", "scheduledEndUtc"}};

}  // namespace

namespace internal {

const TypeFields& FieldsOf(EventType type) { return kTypeFields[static_cast<int>(type)]; }

}  // namespace internal

std::span<const EventTypeInfo> Catalog() { return kCatalog; }

const EventTypeInfo& Info(EventType type) { return kCatalog[static_cast<std::size_t>(type)]; }

std::optional<EventType> ParseEventType(std::string_view name) {
  for (const EventTypeInfo& info : kCatalog) {
    if (info.name == name) return info.type;
  }
  return std::nullopt;
}

boost::json::object DataSchema(EventType type) {
  const EventTypeInfo& info = Info(type);
  const TypeFields& tf = internal::FieldsOf(type);

  json::object props;
  json::array required;
  props["targetId"] = Described({{"type", Types({"integer", "null"})}},
                                type == EventType::kTargetRejected
                                    ? "Always null: a rejected target was never created"
                                    : "Ordinavo id of the target");
  props["externalId"] =
      Described({{"type", Types({"string", "null"})}},
                "The target's id in the subscribing client's source system, or null");
  props["sourceSystem"] =
      Described(StringSchema(), "The source system of the subscribing integration client");
  required = Types({"targetId", "externalId", "sourceSystem"});
  for (const FieldSpec& f : tf.fields) {
    props[f.name] = FieldSchema(f);
    if (f.required) required.emplace_back(f.name);
  }
  if (info.status.empty()) {
    json::array statuses;
    for (auto s : kStatuses) statuses.emplace_back(s);
    props["status"] = Described({{"type", "string"}, {"enum", std::move(statuses)}},
                                "The target's current status");
  } else {
    props["status"] = json::object{{"type", "string"}, {"const", info.status}};
  }
  required.emplace_back("status");
  if (tf.has_summary) {
    props["summaryPreview"] = Described(
        {{"type", Types({"string", "null"})}, {"maxLength", 200}},
        "With includeSummaryPreview: the report summary shortened to at most 200 characters at a "
        "word boundary, ending in \"…\" when shortened; null when the report has no summary");
  }
  if (tf.has_billing) props["billing"] = BillingSchema();
  props["customerContext"] = CustomerContextSchema();

  return json::object{{"$schema", "https://json-schema.org/draft/2020-12/schema"},
                      {"title", std::string(info.name) + " data (v1)"},
                      {"description", info.description},
                      {"type", "object"},
                      {"properties", std::move(props)},
                      {"required", std::move(required)}};
}

Result<boost::json::object> ValidatePublishData(EventType type, const boost::json::value& data) {
  const EventTypeInfo& info = Info(type);
  if (!info.publishable) {
    return Fail(
        Error::Invalid("eventType", "event_type_not_publishable",
                       std::string(info.name) + " is emitted by imports and cannot be published"));
  }
  static const json::object kEmpty;
  if (!data.is_object() && !data.is_null()) {
    return Fail(Error::Invalid("data", "invalid_type", "data must be an object"));
  }
  const json::object& in = data.is_object() ? data.get_object() : kEmpty;
  const TypeFields& tf = internal::FieldsOf(type);

  Checker check;
  json::object out;
  for (const FieldSpec& f : tf.fields) {
    const json::value* v = in.if_contains(f.name);
    if (v == nullptr || v->is_null()) {
      if (f.required) {
        std::string path = "data." + std::string(f.name);
        check.Add(path, "required", path + " is required");
      }
      continue;
    }
    check.Field(f, *v, out);
  }
  for (const auto& kv : in) {
    const std::string_view key = kv.key();
    bool own = false;
    for (const FieldSpec& f : tf.fields) own = own || f.name == key;
    if (own) continue;
    const std::string path = "data." + std::string(key);
    if (key == "internalNotes") {
      // Accepted so publishers can send their whole record, and dropped right here.
      if (!kv.value().is_string() && !kv.value().is_null()) {
        check.Add(path, "invalid_type", path + " must be a string");
      }
    } else if (key == "summary" && tf.has_summary) {
      if (kv.value().is_null()) continue;
      if (check.String(path, kv.value(), false)) out["summary"] = kv.value();
    } else if (key == "billing" && tf.has_billing) {
      if (kv.value().is_null()) continue;
      std::size_t before = check.errors().size();
      check.Billing(kv.value());
      // Kept verbatim: amounts and prices go out exactly as they came in.
      if (check.errors().size() == before) out["billing"] = kv.value();
    } else if (key == "customerNumber") {
      check.Add(path, "unknown_field",
                "data.customerNumber is not accepted: customer numbers come from the customer "
                "record");
    } else {
      std::vector<std::string_view> known{"internalNotes"};
      for (const FieldSpec& f : tf.fields) known.push_back(f.name);
      if (tf.has_summary) known.emplace_back("summary");
      if (tf.has_billing) known.emplace_back("billing");
      check.Add(path, "unknown_field",
                path + " is not a field of " + std::string(info.name) + DidYouMean(key, known));
    }
  }
  for (const OrderedTimes& o : kOrderedTimes) {
    if (o.type != type) continue;
    auto start = check.Time(o.start);
    auto end = check.Time(o.end);
    if (start && end && *end < *start) {
      const std::string path = "data." + std::string(o.end);
      check.Add(path, "invalid_value", path + " must not be before data." + std::string(o.start));
    }
  }
  if (!check.errors().empty()) return Fail(Error::Validation(std::move(check.errors())));
  return out;
}

std::string EventDataText(const boost::json::object& data) { return ToJson(data); }

std::optional<boost::json::object> ParseEventData(std::string_view text) {
  boost::system::error_code ec;
  json::value data = json::parse(text, ec);
  if (ec || !data.is_object()) return std::nullopt;
  json::object& o = data.as_object();
  if (json::value* billing = o.if_contains("billing"); billing && !billing->is_null()) {
    auto exact = ExactJson(text, {"billing"});
    if (!exact) return std::nullopt;
    *billing = RawJson(*exact);
  }
  return std::move(o);
}

bool IsTargetStatus(std::string_view status) {
  return std::find(kStatuses.begin(), kStatuses.end(), status) != kStatuses.end();
}

}  // namespace outbound::core
