// Subscriptions (a client's own, or any of the tenant's) and their delivery log.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <map>
#include <set>
#include <vector>

#include "api/errors.h"
#include "api/handlers.h"
#include "api/input.h"
#include "api/render.h"
#include "api/validation.h"
#include "core/matching.h"
#include "core/signing.h"

namespace outbound::api {

namespace json = boost::json;

namespace {

constexpr std::size_t kMaxEventTypes = 100;
constexpr std::size_t kMaxHeaders = 20;
constexpr std::string_view kDisabledByRequest = "disabled by API request";

// What a POST or PATCH body says; absent fields stay unset. Validated before any write.
struct SubscriptionInput {
  std::optional<std::int64_t> client_id;
  std::optional<std::string> url;
  std::optional<std::vector<std::string>> event_types;
  // Options named in the body; the rest keep their defaults (POST) or current values (PATCH).
  std::map<std::string, bool, std::less<>> options;
  std::optional<bool> ordered;
  std::optional<bool> enabled;
  std::optional<bool> paused;  // CONTRACT §13: holds deliveries without cancelling them
  std::optional<std::string> description;  // PATCH null → ""
  bool rate_limit_set = false;
  std::optional<double> rate_limit;
  bool max_concurrency_set = false;
  std::optional<int> max_concurrency;
  bool headers_set = false;
  std::vector<std::pair<std::string, std::string>> headers;  // value kMasked: keep current
};

constexpr std::string_view kOptionNames[] = {"includeCustomerContext", "includeContactDetails",
                                             "includeSummaryPreview", "includeBillingDetails"};

core::Result<SubscriptionInput> ReadInput(const json::object& body, bool create,
                                          bool allow_private_networks) {
  std::vector<core::FieldError> errors;
  ObjectReader r(body, errors);
  SubscriptionInput in;
  in.client_id = r.Int("clientId", Need::kOptional);
  in.url = r.String("url", create ? Need::kRequired : Need::kOptional, 2048);
  if (in.url) {
    UrlCheck check = CheckSubscriptionUrl(*in.url, allow_private_networks);
    if (!check.ok) r.Fail("url", check.code, check.message);
  }

  if (const json::value* v = r.Get("eventTypes"); v != nullptr && !v->is_null()) {
    if (!v->is_array() || v->get_array().empty()) {
      r.Fail("eventTypes", "invalid_value",
             "eventTypes must be a non-empty array of event type names or patterns");
    } else if (v->get_array().size() > kMaxEventTypes) {
      r.Fail("eventTypes", "too_many", "at most 100 event types");
    } else {
      std::vector<std::string> types;
      std::set<std::string, std::less<>> seen;
      const auto& arr = v->get_array();
      for (std::size_t i = 0; i < arr.size(); ++i) {
        std::string path = "eventTypes[" + std::to_string(i) + "]";
        auto t = AsString(arr[i], path, errors, 200);
        if (!t) continue;
        if (!core::IsValidPattern(*t)) {
          errors.push_back({path, "unknown_event_type",
                            "unknown event type or pattern: " + *t +
                                " (use an exact name, \"*\" or \"prefix.*\")"});
          continue;
        }
        if (seen.insert(*t).second) types.push_back(std::move(*t));
      }
      in.event_types = std::move(types);
    }
  } else if (create) {
    r.Fail("eventTypes", "required", "eventTypes is required");
  }

  if (const json::value* v = r.Get("options"); v != nullptr && !v->is_null()) {
    if (!v->is_object()) {
      r.Fail("options", "invalid_type", "options must be an object");
    } else {
      ObjectReader o(v->get_object(), errors, "options.");
      for (auto name : kOptionNames) {
        if (auto b = o.Bool(name, Need::kOptional)) in.options.emplace(std::string(name), *b);
      }
      o.RejectUnknown();
    }
  }
  in.ordered = r.Bool("ordered", Need::kOptional);
  in.enabled = r.Bool("enabled", Need::kOptional);
  in.paused = r.Bool("paused", Need::kOptional);
  if (const json::value* v = r.Get("description"); v != nullptr) {
    if (v->is_null() || (v->is_string() && v->get_string().empty())) {
      in.description = "";
    } else {
      in.description = AsString(*v, "description", errors, 1000);
    }
  }
  if (const json::value* v = r.Get("rateLimitPerSecond"); v != nullptr) {
    in.rate_limit_set = true;
    if (!v->is_null()) {
      in.rate_limit = AsNumber(*v, "rateLimitPerSecond", errors);
      if (in.rate_limit && !(*in.rate_limit > 0 && *in.rate_limit <= 1e6)) {
        r.Fail("rateLimitPerSecond", "invalid_value",
               "rateLimitPerSecond must be null (no limit) or a number above 0");
        in.rate_limit.reset();
      }
    }
  }
  if (const json::value* v = r.Get("maxConcurrency"); v != nullptr) {
    in.max_concurrency_set = true;
    if (!v->is_null()) {
      auto n = AsInt(*v, "maxConcurrency", errors);
      if (n && (*n < 1 || *n > 256)) {
        r.Fail("maxConcurrency", "invalid_value", "maxConcurrency must be from 1 to 256");
      } else if (n) {
        in.max_concurrency = static_cast<int>(*n);
      }
    }
  }
  if (const json::value* v = r.Get("headers"); v != nullptr) {
    in.headers_set = true;
    if (!v->is_null()) {
      if (!v->is_object()) {
        r.Fail("headers", "invalid_type", "headers must be an object of {name: value}");
      } else if (v->get_object().size() > kMaxHeaders) {
        r.Fail("headers", "too_many", "at most 20 headers");
      } else {
        std::set<std::string> lower_names;
        for (const auto& kv : v->get_object()) {
          std::string name(kv.key());
          std::string path = "headers." + name.substr(0, 100);
          if (!IsHeaderName(name)) {
            errors.push_back({path, "invalid_header", "not a valid header name"});
            continue;
          }
          if (IsReservedHeader(name)) {
            errors.push_back({path, "reserved_header", name + " is set by Outbound itself"});
            continue;
          }
          std::string lower = name;
          for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          if (!lower_names.insert(lower).second) {
            errors.push_back({path, "duplicate_header", "header named twice"});
            continue;
          }
          if (!kv.value().is_string()) {
            // The value itself is never echoed, not even in an error.
            errors.push_back({path, "invalid_type", "header values must be strings"});
            continue;
          }
          std::string value(kv.value().get_string());
          if (!IsHeaderValue(value)) {
            errors.push_back({path, "invalid_header",
                              "header values must be at most 4096 bytes without control "
                              "characters"});
            continue;
          }
          in.headers.emplace_back(std::move(name), std::move(value));
        }
      }
    }
  }
  r.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));
  return in;
}

