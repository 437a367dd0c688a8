// Tenants (operator), integration clients and API keys (tenant).
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <vector>

#include "api/errors.h"
#include "api/handlers.h"
#include "api/input.h"
#include "api/render.h"
#include "core/signing.h"

namespace outbound::api {

namespace json = boost::json;

namespace {

// A new key of `kind` for the tenant (and client); returns the stored row and the token, which
// is shown this once.
core::Result<std::pair<store::ApiKey, std::string>> CreateKey(store::Txn& tx, core::TenantId tenant,
                                                              store::KeyKind kind,
                                                              std::optional<core::ClientId> client,
                                                              core::UnixMs now) {
  std::string token = NewApiToken(kind);
  store::ApiKey key;
  key.tenant = tenant;
  key.kind = kind;
  key.client = client;
  key.token_hash = core::Sha256Hex(token);
  key.prefix = TokenPrefix(token);
  key.created_at = now;
  auto created = tx.CreateApiKey(key);
  if (!created) return core::Fail(std::move(created.error()));
  return std::make_pair(std::move(*created), std::move(token));
}

json::object NewKeyJson(const store::ApiKey& key, const std::string& token) {
  json::object o = KeyJson(key);
  json::object out{{"keyId", o["keyId"]}, {"apiKey", token}};
  for (auto& kv : o) {
    if (kv.key() != "keyId") out[kv.key()] = kv.value();
  }
  return out;
}

// Ids of every subscription of one client, for hooks.subscription_changed.
std::vector<core::SubscriptionId> ClientSubscriptions(store::Store& store, core::TenantId tenant,
                                                      core::ClientId client) {
  std::vector<core::SubscriptionId> ids;
  (void)store.Read([&](store::Txn& tx) -> core::Status {
    store::Page page;
    page.limit = kMaxLimit;
    for (int guard = 0; guard < 10000; ++guard) {
      auto subs = tx.ListSubscriptions(tenant, client, page);
      if (!subs) return core::Fail(std::move(subs.error()));
      for (const auto& s : subs->rows) ids.push_back(s.id);
      if (!subs->next) break;
      page.after = subs->next;
    }
    return {};
  });
  return ids;
}

void NotifySubscriptions(Context& ctx, const std::vector<core::SubscriptionId>& ids) {
  if (!ctx.hooks.subscription_changed) return;
  for (auto id : ids) ctx.hooks.subscription_changed(id);
}

// ---- tenants (operator) ----

core::Result<Response> CreateTenant(Context& ctx, const Call& call) {
  auto body = ParseJsonObject(call.request.body, false);
  if (!body) return core::Fail(std::move(body.error()));
  std::vector<core::FieldError> errors;
  ObjectReader r(*body, errors);
  auto name = r.String("name", Need::kRequired, 200);
  r.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));

  core::UnixMs now = ctx.clock.Now();
  auto created = InWrite(
      ctx.store, [&](store::Txn& tx) -> core::Result<std::pair<store::Tenant, std::string>> {
        auto tenant = tx.CreateTenant(*name, now);
        if (!tenant) return core::Fail(std::move(tenant.error()));
        auto key = CreateKey(tx, tenant->id, store::KeyKind::kTenant, std::nullopt, now);
        if (!key) return core::Fail(std::move(key.error()));
        return std::make_pair(std::move(*tenant), std::move(key->second));
      });
  if (!created) return core::Fail(std::move(created.error()));
  const auto& [tenant, token] = *created;
  return JsonResponse(201, json::object{{"tenantId", tenant.id.value},
                                        {"name", tenant.name},
                                        {"apiKey", token},
                                        {"createdAtUtc", core::FormatUtc(tenant.created_at)}});
}

core::Result<Response> CreateTenantKey(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "tenant");
  if (!id) return core::Fail(std::move(id.error()));
  if (auto st = RequireNoFields(call.request.body); !st) return core::Fail(std::move(st.error()));

  core::TenantId tenant{*id};
  core::UnixMs now = ctx.clock.Now();
  auto key = InWrite(ctx.store,
                     [&](store::Txn& tx) -> core::Result<std::pair<store::ApiKey, std::string>> {
                       auto t = tx.GetTenant(tenant);
                       if (!t) return core::Fail(std::move(t.error()));
                       if (!*t) return core::Fail(NotFound("tenant"));
                       return CreateKey(tx, tenant, store::KeyKind::kTenant, std::nullopt, now);
                     });
  if (!key) return core::Fail(std::move(key.error()));
  return JsonResponse(201, NewKeyJson(key->first, key->second));
}

