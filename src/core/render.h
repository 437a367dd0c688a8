// Payload rendering (CONTRACT.md §3–5, §10). Pure and thread-safe.
//
// RenderData builds the `data` object for one recipient: targetId, externalId and sourceSystem
// resolved for the recipient's source system (externalId null where the target has none there),
// the type's fields, `status`, then what the options allow: `summaryPreview`
// (includeSummaryPreview, visit_report.* only), `billing` (includeBillingDetails AND
// billing_details_allowed, billing.event_created only), `customerContext` (customer and location
// with includeCustomerContext, contact with includeContactDetails; no key when both are off). The
// full summary, internal notes and secrets never appear.
//
// RenderBody wraps rendered data in the envelope, fields in the seed's order.
#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <string_view>

#include "core/model.h"

namespace outbound::core {

std::string RenderData(const EventRecord& event, const TargetSnapshot& target,
                       const Recipient& recipient);

struct Envelope {
  std::string_view event_id;
  std::string_view event_type;
  std::int64_t tenant_id = 0;
  UnixMs occurred_at = 0;
  std::string_view delivery_id;
};
// {"eventId":..,"eventType":..,"eventVersion":"v1","tenantId":..,"occurredAtUtc":..,
//  "deliveryId":..,"source":"ordinavo","data":<data_json>}; "deliveryId":null when delivery_id is
// empty (a delivery not attempted yet, as GET /v1/events/{id} shows it).
std::string RenderBody(const Envelope& envelope, std::string_view data_json);

// The payload options the recipient actually gets (billing off unless allowed).
PayloadOptions EffectiveOptions(const Recipient& recipient);

// Compact JSON of a value, like boost::json::serialize but with doubles in their shortest
// round-trip decimal form ("12.5", not boost 1.81's "1.25E1") and a RawJson value (json_text.h)
// written byte for byte: that is how billing numbers keep their published text. Non-finite doubles
// (never produced by a JSON parser) become null.
std::string ToJson(const boost::json::value& value);
// The same for an object, without first copying it into a value (an event's data, per event).
std::string ToJson(const boost::json::object& object);
// Appends `text` as a quoted JSON string (escaping quotes, backslashes and control characters).
void AppendJsonString(std::string& out, std::string_view text);

}  // namespace outbound::core
