// The tenant's directory: customers, locations and contacts, upserted by Ordinavo id, listed,
// looked up by external id; a record still referred to cannot be deleted (409 in_use).
// internalNotes and accessSecret are taken in and never rendered.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <vector>

#include "api/errors.h"
#include "api/handlers.h"
#include "api/input.h"
#include "api/render.h"

namespace outbound::api {

namespace json = boost::json;

namespace {

// Optional text that may be null: nullopt when absent or null.
std::optional<std::string> OptionalText(ObjectReader& r, std::string_view name,
                                        std::size_t max_len) {
  return r.String(name, Need::kOptional, max_len);
}

core::Result<Response> PutCustomer(Context& ctx, const Call& call) {
  auto id = PathIdForPut(call, 0, "customer");
  if (!id) return core::Fail(std::move(id.error()));
  auto body = ParseJsonObject(call.request.body, false);
  if (!body) return core::Fail(std::move(body.error()));
  std::vector<core::FieldError> errors;
  ObjectReader r(*body, errors);
  store::Customer c;
  c.tenant = call.caller.tenant;
  c.id = *id;
  auto number = r.String("customerNumber", Need::kRequired, 100);
  auto name = r.String("name", Need::kRequired, 500);
  c.internal_notes = OptionalText(r, "internalNotes", 20000);
  auto ids = r.ExternalIds("externalIds", Need::kRequired);
  r.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));
  c.customer_number = *number;
  c.name = *name;
  c.external_ids = ids.value_or(core::ExternalIds{});

  auto done = InWrite(ctx.store, [&](store::Txn& tx) -> core::Result<bool> {
    auto existing = tx.GetCustomer(c.tenant, c.id);
    if (!existing) return core::Fail(std::move(existing.error()));
    auto st = tx.UpsertCustomer(c);
    if (!st) return core::Fail(std::move(st.error()));
    return !existing->has_value();
  });
  if (!done) return core::Fail(std::move(done.error()));
  return JsonResponse(*done ? 201 : 200, CustomerJson(c));
}

core::Result<Response> PutLocation(Context& ctx, const Call& call) {
  auto id = PathIdForPut(call, 0, "location");
  if (!id) return core::Fail(std::move(id.error()));
  auto body = ParseJsonObject(call.request.body, false);
  if (!body) return core::Fail(std::move(body.error()));
  std::vector<core::FieldError> errors;
  ObjectReader r(*body, errors);
  store::Location l;
  l.tenant = call.caller.tenant;
  l.id = *id;
  auto customer = r.Int("customerId", Need::kRequired);
  auto name = r.String("name", Need::kRequired, 500);
  l.address = OptionalText(r, "address", 2000);
  l.access_secret = OptionalText(r, "accessSecret", 2000);
  l.internal_notes = OptionalText(r, "internalNotes", 20000);
  auto ids = r.ExternalIds("externalIds", Need::kRequired);
  if (customer && *customer <= 0) r.Fail("customerId", "invalid_value", "customerId must be > 0");
  r.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));
  l.customer_id = *customer;
  l.name = *name;
  l.external_ids = ids.value_or(core::ExternalIds{});

  auto done = InWrite(ctx.store, [&](store::Txn& tx) -> core::Result<bool> {
    auto owner = tx.GetCustomer(l.tenant, l.customer_id);
    if (!owner) return core::Fail(std::move(owner.error()));
    if (!*owner) {
      return core::Fail(UnknownReference("customerId", "no customer with this customerId"));
    }
    auto existing = tx.GetLocation(l.tenant, l.id);
    if (!existing) return core::Fail(std::move(existing.error()));
    auto st = tx.UpsertLocation(l);
    if (!st) return core::Fail(std::move(st.error()));
    return !existing->has_value();
  });
  if (!done) return core::Fail(std::move(done.error()));
  return JsonResponse(*done ? 201 : 200, LocationJson(l));
}

