// The event catalog: the 13 event types of the seed, their descriptions (verbatim), the status
// each one reports, and the fields of their `data`. One field table per type drives both the
// JSON Schema served by GET /v1/event-types and the validation of POST /v1/events, so the two
// cannot drift apart. Pure; thread-safe (immutable after static initialisation).
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/result.h"

namespace outbound::core {

enum class EventType {
  kTargetImported,
  kTargetRejected,
  kTargetUpdated,
  kTargetCancelled,
  kTargetScheduled,
  kRouteSuggestionCreated,
  kRoutePublished,
  kAppointmentStarted,
  kAppointmentCompleted,
  kAppointmentProblemReported,
  kVisitReportApproved,
  kVisitReportFollowUpRequired,
  kBillingEventCreated,
};
inline constexpr int kEventTypeCount = 13;

struct EventTypeInfo {
  EventType type;
  std::string_view name;         // "appointment.completed"
  std::string_view description;  // the seed's sentence, verbatim
  std::string_view status;       // "Completed"; empty for target.updated (the target's status)
  bool publishable;              // through POST /v1/events (false for the four import types)
};

std::span<const EventTypeInfo> Catalog();
// True for one of the statuses a target can have ("Imported", "Started", …; case-sensitive, as
// the API writes them).
bool IsTargetStatus(std::string_view status);
const EventTypeInfo& Info(EventType type);
std::optional<EventType> ParseEventType(std::string_view name);

// JSON Schema (draft 2020-12) of the delivered `data` of one type, eventVersion v1.
boost::json::object DataSchema(EventType type);

// Validates the `data` of POST /v1/events for a publishable type. Returns what Outbound keeps of
// it: the type's fields (appointmentId, routeId, ...), the full `summary` of reports and
// `billing` of billing events (as parsed: the caller, who has the request's text, replaces it
// with its exact text, see json_text.h). `internalNotes` is accepted and dropped here, so it
// never reaches the store. Unknown fields (with the name meant, when one is only written another
// way), wrong types, missing required fields and an end before its start (scheduledEndUtc) give
// a Validation error naming every bad field as "data.<name>".
Result<boost::json::object> ValidatePublishData(EventType type, const boost::json::value& data);

// An event's data as stored (CONTRACT.md §10: payloads are text, never re-encoded):
// EventDataText writes it with core::ToJson (a RawJson billing byte for byte); ParseEventData
// reads it back with `billing` as RawJson again, so a stored event renders exactly as the
// accepted one did. nullopt: not a JSON object.
std::string EventDataText(const boost::json::object& data);
std::optional<boost::json::object> ParseEventData(std::string_view text);

}  // namespace outbound::core
