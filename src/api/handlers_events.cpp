// Events: publish (tenant), list, one event with its deliveries, redeliver; the event catalog.
#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "api/errors.h"
#include "api/handlers.h"
#include "api/input.h"
#include "api/render.h"
#include "core/catalog.h"

namespace outbound::api {

namespace json = boost::json;

namespace {

constexpr std::size_t kMaxIdempotencyKey = 255;

// The Idempotency-Key header, checked: nullopt when absent.
core::Result<std::optional<std::string_view>> IdempotencyKey(const Call& call) {
  if (!call.request.idempotency_key) return std::optional<std::string_view>();
  const std::string& k = *call.request.idempotency_key;
  bool printable = !k.empty();
  for (char c : k) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) {
      printable = false;
    }
  }
  if (!printable || k.size() > kMaxIdempotencyKey) {
    return core::Fail(
        core::Error::Invalid("Idempotency-Key", "invalid_idempotency_key",
                             "Idempotency-Key must be 1 to 255 printable ASCII characters"));
  }
  return std::optional<std::string_view>(k);
}

// The answer of a publish (single or batch), as the ingest service made it.
core::Result<Response> Answer(core::Result<ingest::PublishResult> published) {
  if (!published) return core::Fail(std::move(published.error()));
  Response r;
  r.status = published->http_status;
  r.body = std::move(published->body);
  return r;
}

// Answers from the commit (ingest::PublishAsync): no handler thread waits for it (issue 8).
void PublishEvent(Context& ctx, const Call& call, Answered answered) {
  auto key = IdempotencyKey(call);
  if (!key) return answered(core::Fail(std::move(key.error())));
  BodyArena arena;  // before `body`, which must not outlive it
  auto body = ParseJson(call.request.body, arena.storage());
  if (!body) return answered(core::Fail(std::move(body.error())));
  ctx.ingest.PublishAsync(
      call.caller.tenant, *body, call.request.body, *key,
      [answered = std::move(answered)](core::Result<ingest::PublishResult> published) {
        answered(Answer(std::move(published)));
      });
}

// POST /v1/events/batch (CONTRACT §13): {"events": [...]} → 202 {"results": [{"eventId"} or
// {"error"}]} in item order.
core::Result<Response> PublishBatch(Context& ctx, const Call& call) {
  auto key = IdempotencyKey(call);
  if (!key) return core::Fail(std::move(key.error()));
  BodyArena arena;  // before `body`, which must not outlive it
  auto body = ParseJson(call.request.body, arena.storage());
  if (!body) return core::Fail(std::move(body.error()));
  auto render = [](const std::vector<ingest::BatchItemResult>& items) {
    json::array results;
    results.reserve(items.size());
    for (const auto& item : items) {
      if (item.error) {
        results.push_back(json::object{{"error", ErrorJson(*item.error)}});
      } else {
        results.push_back(json::object{{"eventId", item.event_id.value_or("")}});
      }
    }
    return json::serialize(json::object{{"results", std::move(results)}});
  };
  return Answer(
      ctx.ingest.PublishBatch(call.caller.tenant, *body, call.request.body, *key, render));
}

core::Result<Response> ListEvents(Context& ctx, const Call& call) {
  std::vector<core::FieldError> errors;
  QueryReader q(call.query, errors);
  store::EventFilter filter;
  if (auto type = q.String("eventType")) {
    if (core::ParseEventType(*type)) {
      filter.event_type = *type;
    } else {
      errors.push_back(
          {"eventType", "unknown_event_type", "unknown event type " + type->substr(0, 100)});
    }
  }
  if (auto target = q.PositiveInt("targetId")) filter.target = core::TargetId{*target};
  filter.since = q.Time("sinceUtc");
  filter.until = q.Time("untilUtc");
  store::Page page = q.Page();
  q.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));
  if (IsClient(call.caller)) filter.client = call.caller.client;

  auto list = InRead(
      ctx.store, [&](store::Txn& tx) { return tx.ListEvents(call.caller.tenant, filter, page); });
  if (!list) return core::Fail(std::move(list.error()));
  json::array data;
  for (const auto& e : list->rows) data.push_back(EventJson(e));
  return JsonResponse(200, ListJson(std::move(data), list->next));
}

core::Result<Response> GetEvent(Context& ctx, const Call& call) {
  const std::string& id = call.params.at(0);
  if (!core::IsEventId(id)) return core::Fail(NotFound("event"));
  struct Found {
    store::StoredEvent event;
    std::vector<store::DeliveryView> deliveries;
  };
  auto found = InRead(ctx.store, [&](store::Txn& tx) -> core::Result<Found> {
    auto event = tx.GetEvent(call.caller.tenant, id);
    if (!event) return core::Fail(std::move(event.error()));
    if (!*event) return core::Fail(NotFound("event"));
    auto deliveries = tx.GetDeliveries(call.caller.tenant, id, call.caller.client);
    if (!deliveries) return core::Fail(std::move(deliveries.error()));
    // A client sees events that reached one of its subscriptions or that it imported.
    if (IsClient(call.caller) && deliveries->empty() &&
        (*event)->origin_client != call.caller.client) {
      return core::Fail(NotFound("event"));
    }
    return Found{std::move(**event), std::move(*deliveries)};
  });
  if (!found) return core::Fail(std::move(found.error()));
  json::array deliveries;
  for (const auto& d : found->deliveries) {
    deliveries.push_back(DeliveryJson(found->event, d));
  }
  return JsonResponse(
      200, json::object{{"event", EventJson(found->event)}, {"deliveries", std::move(deliveries)}});
}