core::PayloadOptions ApplyOptions(core::PayloadOptions o,
                                  const std::map<std::string, bool, std::less<>>& given) {
  for (const auto& [name, value] : given) {
    if (name == "includeCustomerContext") o.include_customer_context = value;
    if (name == "includeContactDetails") o.include_contact_details = value;
    if (name == "includeSummaryPreview") o.include_summary_preview = value;
    if (name == "includeBillingDetails") o.include_billing_details = value;
  }
  return o;
}

// Applies everything but clientId and secret onto `s`.
core::Status Apply(const SubscriptionInput& in, store::Subscription& s, core::UnixMs now) {
  if (in.url) s.url = *in.url;
  if (in.event_types) s.event_types = *in.event_types;
  s.options = ApplyOptions(s.options, in.options);
  if (in.ordered) s.ordered = *in.ordered;
  if (in.enabled && *in.enabled != s.enabled) {
    s.enabled = *in.enabled;
    if (s.enabled) {
      // A fresh start: the auto-disable clock starts again.
      s.disabled_reason.reset();
      s.disabled_at.reset();
      s.failing_since.reset();
    } else {
      s.disabled_reason = std::string(kDisabledByRequest);
      s.disabled_at = now;
    }
  }
  if (in.paused) s.paused = *in.paused;
  if (in.description) s.description = *in.description;
  if (in.rate_limit_set) s.rate_limit_per_second = in.rate_limit;
  if (in.max_concurrency_set) s.max_concurrency = in.max_concurrency;
  if (in.headers_set) {
    std::vector<std::pair<std::string, std::string>> headers;
    for (const auto& [name, value] : in.headers) {
      if (value == kMasked) {
        // The masked value as shown by GET keeps the stored one.
        auto it = std::find_if(s.headers.begin(), s.headers.end(),
                               [&name = name](const auto& h) { return h.first == name; });
        if (it == s.headers.end()) {
          return core::Fail(core::Error::Invalid(
              "headers." + name, "invalid_header",
              "\"********\" keeps a header's current value, and this header has none"));
        }
        headers.emplace_back(name, it->second);
      } else {
        headers.emplace_back(name, value);
      }
    }
    s.headers = std::move(headers);
  }
  s.updated_at = now;
  return {};
}