// ---- clients ----

core::Result<Response> CreateClient(Context& ctx, const Call& call) {
  auto body = ParseJsonObject(call.request.body, false);
  if (!body) return core::Fail(std::move(body.error()));
  std::vector<core::FieldError> errors;
  ObjectReader r(*body, errors);
  auto name = r.String("name", Need::kRequired, 200);
  auto system = r.String("sourceSystem", Need::kRequired, 64);
  auto billing = r.Bool("billingDetailsAllowed", Need::kOptional);
  if (system && !IsValidSourceSystem(*system)) {
    r.Fail("sourceSystem", "invalid_source_system",
           "sourceSystem must match ^[a-z0-9][a-z0-9_.-]{0,63}$");
  }
  r.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));

  store::Client client;
  client.tenant = call.caller.tenant;
  client.name = *name;
  client.source_system = *system;
  client.billing_details_allowed = billing.value_or(false);
  client.created_at = ctx.clock.Now();
  auto created = InWrite(ctx.store, [&](store::Txn& tx) { return tx.CreateClient(client); });
  if (!created) return core::Fail(std::move(created.error()));
  return JsonResponse(201, ClientJson(*created));
}

core::Result<Response> ListClients(Context& ctx, const Call& call) {
  std::vector<core::FieldError> errors;
  QueryReader q(call.query, errors);
  store::Page page = q.Page();
  q.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));
  auto list =
      InRead(ctx.store, [&](store::Txn& tx) { return tx.ListClients(call.caller.tenant, page); });
  if (!list) return core::Fail(std::move(list.error()));
  json::array data;
  for (const auto& c : list->rows) data.push_back(ClientJson(c));
  return JsonResponse(200, ListJson(std::move(data), list->next));
}

core::Result<Response> GetClient(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "client");
  if (!id) return core::Fail(std::move(id.error()));
  auto client = InRead(ctx.store, [&](store::Txn& tx) {
    return tx.GetClient(call.caller.tenant, core::ClientId{*id});
  });
  if (!client) return core::Fail(std::move(client.error()));
  if (!*client) return core::Fail(NotFound("client"));
  return JsonResponse(200, ClientJson(**client));
}

core::Result<Response> PatchClient(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "client");
  if (!id) return core::Fail(std::move(id.error()));
  auto body = ParseJsonObject(call.request.body, false);
  if (!body) return core::Fail(std::move(body.error()));
  std::vector<core::FieldError> errors;
  ObjectReader r(*body, errors);
  auto name = r.String("name", Need::kOptional, 200);
  auto system = r.String("sourceSystem", Need::kOptional, 64);
  auto billing = r.Bool("billingDetailsAllowed", Need::kOptional);
  r.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));

  bool billing_changed = false;
  auto updated = InWrite(ctx.store, [&](store::Txn& tx) -> core::Result<store::Client> {
    auto found = tx.GetClient(call.caller.tenant, core::ClientId{*id});
    if (!found) return core::Fail(std::move(found.error()));
    if (!*found) return core::Fail(NotFound("client"));
    store::Client c = **found;
    // Targets keep the ids of the system that imported them; renaming the system would orphan
    // them, so it is fixed at creation.
    if (system && *system != c.source_system) {
      return core::Fail(core::Error::Invalid(
          "sourceSystem", "immutable_field",
          "sourceSystem cannot change; create a new client for another system"));
    }
    if (name) c.name = *name;
    if (billing && *billing != c.billing_details_allowed) {
      c.billing_details_allowed = *billing;
      billing_changed = true;
    }
    auto ok = tx.UpdateClient(c);
    if (!ok) return core::Fail(std::move(ok.error()));
    if (!*ok) return core::Fail(NotFound("client"));
    return c;
  });
  if (!updated) return core::Fail(std::move(updated.error()));
  if (billing_changed) {
    NotifySubscriptions(ctx, ClientSubscriptions(ctx.store, call.caller.tenant, updated->id));
  }
  return JsonResponse(200, ClientJson(*updated));
}