core::Result<Response> PutContact(Context& ctx, const Call& call) {
  auto id = PathIdForPut(call, 0, "contact");
  if (!id) return core::Fail(std::move(id.error()));
  auto body = ParseJsonObject(call.request.body, false);
  if (!body) return core::Fail(std::move(body.error()));
  std::vector<core::FieldError> errors;
  ObjectReader r(*body, errors);
  store::Contact c;
  c.tenant = call.caller.tenant;
  c.id = *id;
  auto customer = r.Int("customerId", Need::kRequired);
  auto name = r.String("displayName", Need::kRequired, 500);
  c.phone = OptionalText(r, "phone", 100);
  c.email = OptionalText(r, "email", 320);
  c.internal_notes = OptionalText(r, "internalNotes", 20000);
  auto ids = r.ExternalIds("externalIds", Need::kRequired);
  if (customer && *customer <= 0) r.Fail("customerId", "invalid_value", "customerId must be > 0");
  r.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));
  c.customer_id = *customer;
  c.display_name = *name;
  c.external_ids = ids.value_or(core::ExternalIds{});

  auto done = InWrite(ctx.store, [&](store::Txn& tx) -> core::Result<bool> {
    auto owner = tx.GetCustomer(c.tenant, c.customer_id);
    if (!owner) return core::Fail(std::move(owner.error()));
    if (!*owner) {
      return core::Fail(UnknownReference("customerId", "no customer with this customerId"));
    }
    auto existing = tx.GetContact(c.tenant, c.id);
    if (!existing) return core::Fail(std::move(existing.error()));
    auto st = tx.UpsertContact(c);
    if (!st) return core::Fail(std::move(st.error()));
    return !existing->has_value();
  });
  if (!done) return core::Fail(std::move(done.error()));
  return JsonResponse(*done ? 201 : 200, ContactJson(c));
}

core::Result<Response> GetCustomer(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "customer");
  if (!id) return core::Fail(std::move(id.error()));
  auto found =
      InRead(ctx.store, [&](store::Txn& tx) { return tx.GetCustomer(call.caller.tenant, *id); });
  if (!found) return core::Fail(std::move(found.error()));
  if (!*found) return core::Fail(NotFound("customer"));
  return JsonResponse(200, CustomerJson(**found));
}

core::Result<Response> GetLocation(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "location");
  if (!id) return core::Fail(std::move(id.error()));
  auto found =
      InRead(ctx.store, [&](store::Txn& tx) { return tx.GetLocation(call.caller.tenant, *id); });
  if (!found) return core::Fail(std::move(found.error()));
  if (!*found) return core::Fail(NotFound("location"));
  return JsonResponse(200, LocationJson(**found));
}

core::Result<Response> GetContact(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "contact");
  if (!id) return core::Fail(std::move(id.error()));
  auto found =
      InRead(ctx.store, [&](store::Txn& tx) { return tx.GetContact(call.caller.tenant, *id); });
  if (!found) return core::Fail(std::move(found.error()));
  if (!*found) return core::Fail(NotFound("contact"));
  return JsonResponse(200, ContactJson(**found));
}

core::Result<Response> Delete(Context& ctx, const Call& call, store::EntityKind kind,
                              std::string_view what) {
  auto id = PathId(call, 0, what);
  if (!id) return core::Fail(std::move(id.error()));
  auto deleted = InWrite(
      ctx.store, [&](store::Txn& tx) { return tx.DeleteEntity(call.caller.tenant, kind, *id); });
  if (!deleted) return core::Fail(std::move(deleted.error()));
  if (!*deleted) return core::Fail(NotFound(what));
  return NoContent();
}