struct Rendered {
  store::Subscription sub;
  bool billing_allowed = false;
  store::Backlog backlog;
};

// CONTRACT §13 `backlog`: the deliveries waiting for the subscription (store::Backlog).
json::object BacklogJson(const store::Backlog& b) {
  return json::object{
      {"pending", b.pending},
      {"oldestDueAtUtc",
       b.oldest_due_at ? json::value(core::FormatUtc(*b.oldest_due_at)) : json::value(nullptr)}};
}

json::object RenderedJson(const Rendered& r,
                          const std::optional<std::string>& secret = std::nullopt) {
  json::object o = SubscriptionJson(r.sub, r.billing_allowed, secret);
  o["backlog"] = BacklogJson(r.backlog);
  return o;
}

// Fills `r.backlog` from the store.
core::Status LoadBacklog(store::Txn& tx, Rendered& r) {
  auto backlogs = tx.GetBacklogs(r.sub.tenant, {r.sub.id});
  if (!backlogs) return core::Fail(std::move(backlogs.error()));
  r.backlog = backlogs->front();
  return {};
}

core::Result<Response> CreateSubscription(Context& ctx, const Call& call) {
  auto body = ParseJsonObject(call.request.body, false);
  if (!body) return core::Fail(std::move(body.error()));
  auto in = ReadInput(*body, true, ctx.options.allow_private_networks);
  if (!in) return core::Fail(std::move(in.error()));
  core::ClientId client;
  if (IsClient(call.caller)) {
    client = *call.caller.client;
    if (in->client_id && *in->client_id != client.value) {
      return core::Fail(UnknownReference("clientId", "no such client"));
    }
  } else {
    if (!in->client_id) {
      return core::Fail(
          core::Error::Invalid("clientId", "required", "clientId is required with a tenant key"));
    }
    client = core::ClientId{*in->client_id};
  }

  core::UnixMs now = ctx.clock.Now();
  store::Subscription s;
  s.tenant = call.caller.tenant;
  s.client = client;
  s.created_at = now;
  if (auto st = Apply(*in, s, now); !st) return core::Fail(std::move(st.error()));
  s.secret = core::NewSecret();

  auto created = InWrite(ctx.store, [&](store::Txn& tx) -> core::Result<Rendered> {
    auto c = tx.GetClient(s.tenant, s.client);
    if (!c) return core::Fail(std::move(c.error()));
    if (!*c) return core::Fail(UnknownReference("clientId", "no such client"));
    auto stored = tx.CreateSubscription(s);
    if (!stored) return core::Fail(std::move(stored.error()));
    return Rendered{std::move(*stored), (*c)->billing_details_allowed, {}};
  });
  if (!created) return core::Fail(std::move(created.error()));
  return JsonResponse(201, RenderedJson(*created, s.secret));
}

core::Result<bool> BillingAllowed(store::Txn& tx, core::TenantId tenant, core::ClientId client) {
  auto c = tx.GetClient(tenant, client);
  if (!c) return core::Fail(std::move(c.error()));
  return *c && (*c)->billing_details_allowed;
}

