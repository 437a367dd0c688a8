// What the handlers share: the context they run in, transaction helpers and small parsing
// helpers. Internal to api/. Handlers are thin: parse → authorise → store or ingest → render.
#pragma once

#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "api/auth.h"
#include "api/metrics.h"
#include "api/request.h"
#include "api/router.h"
#include "api/server.h"
#include "core/result.h"
#include "store/store.h"

namespace outbound::api {

// Everything a handler may use. Members must outlive the router's use of them.
struct Context {
  ApiOptions options;
  store::Store& store;
  ingest::IngestService& ingest;
  const core::Clock& clock;
  core::UlidGenerator& ids;
  ApiHooks hooks;
  Metrics& metrics;
  KeyCache& keys;  // Authenticate's; cleared by every write that revokes a key
  // OperatorTokenHash(options.operator_token), made once (Authenticate compares hashes).
  std::optional<std::string> operator_token_hash = OperatorTokenHash(options.operator_token);
};

void AddTenantRoutes(Router& router, Context& ctx);        // tenants, clients, keys
void AddDirectoryRoutes(Router& router, Context& ctx);     // customers, locations, contacts
void AddTargetRoutes(Router& router, Context& ctx);        // imports, targets
void AddEventRoutes(Router& router, Context& ctx);         // events, redeliver, event types
void AddSubscriptionRoutes(Router& router, Context& ctx);  // subscriptions, their deliveries
void AddSystemRoutes(Router& router, Context& ctx);        // healthz, readyz, metrics
void AddOperationsRoutes(Router& router, Context& ctx);    // the tenant's operational webhook
void AddPortalRoutes(Router& router, Context& ctx);  // GET /portal/, portal links and sessions
// The routes a portal session may use (its subscriptions, their deliveries and events); the
// others (imports, targets) need a client key.
bool PortalSessionMayUse(const Route& route);
// A subscription's tools (CONTRACT §13): test webhooks, stats of its attempts.
void AddSubscriptionToolRoutes(Router& router, Context& ctx);

// Runs fn(Txn&) → Result<T> in a read snapshot / a group-committed write and returns its value.
template <class F>
auto InRead(store::Store& store, F&& fn) -> std::invoke_result_t<F, store::Txn&> {
  using R = std::invoke_result_t<F, store::Txn&>;
  std::optional<typename R::value_type> out;
  auto st = store.Read([&](store::Txn& tx) -> core::Status {
    auto r = fn(tx);
    if (!r) return core::Fail(std::move(r.error()));
    out.emplace(std::move(*r));
    return {};
  });
  if (!st) return core::Fail(std::move(st.error()));
  return std::move(*out);
}

template <class F>
auto InWrite(store::Store& store, F&& fn) -> std::invoke_result_t<F, store::Txn&> {
  using R = std::invoke_result_t<F, store::Txn&>;
  std::optional<typename R::value_type> out;
  auto st = store.Write([&](store::Txn& tx) -> core::Status {
    auto r = fn(tx);
    if (!r) return core::Fail(std::move(r.error()));
    out.emplace(std::move(*r));
    return {};
  });
  if (!st) return core::Fail(std::move(st.error()));
  return std::move(*out);
}

Response JsonResponse(int status, const boost::json::value& body);
Response NoContent();

// A path id that must be a positive integer: anything else is "not found" (ids are not probed).
core::Result<std::int64_t> PathId(const Call& call, std::size_t index, std::string_view what);
// Same, but a malformed id is a 400 "invalid_id" (for PUT, where the caller chooses the id).
core::Result<std::int64_t> PathIdForPut(const Call& call, std::size_t index, std::string_view what);

core::Error NotFound(std::string_view what);
core::Error Forbidden(std::string_view message);
core::Error UnknownReference(std::string field, std::string message);

bool IsClient(const Caller& c);

// The subscription `id` if it exists and the caller may see it (a client: only its own); else
// 404 "not_found" (handlers_subscriptions.cpp).
core::Result<store::Subscription> VisibleSubscription(store::Txn& tx, const Caller& caller,
                                                      core::SubscriptionId id);

// A route handler from a free function taking the context.
using HandlerFn = core::Result<Response> (*)(Context&, const Call&);
inline Handler Bind(Context& ctx, HandlerFn fn) {
  return [&ctx, fn](const Call& call) { return fn(ctx, call); };
}

}  // namespace outbound::api
