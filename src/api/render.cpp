#include "api/render.h"

#include "core/json_text.h"
#include "core/render.h"

namespace outbound::api {

namespace json = boost::json;

json::value Time(std::optional<core::UnixMs> ms) {
  if (!ms) return nullptr;
  return json::value(core::FormatUtc(*ms));
}

namespace {

template <class T>
json::value Opt(const std::optional<T>& v) {
  if (!v) return nullptr;
  return json::value(*v);
}

}  // namespace

json::object ExternalIdsJson(const core::ExternalIds& ids) {
  json::object o;
  for (const auto& [system, id] : ids) o[system] = id;
  return o;
}

json::object ClientJson(const store::Client& c) {
  return json::object{{"clientId", c.id.value},
                      {"name", c.name},
                      {"sourceSystem", c.source_system},
                      {"billingDetailsAllowed", c.billing_details_allowed},
                      {"createdAtUtc", core::FormatUtc(c.created_at)}};
}

json::object KeyJson(const store::ApiKey& k) {
  json::object o{{"keyId", k.id.value},
                 {"kind", k.kind == store::KeyKind::kClient ? "client" : "tenant"},
                 {"clientId", nullptr},
                 {"prefix", k.prefix},
                 {"createdAtUtc", core::FormatUtc(k.created_at)}};
  if (k.client) o["clientId"] = k.client->value;
  if (k.revoked_at) o["revokedAtUtc"] = core::FormatUtc(*k.revoked_at);
  return o;
}

json::object CustomerJson(const store::Customer& c) {
  return json::object{{"customerId", c.id},
                      {"customerNumber", c.customer_number},
                      {"name", c.name},
                      {"externalIds", ExternalIdsJson(c.external_ids)}};
}

json::object LocationJson(const store::Location& l) {
  return json::object{{"locationId", l.id},
                      {"customerId", l.customer_id},
                      {"name", l.name},
                      {"address", Opt(l.address)},
                      {"externalIds", ExternalIdsJson(l.external_ids)}};
}

json::object ContactJson(const store::Contact& c) {
  return json::object{{"contactId", c.id},
                      {"customerId", c.customer_id},
                      {"displayName", c.display_name},
                      {"phone", Opt(c.phone)},
                      {"email", Opt(c.email)},
                      {"externalIds", ExternalIdsJson(c.external_ids)}};
}

json::object TargetJson(const store::Target& t) {
  return json::object{{"targetId", t.id.value},
                      {"externalId", t.external_id},
                      {"sourceSystem", t.source_system},
                      {"externalIds", ExternalIdsJson(t.external_ids)},
                      {"customerId", t.customer_id},
                      {"locationId", Opt(t.location_id)},
                      {"contactId", Opt(t.contact_id)},
                      {"title", t.title},
                      {"description", Opt(t.description)},
                      {"earliestStartUtc", Time(t.earliest_start)},
                      {"latestEndUtc", Time(t.latest_end)},
                      {"durationMinutes", Opt(t.duration_minutes)},
                      {"status", t.status},
                      {"cancelReason", Opt(t.cancel_reason)},
                      {"createdAtUtc", core::FormatUtc(t.created_at)},
                      {"updatedAtUtc", core::FormatUtc(t.updated_at)}};
}

namespace {

std::string_view TypeName(const store::StoredEvent& e) {
  return e.test_type ? std::string_view(*e.test_type) : core::Info(e.record.type).name;
}

}  // namespace

json::object EventJson(const store::StoredEvent& stored) {
  const core::EventRecord& e = stored.record;
  return json::object{{"eventId", e.event_id},
                      {"eventType", TypeName(stored)},
                      {"eventVersion", "v1"},
                      {"tenantId", e.tenant.value},
                      {"occurredAtUtc", core::FormatUtc(e.occurred_at)},
                      {"source", "ordinavo"},
                      {"targetId", Opt(e.target_id)},
                      {"acceptedAtUtc", core::FormatUtc(e.accepted_at)},
                      {"test", stored.test_type.has_value()}};
}

json::object OptionsJson(const core::PayloadOptions& o) {
  return json::object{{"includeCustomerContext", o.include_customer_context},
                      {"includeContactDetails", o.include_contact_details},
                      {"includeSummaryPreview", o.include_summary_preview},
                      {"includeBillingDetails", o.include_billing_details}};
}

json::object SubscriptionJson(const store::Subscription& s, bool billing_details_allowed,
                              const std::optional<std::string>& secret) {
  json::array types;
  for (const auto& t : s.event_types) types.emplace_back(t);
  json::object headers;
  for (const auto& h : s.headers) headers[h.first] = kMasked;
  core::Recipient recipient{"", s.options, billing_details_allowed};
  json::object o{{"subscriptionId", s.id.value},
                 {"clientId", s.client.value},
                 {"url", s.url},
                 {"eventTypes", std::move(types)},
                 {"options", OptionsJson(s.options)},
                 {"effectiveOptions", OptionsJson(core::EffectiveOptions(recipient))},
                 {"ordered", s.ordered},
                 {"enabled", s.enabled},
                 {"paused", s.paused},
                 {"description", s.description},
                 {"rateLimitPerSecond", Opt(s.rate_limit_per_second)},
                 {"maxConcurrency", Opt(s.max_concurrency)},
                 {"headers", std::move(headers)},
                 {"disabledReason", Opt(s.disabled_reason)},
                 {"disabledAtUtc", Time(s.disabled_at)},
                 {"lastSuccessAtUtc", Time(s.last_success_at)},
                 {"failingSinceUtc", Time(s.failing_since)},
                 {"createdAtUtc", core::FormatUtc(s.created_at)},
                 {"updatedAtUtc", core::FormatUtc(s.updated_at)}};
  if (secret) o["secret"] = *secret;
  return o;
}

json::object AttemptJson(const store::AttemptRecord& a) {
  return json::object{{"deliveryId", a.delivery_id},
                      {"attempt", a.attempt},
                      {"attemptedAtUtc", core::FormatUtc(a.attempted_at)},
                      {"httpStatus", Opt(a.http_status)},
                      {"durationMs", a.duration_ms},
                      {"error", Opt(a.error)},
                      {"responseSnippet", Opt(a.response_snippet)}};
}

json::object DeliveryJson(const store::StoredEvent& stored, const store::DeliveryView& d) {
  const core::EventRecord& e = stored.record;
  // The body as sent, byte for byte (never re-parsed: billing numbers keep their text); an empty
  // deliveryId renders as null.
  json::value payload = core::RawJson(core::RenderBody(
      core::Envelope{e.event_id, TypeName(stored), e.tenant.value, e.occurred_at,
                     d.last_delivery_id ? std::string_view(*d.last_delivery_id) : ""},
      d.data_json));
  json::array attempts;
  for (const auto& a : d.attempts) attempts.push_back(AttemptJson(a));
  bool waiting =
      d.status == store::DeliveryStatus::kPending || d.status == store::DeliveryStatus::kFailed;
  return json::object{{"subscriptionId", d.subscription.value},
                      {"clientId", d.client.value},
                      {"status", store::ToString(d.status)},
                      {"nextAttemptAtUtc", waiting ? Time(d.next_attempt_at) : json::value()},
                      {"payload", std::move(payload)},
                      {"attempts", std::move(attempts)}};
}

json::object AttemptRowJson(const store::AttemptRow& r) {
  json::object o{{"eventId", r.event_id},
                 {"eventType", r.event_type},
                 {"status", store::ToString(r.status)},
                 {"test", r.test}};
  for (auto& kv : AttemptJson(r.attempt)) o[kv.key()] = kv.value();
  return o;
}

json::object EventTypeJson(const core::EventTypeInfo& info) {
  return json::object{{"eventType", info.name},
                      {"description", info.description},
                      {"eventVersion", "v1"},
                      {"publishable", info.publishable},
                      {"schema", core::DataSchema(info.type)}};
}

json::object ListJson(json::array data, const std::optional<std::string>& next) {
  return json::object{{"data", std::move(data)}, {"nextCursor", Opt(next)}};
}

}  // namespace outbound::api