core::Result<Response> GetSubscription(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "subscription");
  if (!id) return core::Fail(std::move(id.error()));
  auto found = InRead(ctx.store, [&](store::Txn& tx) -> core::Result<Rendered> {
    auto s = VisibleSubscription(tx, call.caller, core::SubscriptionId{*id});
    if (!s) return core::Fail(std::move(s.error()));
    auto billing = BillingAllowed(tx, s->tenant, s->client);
    if (!billing) return core::Fail(std::move(billing.error()));
    Rendered r{std::move(*s), *billing, {}};
    if (auto st = LoadBacklog(tx, r); !st) return core::Fail(std::move(st.error()));
    return r;
  });
  if (!found) return core::Fail(std::move(found.error()));
  return JsonResponse(200, RenderedJson(*found));
}

core::Result<Response> ListSubscriptions(Context& ctx, const Call& call) {
  std::vector<core::FieldError> errors;
  QueryReader q(call.query, errors);
  auto client_id = q.PositiveInt("clientId");
  store::Page page = q.Page();
  q.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));
  std::optional<core::ClientId> client;
  if (client_id) client = core::ClientId{*client_id};
  if (IsClient(call.caller)) {
    if (client && *client != *call.caller.client) {
      return JsonResponse(200, ListJson(json::array{}, std::nullopt));
    }
    client = call.caller.client;
  }
  auto list = InRead(ctx.store, [&](store::Txn& tx) -> core::Result<json::object> {
    auto subs = tx.ListSubscriptions(call.caller.tenant, client, page);
    if (!subs) return core::Fail(std::move(subs.error()));
    std::map<core::ClientId, bool> billing;
    std::vector<core::SubscriptionId> ids;
    for (const auto& s : subs->rows) ids.push_back(s.id);
    auto backlogs = tx.GetBacklogs(call.caller.tenant, ids);
    if (!backlogs) return core::Fail(std::move(backlogs.error()));
    json::array data;
    for (std::size_t i = 0; i < subs->rows.size(); ++i) {
      const auto& s = subs->rows[i];
      auto it = billing.find(s.client);
      if (it == billing.end()) {
        auto allowed = BillingAllowed(tx, s.tenant, s.client);
        if (!allowed) return core::Fail(std::move(allowed.error()));
        it = billing.emplace(s.client, *allowed).first;
      }
      json::object o = SubscriptionJson(s, it->second);
      o["backlog"] = BacklogJson((*backlogs)[i]);
      data.push_back(std::move(o));
    }
    return ListJson(std::move(data), subs->next);
  });
  if (!list) return core::Fail(std::move(list.error()));
  return JsonResponse(200, *list);
}

core::Result<Response> PatchSubscription(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "subscription");
  if (!id) return core::Fail(std::move(id.error()));
  auto body = ParseJsonObject(call.request.body, false);
  if (!body) return core::Fail(std::move(body.error()));
  auto in = ReadInput(*body, false, ctx.options.allow_private_networks);
  if (!in) return core::Fail(std::move(in.error()));
  core::UnixMs now = ctx.clock.Now();
  auto updated = InWrite(ctx.store, [&](store::Txn& tx) -> core::Result<Rendered> {
    auto s = VisibleSubscription(tx, call.caller, core::SubscriptionId{*id});
    if (!s) return core::Fail(std::move(s.error()));
    if (in->client_id && *in->client_id != s->client.value) {
      return core::Fail(core::Error::Invalid("clientId", "immutable_field",
                                             "a subscription cannot move to another client"));
    }
    // Disabling goes through the store's DisableSubscription, which also cancels the open
    // deliveries (CONTRACT §6); everything else is a plain update.
    bool disabling = in->enabled && !*in->enabled && s->enabled;
    SubscriptionInput changes = *in;
    if (disabling) changes.enabled.reset();
    if (auto st = Apply(changes, *s, now); !st) return core::Fail(std::move(st.error()));
    if (auto st = tx.UpdateSubscription(*s); !st) return core::Fail(std::move(st.error()));
    if (disabling) {
      auto disabled = tx.DisableSubscription(s->tenant, s->id, kDisabledByRequest, now);
      if (!disabled) return core::Fail(std::move(disabled.error()));
      s->enabled = false;
      s->disabled_reason = std::string(kDisabledByRequest);
      s->disabled_at = now;
    }
    auto billing = BillingAllowed(tx, s->tenant, s->client);
    if (!billing) return core::Fail(std::move(billing.error()));
    Rendered r{std::move(*s), *billing, {}};
    if (auto st = LoadBacklog(tx, r); !st) return core::Fail(std::move(st.error()));
    return r;
  });
  if (!updated) return core::Fail(std::move(updated.error()));
  if (ctx.hooks.subscription_changed) ctx.hooks.subscription_changed(updated->sub.id);
  // Unpausing: the held deliveries are due now; wake the dispatcher rather than wait a poll.
  if (in->paused && !*in->paused && ctx.hooks.deliveries_due) ctx.hooks.deliveries_due();
  return JsonResponse(200, RenderedJson(*updated));
}

