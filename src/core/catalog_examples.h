// Example events of the catalog (CONTRACT §13): what POST /v1/subscriptions/{id}/test sends for a
// catalog type, and what the API document shows as the payload of each type. One source for
// both, beside the catalog whose field tables they fill. The examples use fixed example ids
// (never a tenant's targets or directory records), so a test webhook tells the receiver nothing
// about real data. Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "core/catalog.h"
#include "core/clock.h"
#include "core/ids.h"
#include "core/model.h"

namespace outbound::core {

// The event type of a plain test webhook (no eventType asked for) and the fields of its `data`.
inline constexpr std::string_view kTestEventType = "ordinavo.test";

// The example target and its directory records, with external ids in `source_system` (the
// subscribing client's system, so that `externalId` is not null) and in an example ERP.
TargetSnapshot ExampleTarget(std::string_view source_system);

// An example event of `type`: every field of the type's `data` filled (a report summary and
// billing details too, so that includeSummaryPreview and includeBillingDetails show what they
// add). `event_id`, `tenant` and `occurred_at` are the caller's. For publishable types, `data`
// passes ValidatePublishData unchanged.
EventRecord ExampleEvent(EventType type, std::string event_id, TenantId tenant, UnixMs occurred_at);

// The `data` of an example of `type` as a subscriber with `recipient` receives it: the example
// event rendered (RenderData) with ExampleTarget(recipient.source_system).
std::string RenderExampleData(EventType type, const Recipient& recipient);

// The `data` of an `ordinavo.test` webhook: {"subscriptionId": .., "message": ..}.
std::string TestEventData(SubscriptionId subscription);

}  // namespace outbound::core
