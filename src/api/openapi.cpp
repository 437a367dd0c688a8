#include "api/openapi.h"

#include <boost/json/parse.hpp>
#include <string_view>

#include "core/catalog.h"
#include "core/catalog_examples.h"
#include "core/json_text.h"
#include "core/render.h"

namespace outbound::embedded {
std::string_view openapi_json();  // generated from src/api/openapi/openapi.json
}  // namespace outbound::embedded

namespace outbound::api {
namespace {

namespace json = boost::json;

json::object HeaderParam(std::string_view name, std::string_view description) {
  return json::object{{"name", name},
                      {"in", "header"},
                      {"required", true},
                      {"description", description},
                      {"schema", json::object{{"type", "string"}}}};
}

// One entry of `webhooks`: the POST Outbound sends for `type`, with `data_schema` as its data.
json::object Webhook(std::string_view type, std::string_view summary, json::value data_schema,
                     std::string_view extra_description = {},
                     const std::string& example_body = {}) {
  json::array params{
      HeaderParam("webhook-id", "the eventId: the same on every attempt (de-duplicate on it)"),
      HeaderParam("webhook-timestamp", "Unix seconds of this attempt"),
      HeaderParam("webhook-signature",
                  "`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, several space-separated "
                  "while a rotated secret is still valid (Standard Webhooks)"),
      HeaderParam("ordinavo-event-type", "the eventType"),
      HeaderParam("ordinavo-delivery-id", "the deliveryId of this attempt"),
      HeaderParam("ordinavo-attempt", "1-based attempt number")};
  json::object body_schema{
      {"allOf", json::array{json::object{{"$ref", "#/components/schemas/Envelope"}},
                            json::object{{"type", "object"},
                                         {"properties",
                                          json::object{{"eventType", json::object{{"const", type}}},
                                                       {"data", std::move(data_schema)}}}}}}};
  std::string description(summary);
  if (!extra_description.empty())
    description += std::string("\n\n") + std::string(extra_description);
  std::string id = "webhook_";
  for (char c : type) id += (c == '.' ? '_' : c);
  json::object media{{"schema", std::move(body_schema)}};
  // The example is the body exactly as Outbound renders it (written verbatim by core::ToJson:
  // billing numbers keep their text).
  if (!example_body.empty()) media["example"] = core::RawJson(example_body);
  json::object post{
      {"summary", summary},
      {"description", description},
      {"operationId", id},
      {"tags", json::array{"Webhooks"}},
      {"security", json::array{}},
      {"parameters", std::move(params)},
      {"requestBody",
       json::object{{"required", true},
                    {"content", json::object{{"application/json", std::move(media)}}}}},
      {"responses",
       json::object{{"2XX", json::object{{"description",
                                          "received; any other answer, or none within the request "
                                          "timeout, is retried on the schedule"}}}}}};
  return json::object{{"post", std::move(post)}};
}

json::value Ref(std::string_view schema) {
  return json::object{{"$ref", "#/components/schemas/" + std::string(schema)}};
}

json::object Build() {
  json::value parsed = json::parse(embedded::openapi_json());
  json::object doc = std::move(parsed.as_object());
  json::object webhooks;
  // Examples: the catalog's example events (the ones test webhooks send), rendered for a
  // subscriber with every payload option on and billing details allowed.
  core::Recipient everything{"logistics_erp", {}, true};
  everything.options.include_customer_context = true;
  everything.options.include_contact_details = true;
  everything.options.include_summary_preview = true;
  everything.options.include_billing_details = true;
  constexpr core::UnixMs kExampleTime = 1'782'397'860'000;  // 2026-06-25T14:31:00Z
  for (const auto& info : core::Catalog()) {
    std::string body =
        core::RenderBody(core::Envelope{"evt_01JD5Z8Q2W3E4R5T6Y7V8X9Z0A", info.name, 15,
                                        kExampleTime, "del_01JD5Z8Q9V0B1N2M3K4J5H6G7F"},
                         core::RenderExampleData(info.type, everything));
    webhooks[info.name] =
        Webhook(info.name, info.description, core::DataSchema(info.type), {}, body);
  }
  webhooks["subscription.disabled"] =
      Webhook("subscription.disabled", "Operational: a subscription was disabled",
              Ref("SubscriptionDisabledData"),
              "Sent to the tenant's operational webhook (PUT /v1/operations-webhook), signed with "
              "its own secret.");
  webhooks["delivery.dead"] =
      Webhook("delivery.dead", "Operational: a delivery exhausted its retry schedule",
              Ref("DeliveryDeadData"),
              "Sent to the tenant's operational webhook; replay with POST "
              "/v1/events/{eventId}/redeliver or /v1/subscriptions/{id}/recover.");
  webhooks["ordinavo.test"] =
      Webhook("ordinavo.test", "A test event (POST /v1/subscriptions/{id}/test)", Ref("TestData"),
              "One attempt, never retried; with an `eventType` in the request, an example of "
              "that catalog type is sent instead.");
  doc["webhooks"] = std::move(webhooks);
  return doc;
}

}  // namespace

const json::object& OpenApiObject() {
  static const json::object doc = Build();
  return doc;
}

const std::string& OpenApiDocument() {
  static const std::string text = core::ToJson(OpenApiObject());
  return text;
}

}  // namespace outbound::api