core::Result<Response> DeleteSubscription(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "subscription");
  if (!id) return core::Fail(std::move(id.error()));
  core::SubscriptionId sub{*id};
  auto deleted = InWrite(ctx.store, [&](store::Txn& tx) -> core::Result<bool> {
    auto s = VisibleSubscription(tx, call.caller, sub);
    if (!s) return core::Fail(std::move(s.error()));
    return tx.DeleteSubscription(call.caller.tenant, sub);
  });
  if (!deleted) return core::Fail(std::move(deleted.error()));
  if (!*deleted) return core::Fail(NotFound("subscription"));
  if (ctx.hooks.subscription_changed) ctx.hooks.subscription_changed(sub);
  return NoContent();
}

// A new secret; the old one keeps signing alongside it for --secret-grace, so receivers can
// switch without losing a webhook. The new secret is shown here, once.
core::Result<Response> RotateSecret(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "subscription");
  if (!id) return core::Fail(std::move(id.error()));
  if (!call.request.body.empty()) {
    auto body = ParseJsonObject(call.request.body, true);
    if (!body) return core::Fail(std::move(body.error()));
    std::vector<core::FieldError> errors;
    ObjectReader r(*body, errors);
    r.RejectUnknown();
    if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));
  }
  const core::UnixMs now = ctx.clock.Now();
  const std::string secret = core::NewSecret();
  auto rotated = InWrite(ctx.store, [&](store::Txn& tx) -> core::Result<Rendered> {
    auto s = VisibleSubscription(tx, call.caller, core::SubscriptionId{*id});
    if (!s) return core::Fail(std::move(s.error()));
    // Every secret rotated out within its grace keeps signing (a second rotation does not cut
    // off receivers still on the first secret); the column's expiry is the newest one's.
    std::vector<core::RetiredSecret> retired;
    if (s->previous_secret) {
      retired =
          core::ReadRetiredSecrets(*s->previous_secret, s->previous_secret_expires_at.value_or(0));
    }
    retired = core::RetireSecret(s->secret, now, ctx.options.secret_grace_ms, std::move(retired));
    s->previous_secret = core::WriteRetiredSecrets(retired);
    s->previous_secret_expires_at = retired.front().expires_at;
    s->secret = secret;
    s->updated_at = now;
    if (auto st = tx.UpdateSubscription(*s); !st) return core::Fail(std::move(st.error()));
    auto billing = BillingAllowed(tx, s->tenant, s->client);
    if (!billing) return core::Fail(std::move(billing.error()));
    Rendered r{std::move(*s), *billing, {}};
    if (auto st = LoadBacklog(tx, r); !st) return core::Fail(std::move(st.error()));
    return r;
  });
  if (!rotated) return core::Fail(std::move(rotated.error()));
  if (ctx.hooks.subscription_changed) ctx.hooks.subscription_changed(rotated->sub.id);
  json::object out = RenderedJson(*rotated, secret);
  out["previousSecretExpiresAtUtc"] = core::FormatUtc(*rotated->sub.previous_secret_expires_at);
  return JsonResponse(200, out);
}