core::Result<Response> DeleteClient(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "client");
  if (!id) return core::Fail(std::move(id.error()));
  core::ClientId client{*id};
  auto subs = ClientSubscriptions(ctx.store, call.caller.tenant, client);
  core::UnixMs now = ctx.clock.Now();
  auto deleted = InWrite(
      ctx.store, [&](store::Txn& tx) { return tx.DeleteClient(call.caller.tenant, client, now); });
  ctx.keys.Clear();  // its keys are revoked (or were, if the write's answer was lost)
  if (!deleted) return core::Fail(std::move(deleted.error()));
  if (!*deleted) return core::Fail(NotFound("client"));
  NotifySubscriptions(ctx, subs);
  return NoContent();
}

// ---- keys ----

core::Result<Response> CreateClientKey(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "client");
  if (!id) return core::Fail(std::move(id.error()));
  if (auto st = RequireNoFields(call.request.body); !st) return core::Fail(std::move(st.error()));

  core::ClientId client{*id};
  core::UnixMs now = ctx.clock.Now();
  auto key = InWrite(
      ctx.store, [&](store::Txn& tx) -> core::Result<std::pair<store::ApiKey, std::string>> {
        auto c = tx.GetClient(call.caller.tenant, client);
        if (!c) return core::Fail(std::move(c.error()));
        if (!*c) return core::Fail(NotFound("client"));
        return CreateKey(tx, call.caller.tenant, store::KeyKind::kClient, client, now);
      });
  if (!key) return core::Fail(std::move(key.error()));
  return JsonResponse(201, NewKeyJson(key->first, key->second));
}

core::Result<Response> CreateTenantKeySelf(Context& ctx, const Call& call) {
  if (auto st = RequireNoFields(call.request.body); !st) return core::Fail(std::move(st.error()));
  core::UnixMs now = ctx.clock.Now();
  auto key = InWrite(ctx.store, [&](store::Txn& tx) {
    return CreateKey(tx, call.caller.tenant, store::KeyKind::kTenant, std::nullopt, now);
  });
  if (!key) return core::Fail(std::move(key.error()));
  return JsonResponse(201, NewKeyJson(key->first, key->second));
}

core::Result<Response> ListKeys(Context& ctx, const Call& call) {
  std::vector<core::FieldError> errors;
  QueryReader q(call.query, errors);
  store::Page page = q.Page();
  q.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));
  auto list =
      InRead(ctx.store, [&](store::Txn& tx) { return tx.ListApiKeys(call.caller.tenant, page); });
  if (!list) return core::Fail(std::move(list.error()));
  json::array data;
  for (const auto& k : list->rows) data.push_back(KeyJson(k));
  return JsonResponse(200, ListJson(std::move(data), list->next));
}

core::Result<Response> RevokeKey(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "key");
  if (!id) return core::Fail(std::move(id.error()));
  core::UnixMs now = ctx.clock.Now();
  auto revoked = InWrite(ctx.store, [&](store::Txn& tx) {
    return tx.RevokeApiKey(call.caller.tenant, core::KeyId{*id}, now);
  });
  ctx.keys.Clear();  // even on an error: the write may have committed
  if (!revoked) return core::Fail(std::move(revoked.error()));
  if (!*revoked) return core::Fail(NotFound("key"));
  return NoContent();
}

}  // namespace

void AddTenantRoutes(Router& router, Context& ctx) {
  router.Add("POST", "/v1/tenants", kOperator, Bind(ctx, CreateTenant));
  router.Add("POST", "/v1/tenants/{id}/keys", kOperator, Bind(ctx, CreateTenantKey));

  router.Add("POST", "/v1/clients", kTenant, Bind(ctx, CreateClient));
  router.Add("GET", "/v1/clients", kTenant, Bind(ctx, ListClients));
  router.Add("GET", "/v1/clients/{id}", kTenant, Bind(ctx, GetClient));
  router.Add("PATCH", "/v1/clients/{id}", kTenant, Bind(ctx, PatchClient));
  router.Add("DELETE", "/v1/clients/{id}", kTenant, Bind(ctx, DeleteClient));
  router.Add("POST", "/v1/clients/{id}/keys", kTenant, Bind(ctx, CreateClientKey));

  router.Add("POST", "/v1/keys", kTenant, Bind(ctx, CreateTenantKeySelf));
  router.Add("GET", "/v1/keys", kTenant, Bind(ctx, ListKeys));
  router.Add("DELETE", "/v1/keys/{id}", kTenant, Bind(ctx, RevokeKey));
}

}  // namespace outbound::api
