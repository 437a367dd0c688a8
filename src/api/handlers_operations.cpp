// The tenant's operational webhook (CONTRACT §11): PUT/GET/DELETE /v1/operations-webhook.
// Stored as a hidden subscription of the tenant (store: GetOperationsWebhook and friends); the
// dispatcher signs, sends, retries and logs its deliveries like any other.
#include <boost/json/object.hpp>

#include "api/handlers.h"
#include "api/input.h"
#include "api/validation.h"
#include "core/signing.h"

namespace outbound::api {

namespace json = boost::json;

namespace {

json::object OperationsJson(const store::Subscription& s,
                            const std::optional<std::string>& secret = std::nullopt) {
  json::object o{{"url", s.url},
                 {"createdAtUtc", core::FormatUtc(s.created_at)},
                 {"updatedAtUtc", core::FormatUtc(s.updated_at)}};
  if (secret) o["secret"] = *secret;
  return o;
}

core::Result<Response> PutOperationsWebhook(Context& ctx, const Call& call) {
  auto body = ParseJsonObject(call.request.body, false);
  if (!body) return core::Fail(std::move(body.error()));
  std::vector<core::FieldError> errors;
  ObjectReader r(*body, errors);
  auto url = r.String("url", Need::kRequired, 2048);
  if (url) {
    UrlCheck check = CheckSubscriptionUrl(*url, ctx.options.allow_private_networks);
    if (!check.ok) r.Fail("url", check.code, check.message);
  }
  r.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));

  const core::UnixMs now = ctx.clock.Now();
  const std::string secret = core::NewSecret();
  auto put = InWrite(ctx.store, [&](store::Txn& tx) {
    return tx.PutOperationsWebhook(call.caller.tenant, *url, secret, now);
  });
  if (!put) return core::Fail(std::move(put.error()));
  auto& [sub, created] = *put;
  if (ctx.hooks.subscription_changed) ctx.hooks.subscription_changed(sub.id);
  // The secret is shown once, when the endpoint is created; changing the URL keeps it.
  if (created) return JsonResponse(201, OperationsJson(sub, secret));
  return JsonResponse(200, OperationsJson(sub));
}

core::Result<Response> GetOperationsWebhook(Context& ctx, const Call& call) {
  auto found = InRead(ctx.store,
                      [&](store::Txn& tx) { return tx.GetOperationsWebhook(call.caller.tenant); });
  if (!found) return core::Fail(std::move(found.error()));
  if (!*found) return core::Fail(NotFound("operations webhook"));
  return JsonResponse(200, OperationsJson(**found));
}

core::Result<Response> DeleteOperationsWebhook(Context& ctx, const Call& call) {
  std::optional<core::SubscriptionId> id;
  auto deleted = InWrite(ctx.store, [&](store::Txn& tx) -> core::Result<bool> {
    auto found = tx.GetOperationsWebhook(call.caller.tenant);
    if (!found) return core::Fail(std::move(found.error()));
    if (*found) id = (*found)->id;
    return tx.DeleteOperationsWebhook(call.caller.tenant);
  });
  if (!deleted) return core::Fail(std::move(deleted.error()));
  if (!*deleted) return core::Fail(NotFound("operations webhook"));
  if (id && ctx.hooks.subscription_changed) ctx.hooks.subscription_changed(*id);
  return NoContent();
}

}  // namespace

void AddOperationsRoutes(Router& router, Context& ctx) {
  router.Add("PUT", "/v1/operations-webhook", kTenant, Bind(ctx, PutOperationsWebhook));
  router.Add("GET", "/v1/operations-webhook", kTenant, Bind(ctx, GetOperationsWebhook));
  router.Add("DELETE", "/v1/operations-webhook", kTenant, Bind(ctx, DeleteOperationsWebhook));
}

}  // namespace outbound::api