core::Result<Response> Redeliver(Context& ctx, const Call& call) {
  const std::string& id = call.params.at(0);
  if (!core::IsEventId(id)) return core::Fail(NotFound("event"));
  auto body = ParseJsonObject(call.request.body, true);
  if (!body) return core::Fail(std::move(body.error()));
  std::vector<core::FieldError> errors;
  ObjectReader r(*body, errors);
  auto sub_id = r.Int("subscriptionId", Need::kOptional);
  if (sub_id && *sub_id <= 0)
    r.Fail("subscriptionId", "invalid_value", "subscriptionId must be > 0");
  r.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));

  std::optional<core::SubscriptionId> sub;
  if (sub_id) sub = core::SubscriptionId{*sub_id};
  core::UnixMs now = ctx.clock.Now();
  auto count = InWrite(ctx.store, [&](store::Txn& tx) -> core::Result<store::Txn::Redelivered> {
    auto event = tx.GetEvent(call.caller.tenant, id);
    if (!event) return core::Fail(std::move(event.error()));
    if (!*event) return core::Fail(NotFound("event"));
    // A client sees events that reached one of its subscriptions or that it imported (as in
    // GetEvent); any other event is not found, before the body's subscriptionId is looked at,
    // so that the answer does not tell that the event exists.
    if (IsClient(call.caller) && (*event)->origin_client != call.caller.client) {
      auto own = tx.GetDeliveries(call.caller.tenant, id, call.caller.client);
      if (!own) return core::Fail(std::move(own.error()));
      if (own->empty()) return core::Fail(NotFound("event"));
    }
    // A test webhook is sent once (CONTRACT §13); a new one is a POST .../test away.
    if ((*event)->test_type) {
      return core::Fail(
          core::Error::Conflict("test_event",
                                "test events are not redelivered; send a new one with POST "
                                "/v1/subscriptions/{id}/test"));
    }
    if (sub) {
      auto s = tx.GetSubscription(call.caller.tenant, *sub);
      if (!s) return core::Fail(std::move(s.error()));
      if (!*s || (IsClient(call.caller) && (*s)->client != *call.caller.client)) {
        return core::Fail(NotFound("subscription"));
      }
    }
    auto n = tx.Redeliver(call.caller.tenant, id, sub, call.caller.client, now);
    if (!n) return core::Fail(std::move(n.error()));
    if (n->reopened == 0 && n->in_flight > 0) {
      // Everything asked for is claimed by a process (queued or in flight): reopening it would
      // be lost to the attempt under way, so nothing changes and the caller hears why.
      return core::Fail(core::Error::Conflict(
          "delivery_in_flight",
          "an attempt of this delivery is under way; redeliver it again once it has ended"));
    }
    if (n->reopened == 0 && sub) {
      return core::Fail(core::Error::NotFound("delivery of this event to that subscription"));
    }
    if (n->reopened == 0 && IsClient(call.caller) &&
        (*event)->origin_client != call.caller.client) {
      return core::Fail(NotFound("event"));
    }
    return *n;
  });
  if (!count) return core::Fail(std::move(count.error()));
  if (count->reopened > 0 && ctx.hooks.deliveries_due) ctx.hooks.deliveries_due();
  return JsonResponse(
      202, json::object{
               {"eventId", id}, {"redelivered", count->reopened}, {"inFlight", count->in_flight}});
}

// A list as every other (CONTRACT §8: `limit` and an opaque `cursor`), of the catalog in its
// order; the cursor is the last type of the page before. The 13 types fit the default page.
core::Result<Response> ListEventTypes(Context& ctx, const Call& call) {
  std::vector<core::FieldError> errors;
  QueryReader q(call.query, errors);
  const store::Page page = q.Page();
  q.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));
  const auto& catalog = core::Catalog();
  auto it = catalog.begin();
  if (page.after && !page.after->empty()) {
    it = std::find_if(catalog.begin(), catalog.end(),
                      [&](const auto& info) { return info.name == *page.after; });
    if (it == catalog.end()) {
      return core::Fail(
          core::Error::Invalid("cursor", "invalid_cursor", "cursor is not one this list gave out"));
    }
    ++it;
  }
  json::array data;
  std::optional<std::string> next;
  for (; it != catalog.end(); ++it) {
    if (static_cast<int>(data.size()) == page.limit) {
      next = std::string(std::prev(it)->name);
      break;
    }
    data.push_back(EventTypeJson(*it));
  }
  return JsonResponse(200, ListJson(std::move(data), next));
}

}  // namespace

void AddEventRoutes(Router& router, Context& ctx) {
  router.AddAsync("POST", "/v1/events", kTenant, [&ctx](const Call& call, Answered answered) {
    PublishEvent(ctx, call, std::move(answered));
  });
  router.Add("POST", "/v1/events/batch", kTenant, Bind(ctx, PublishBatch));
  router.Add("GET", "/v1/events", kTenant | kClient, Bind(ctx, ListEvents));
  router.Add("GET", "/v1/events/{eventId}", kTenant | kClient, Bind(ctx, GetEvent));
  router.Add("POST", "/v1/events/{eventId}/redeliver", kTenant | kClient, Bind(ctx, Redeliver));
  router.Add("GET", "/v1/event-types", kTenant | kClient, Bind(ctx, ListEventTypes));
}

}  // namespace outbound::api