// Re-queues every dead or cancelled delivery of events accepted since `sinceUtc`.
core::Result<Response> Recover(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "subscription");
  if (!id) return core::Fail(std::move(id.error()));
  auto body = ParseJsonObject(call.request.body, false);
  if (!body) return core::Fail(std::move(body.error()));
  std::vector<core::FieldError> errors;
  ObjectReader r(*body, errors);
  std::optional<core::UnixMs> since;
  if (auto text = r.String("sinceUtc", Need::kRequired, 64)) {
    auto t = core::ParseRfc3339(*text);
    if (t) {
      since = *t;
    } else {
      r.Fail("sinceUtc", "invalid_time", "sinceUtc must be RFC 3339 with an offset");
    }
  }
  r.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));
  const core::UnixMs now = ctx.clock.Now();
  core::SubscriptionId sub{*id};
  auto visible = InRead(ctx.store, [&](store::Txn& tx) -> core::Result<bool> {
    auto s = VisibleSubscription(tx, call.caller, sub);
    if (!s) return core::Fail(std::move(s.error()));
    return true;
  });
  if (!visible) return core::Fail(std::move(visible.error()));
  // In short transactions of kRecoverChunkRows rows (docs/API.md: what a client sees when the
  // server stops midway); the dispatcher is woken after each, so the drain starts with the first.
  auto count = store::RecoverInChunks(ctx.store, call.caller.tenant, sub, *since, now,
                                      store::kRecoverChunkRows, [&](int /*recovered*/) {
                                        if (ctx.hooks.deliveries_due) ctx.hooks.deliveries_due();
                                      });
  if (!count) return core::Fail(std::move(count.error()));
  json::object out;
  out["subscriptionId"] = sub.value;
  out["recovered"] = *count;
  return JsonResponse(202, out);
}

core::Result<Response> ListDeliveries(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "subscription");
  if (!id) return core::Fail(std::move(id.error()));
  std::vector<core::FieldError> errors;
  QueryReader q(call.query, errors);
  store::AttemptFilter filter;
  if (auto status = q.String("status")) {
    filter.status = store::ParseDeliveryStatus(*status);
    if (!filter.status) {
      errors.push_back({"status", "invalid_status",
                        "status is one of pending, succeeded, failed, dead, cancelled"});
    }
  }
  filter.since = q.Time("sinceUtc");
  filter.until = q.Time("untilUtc");
  store::Page page = q.Page();
  q.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));
  core::SubscriptionId sub{*id};
  auto list =
      InRead(ctx.store, [&](store::Txn& tx) -> core::Result<store::PageResult<store::AttemptRow>> {
        auto s = VisibleSubscription(tx, call.caller, sub);
        if (!s) return core::Fail(std::move(s.error()));
        return tx.ListAttempts(call.caller.tenant, sub, filter, page);
      });
  if (!list) return core::Fail(std::move(list.error()));
  json::array data;
  for (const auto& row : list->rows) data.push_back(AttemptRowJson(row));
  return JsonResponse(200, ListJson(std::move(data), list->next));
}

}  // namespace

core::Result<store::Subscription> VisibleSubscription(store::Txn& tx, const Caller& caller,
                                                      core::SubscriptionId id) {
  auto s = tx.GetSubscription(caller.tenant, id);
  if (!s) return core::Fail(std::move(s.error()));
  if (!*s || (caller.client && (*s)->client != *caller.client)) {
    return core::Fail(NotFound("subscription"));
  }
  return std::move(**s);
}

void AddSubscriptionRoutes(Router& router, Context& ctx) {
  constexpr unsigned kBoth = kTenant | kClient;
  router.Add("POST", "/v1/subscriptions", kBoth, Bind(ctx, CreateSubscription));
  router.Add("GET", "/v1/subscriptions", kBoth, Bind(ctx, ListSubscriptions));
  router.Add("GET", "/v1/subscriptions/{id}", kBoth, Bind(ctx, GetSubscription));
  router.Add("PATCH", "/v1/subscriptions/{id}", kBoth, Bind(ctx, PatchSubscription));
  router.Add("DELETE", "/v1/subscriptions/{id}", kBoth, Bind(ctx, DeleteSubscription));
  router.Add("GET", "/v1/subscriptions/{id}/deliveries", kBoth, Bind(ctx, ListDeliveries));
  router.Add("POST", "/v1/subscriptions/{id}/rotate-secret", kBoth, Bind(ctx, RotateSecret));
  router.Add("POST", "/v1/subscriptions/{id}/recover", kBoth, Bind(ctx, Recover));
}

}  // namespace outbound::api