// GET /v1/customers, /v1/locations, /v1/contacts (CONTRACT §13): the tenant's records in id
// order, cursor-paged; with sourceSystem and externalId (both or neither) the record with that
// external id, as a list of zero or one.
template <class T, class ListFn, class GetFn, class RenderFn>
core::Result<Response> ListDirectory(Context& ctx, const Call& call, store::EntityKind kind,
                                     ListFn list_fn, GetFn get_fn, RenderFn render) {
  std::vector<core::FieldError> errors;
  QueryReader q(call.query, errors);
  auto source_system = q.String("sourceSystem");
  auto external_id = q.String("externalId");
  store::Page page = q.Page();
  q.RejectUnknown();
  if (source_system.has_value() != external_id.has_value()) {
    const char* missing = source_system ? "externalId" : "sourceSystem";
    errors.push_back(
        {missing, "required", "sourceSystem and externalId look a record up together: give both"});
  }
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));
  const core::TenantId tenant = call.caller.tenant;
  auto found = InRead(ctx.store, [&](store::Txn& tx) -> core::Result<store::PageResult<T>> {
    if (!source_system) return list_fn(tx, tenant, page);
    store::PageResult<T> one;
    auto id = tx.FindByExternalId(tenant, kind, *source_system, *external_id);
    if (!id) return core::Fail(std::move(id.error()));
    if (!*id) return one;
    auto record = get_fn(tx, tenant, **id);
    if (!record) return core::Fail(std::move(record.error()));
    if (*record) one.rows.push_back(std::move(**record));
    return one;
  });
  if (!found) return core::Fail(std::move(found.error()));
  json::array data;
  for (const T& record : found->rows) data.push_back(render(record));
  return JsonResponse(200, ListJson(std::move(data), found->next));
}

core::Result<Response> ListCustomers(Context& ctx, const Call& call) {
  return ListDirectory<store::Customer>(
      ctx, call, store::EntityKind::kCustomer,
      [](store::Txn& tx, core::TenantId t, const store::Page& p) { return tx.ListCustomers(t, p); },
      [](store::Txn& tx, core::TenantId t, std::int64_t id) { return tx.GetCustomer(t, id); },
      [](const store::Customer& c) { return CustomerJson(c); });
}
core::Result<Response> ListLocations(Context& ctx, const Call& call) {
  return ListDirectory<store::Location>(
      ctx, call, store::EntityKind::kLocation,
      [](store::Txn& tx, core::TenantId t, const store::Page& p) { return tx.ListLocations(t, p); },
      [](store::Txn& tx, core::TenantId t, std::int64_t id) { return tx.GetLocation(t, id); },
      [](const store::Location& l) { return LocationJson(l); });
}
core::Result<Response> ListContacts(Context& ctx, const Call& call) {
  return ListDirectory<store::Contact>(
      ctx, call, store::EntityKind::kContact,
      [](store::Txn& tx, core::TenantId t, const store::Page& p) { return tx.ListContacts(t, p); },
      [](store::Txn& tx, core::TenantId t, std::int64_t id) { return tx.GetContact(t, id); },
      [](const store::Contact& c) { return ContactJson(c); });
}

core::Result<Response> DeleteCustomer(Context& ctx, const Call& call) {
  return Delete(ctx, call, store::EntityKind::kCustomer, "customer");
}
core::Result<Response> DeleteLocation(Context& ctx, const Call& call) {
  return Delete(ctx, call, store::EntityKind::kLocation, "location");
}
core::Result<Response> DeleteContact(Context& ctx, const Call& call) {
  return Delete(ctx, call, store::EntityKind::kContact, "contact");
}

}  // namespace

void AddDirectoryRoutes(Router& router, Context& ctx) {
  router.Add("GET", "/v1/customers", kTenant, Bind(ctx, ListCustomers));
  router.Add("GET", "/v1/locations", kTenant, Bind(ctx, ListLocations));
  router.Add("GET", "/v1/contacts", kTenant, Bind(ctx, ListContacts));
  router.Add("PUT", "/v1/customers/{id}", kTenant, Bind(ctx, PutCustomer));
  router.Add("GET", "/v1/customers/{id}", kTenant, Bind(ctx, GetCustomer));
  router.Add("DELETE", "/v1/customers/{id}", kTenant, Bind(ctx, DeleteCustomer));
  router.Add("PUT", "/v1/locations/{id}", kTenant, Bind(ctx, PutLocation));
  router.Add("GET", "/v1/locations/{id}", kTenant, Bind(ctx, GetLocation));
  router.Add("DELETE", "/v1/locations/{id}", kTenant, Bind(ctx, DeleteLocation));
  router.Add("PUT", "/v1/contacts/{id}", kTenant, Bind(ctx, PutContact));
  router.Add("GET", "/v1/contacts/{id}", kTenant, Bind(ctx, GetContact));
  router.Add("DELETE", "/v1/contacts/{id}", kTenant, Bind(ctx, DeleteContact));
}

}  // namespace outbound::api
