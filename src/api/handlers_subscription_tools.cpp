// A subscription's tools (CONTRACT §13): send it a test webhook, and the stats of its attempts.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <vector>

#include "api/errors.h"
#include "api/handlers.h"
#include "api/input.h"
#include "api/render.h"
#include "core/catalog_examples.h"

namespace outbound::api {

namespace json = boost::json;

namespace {

// Stats: at most this many buckets per answer (a week of 5 minutes; 5 years of days), so that
// one request's work and answer stay bounded.
constexpr std::int64_t kMaxStatsBuckets = 2000;
constexpr core::UnixMs kDefaultStatsSpan = 24LL * 3600 * 1000;

struct BucketSize {
  std::string_view name;
  core::UnixMs ms;
};
constexpr BucketSize kBucketSizes[] = {
    {"5m", 5LL * 60 * 1000}, {"1h", 3600LL * 1000}, {"1d", 24LL * 3600 * 1000}};

// UTC-aligned start of the bucket holding `t` (floor, also before 1970).
core::UnixMs AlignDown(core::UnixMs t, core::UnixMs bucket) {
  core::UnixMs q = t / bucket;
  if (t % bucket != 0 && t < 0) --q;
  return q * bucket;
}

core::Result<Response> SendTestEvent(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "subscription");
  if (!id) return core::Fail(std::move(id.error()));
  auto body = ParseJsonObject(call.request.body, true);
  if (!body) return core::Fail(std::move(body.error()));
  std::vector<core::FieldError> errors;
  ObjectReader r(*body, errors);
  std::optional<core::EventType> type;
  if (auto name = r.String("eventType", Need::kOptional, 100)) {
    type = core::ParseEventType(*name);
    if (!type) {
      r.Fail("eventType", "unknown_event_type",
             "eventType is one of the catalog's types (GET /v1/event-types); leave it out for a "
             "plain ordinavo.test webhook");
    }
  }
  r.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));

  const core::SubscriptionId sub{*id};
  const std::string type_name(type ? core::Info(*type).name : core::kTestEventType);
  const core::UnixMs now = ctx.clock.Now();
  const std::string event_id = "evt_" + ctx.ids.Next(now);
  auto sent = InWrite(ctx.store, [&](store::Txn& tx) -> core::Result<bool> {
    auto s = VisibleSubscription(tx, call.caller, sub);
    if (!s) return core::Fail(std::move(s.error()));
    if (!s->enabled) {
      return core::Fail(core::Error::Conflict(
          "subscription_disabled", "the subscription is disabled: enable it to send a test"));
    }
    std::string data;
    if (type) {
      auto client = tx.GetClient(call.caller.tenant, s->client);
      if (!client) return core::Fail(std::move(client.error()));
      if (!*client) return core::Fail(NotFound("subscription"));
      data = core::RenderExampleData(*type, core::Recipient{(*client)->source_system, s->options,
                                                            (*client)->billing_details_allowed});
    } else {
      data = core::TestEventData(sub);
    }
    if (auto st = tx.InsertTestEvent(call.caller.tenant, sub, event_id, type_name, data, now);
        !st) {
      return core::Fail(std::move(st.error()));
    }
    return true;
  });
  if (!sent) return core::Fail(std::move(sent.error()));
  if (ctx.hooks.deliveries_due) ctx.hooks.deliveries_due();
  return JsonResponse(
      202,
      json::object{{"eventId", event_id}, {"eventType", type_name}, {"subscriptionId", sub.value}});
}

core::Result<Response> SubscriptionStats(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "subscription");
  if (!id) return core::Fail(std::move(id.error()));
  std::vector<core::FieldError> errors;
  QueryReader q(call.query, errors);
  const std::optional<core::UnixMs> since = q.Time("sinceUtc");
  const BucketSize* size = &kBucketSizes[1];
  if (auto name = q.String("bucket")) {
    size = nullptr;
    for (const BucketSize& b : kBucketSizes) {
      if (b.name == *name) size = &b;
    }
    if (size == nullptr)
      errors.push_back({"bucket", "invalid_bucket", "bucket is one of 5m, 1h, 1d"});
  }
  q.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));

  // Buckets from the one holding sinceUtc to the one holding now (newest last, the current one
  // partial); a sinceUtc in the future has none.
  const core::UnixMs now = ctx.clock.Now();
  store::StatsWindow window;
  window.bucket_ms = size->ms;
  window.since = AlignDown(since.value_or(now - kDefaultStatsSpan), size->ms);
  const core::UnixMs last = AlignDown(now, size->ms);
  const std::int64_t count = window.since > last ? 0 : (last - window.since) / size->ms + 1;
  if (count > kMaxStatsBuckets) {
    return core::Fail(core::Error::Invalid("sinceUtc", "too_many_buckets",
                                           "at most " + std::to_string(kMaxStatsBuckets) +
                                               " buckets: a later sinceUtc or a larger "
                                               "bucket"));
  }
  window.count = static_cast<int>(count);

  const core::SubscriptionId sub{*id};
  auto buckets =
      InRead(ctx.store, [&](store::Txn& tx) -> core::Result<std::vector<store::StatsBucket>> {
        auto s = VisibleSubscription(tx, call.caller, sub);
        if (!s) return core::Fail(std::move(s.error()));
        return tx.AttemptStats(call.caller.tenant, sub, window);
      });
  if (!buckets) return core::Fail(std::move(buckets.error()));
  json::array out;
  for (const store::StatsBucket& b : *buckets) {
    out.push_back(
        json::object{{"startUtc", core::FormatUtc(b.start)},
                     {"succeeded", b.succeeded},
                     {"failed", b.failed},
                     {"p50Ms", b.p50_ms ? json::value(*b.p50_ms) : json::value(nullptr)},
                     {"p95Ms", b.p95_ms ? json::value(*b.p95_ms) : json::value(nullptr)}});
  }
  return JsonResponse(200, json::object{{"subscriptionId", sub.value},
                                        {"bucket", size->name},
                                        {"sinceUtc", core::FormatUtc(window.since)},
                                        {"buckets", std::move(out)}});
}

}  // namespace

void AddSubscriptionToolRoutes(Router& router, Context& ctx) {
  constexpr unsigned kBoth = kTenant | kClient;
  router.Add("POST", "/v1/subscriptions/{id}/test", kBoth, Bind(ctx, SendTestEvent));
  router.Add("GET", "/v1/subscriptions/{id}/stats", kBoth, Bind(ctx, SubscriptionStats));
}

}  // namespace outbound::api
