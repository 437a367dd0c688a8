// Target imports (client keys) and target reads / external-id edits.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <vector>

#include "api/errors.h"
#include "api/handlers.h"
#include "api/input.h"
#include "api/render.h"
#include "core/catalog.h"

namespace outbound::api {

namespace json = boost::json;

namespace {

json::array FieldErrorsJson(const std::vector<core::FieldError>& errors) {
  json::array out;
  for (const auto& e : errors) {
    out.push_back(json::object{{"field", e.field}, {"code", e.code}, {"message", e.message}});
  }
  return out;
}

core::Result<Response> ImportTargets(Context& ctx, const Call& call) {
  BodyArena arena;  // before `body`, which must not outlive it
  auto body = ParseJson(call.request.body, arena.storage());
  if (!body) return core::Fail(std::move(body.error()));
  auto results = ctx.ingest.ImportTargets(call.caller.tenant, *call.caller.client, *body);
  if (!results) return core::Fail(std::move(results.error()));
  json::array out;
  for (const auto& r : *results) {
    json::object item{{"externalId", nullptr},
                      {"result", r.result},
                      {"targetId", nullptr},
                      {"errors", FieldErrorsJson(r.errors)}};
    if (r.external_id) item["externalId"] = *r.external_id;
    if (r.target_id) item["targetId"] = *r.target_id;
    out.push_back(std::move(item));
  }
  return JsonResponse(200, json::object{{"results", std::move(out)}});
}

core::Result<Response> ListTargets(Context& ctx, const Call& call) {
  std::vector<core::FieldError> errors;
  QueryReader q(call.query, errors);
  store::TargetFilter filter;
  filter.external_id = q.String("externalId");
  filter.source_system = q.String("sourceSystem");
  filter.status = q.String("status");
  store::Page page = q.Page();
  q.RejectUnknown();
  if (filter.source_system && !IsValidSourceSystem(*filter.source_system)) {
    errors.push_back({"sourceSystem", "invalid_source_system",
                      "sourceSystem must match ^[a-z0-9][a-z0-9_.-]{0,63}$"});
  }
  if (filter.status && !core::IsTargetStatus(*filter.status)) {
    // A typo would read as "no targets" (the filter matches nothing).
    errors.push_back({"status", "invalid_status",
                      "status is one of Imported, Rejected, Cancelled, Scheduled, RouteSuggested, "
                      "RoutePublished, Started, Completed, ProblemReported, ReportApproved, "
                      "FollowUpRequired, BillingTriggered"});
  }
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));

  auto list =
      InRead(ctx.store, [&](store::Txn& tx) -> core::Result<store::PageResult<store::Target>> {
        // A client looking up its own external id means its own system.
        if (IsClient(call.caller) && filter.external_id && !filter.source_system) {
          auto client = tx.GetClient(call.caller.tenant, *call.caller.client);
          if (!client) return core::Fail(std::move(client.error()));
          if (*client) filter.source_system = (*client)->source_system;
        }
        return tx.ListTargets(call.caller.tenant, filter, page);
      });
  if (!list) return core::Fail(std::move(list.error()));
  json::array data;
  for (const auto& t : list->rows) data.push_back(TargetJson(t));
  return JsonResponse(200, ListJson(std::move(data), list->next));
}

core::Result<Response> GetTarget(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "target");
  if (!id) return core::Fail(std::move(id.error()));
  auto found = InRead(ctx.store, [&](store::Txn& tx) {
    return tx.GetTarget(call.caller.tenant, core::TargetId{*id});
  });
  if (!found) return core::Fail(std::move(found.error()));
  if (!*found) return core::Fail(NotFound("target"));
  return JsonResponse(200, TargetJson(**found));
}

// {"externalIds": {system: id|null}}: merged into the target's ids; null removes one. The
// importing system's id is the target's identity there and cannot change.
core::Result<Response> PatchTarget(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "target");
  if (!id) return core::Fail(std::move(id.error()));
  auto body = ParseJsonObject(call.request.body, false);
  if (!body) return core::Fail(std::move(body.error()));
  std::vector<core::FieldError> errors;
  ObjectReader r(*body, errors);
  std::vector<std::pair<std::string, std::optional<std::string>>> changes;
  if (const json::value* v = r.Get("externalIds"); v != nullptr) {
    if (!v->is_object()) {
      r.Fail("externalIds", "invalid_type",
             "externalIds must be an object of {sourceSystem: id|null}");
    } else {
      for (const auto& kv : v->get_object()) {
        std::string system(kv.key());
        std::string path = "externalIds." + system;
        if (!IsValidSourceSystem(system)) {
          errors.push_back({path, "invalid_source_system",
                            "source system names match ^[a-z0-9][a-z0-9_.-]{0,63}$"});
          continue;
        }
        if (kv.value().is_null()) {
          changes.emplace_back(system, std::nullopt);
        } else if (auto value = AsString(kv.value(), path, errors, 255)) {
          changes.emplace_back(system, std::move(*value));
        }
      }
    }
  }
  r.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));

  core::UnixMs now = ctx.clock.Now();
  auto updated = InWrite(ctx.store, [&](store::Txn& tx) -> core::Result<store::Target> {
    auto found = tx.GetTarget(call.caller.tenant, core::TargetId{*id});
    if (!found) return core::Fail(std::move(found.error()));
    if (!*found) return core::Fail(NotFound("target"));
    store::Target t = std::move(**found);
    for (const auto& [system, value] : changes) {
      if (system == t.source_system && value != std::optional<std::string>(t.external_id)) {
        return core::Fail(core::Error::Invalid(
            "externalIds." + system, "immutable_external_id",
            "the id in the importing system (" + system + ") cannot be changed or removed"));
      }
      if (value) {
        t.external_ids[system] = *value;
      } else {
        t.external_ids.erase(system);
      }
    }
    if (changes.empty()) return t;
    t.updated_at = now;
    auto st = tx.UpdateTarget(t);
    if (!st) return core::Fail(std::move(st.error()));
    return t;
  });
  if (!updated) return core::Fail(std::move(updated.error()));
  return JsonResponse(200, TargetJson(*updated));
}

}  // namespace

void AddTargetRoutes(Router& router, Context& ctx) {
  router.Add("POST", "/v1/imports/targets", kClient, Bind(ctx, ImportTargets));
  router.Add("GET", "/v1/targets", kTenant | kClient, Bind(ctx, ListTargets));
  router.Add("GET", "/v1/targets/{id}", kTenant | kClient, Bind(ctx, GetTarget));
  router.Add("PATCH", "/v1/targets/{id}", kTenant, Bind(ctx, PatchTarget));
}

}  // namespace outbound::api
