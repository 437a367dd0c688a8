// Shared handler helpers, /healthz, /readyz and /metrics.
#include <spdlog/spdlog.h>

#include "api/errors.h"
#include "api/handlers.h"
#include "api/openapi.h"
#include "core/render.h"

namespace outbound::api {

Response JsonResponse(int status, const boost::json::value& body) {
  Response r;
  r.status = status;
  r.body = core::ToJson(body);  // writes RawJson values (payloads) byte for byte
  return r;
}

Response NoContent() {
  Response r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

namespace {

std::optional<std::int64_t> ParsePositive(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  std::int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v <= 0) return std::nullopt;
  return v;
}

}  // namespace

core::Result<std::int64_t> PathId(const Call& call, std::size_t index, std::string_view what) {
  auto v = ParsePositive(call.params.at(index));
  if (!v) return core::Fail(NotFound(what));
  return *v;
}

core::Result<std::int64_t> PathIdForPut(const Call& call, std::size_t index,
                                        std::string_view what) {
  auto v = ParsePositive(call.params.at(index));
  if (!v) {
    return core::Fail(MakeError(core::ErrorKind::kMalformed, "invalid_id",
                                std::string(what) + " ids are positive integers"));
  }
  return *v;
}

core::Error NotFound(std::string_view what) { return core::Error::NotFound(std::string(what)); }

core::Error Forbidden(std::string_view message) {
  return MakeError(core::ErrorKind::kForbidden, "insufficient_scope", std::string(message));
}

core::Error UnknownReference(std::string field, std::string message) {
  return core::Error::Invalid(std::move(field), "unknown_reference", std::move(message));
}

bool IsClient(const Caller& c) { return c.kind == CallerKind::kClient; }

void AddSystemRoutes(Router& router, Context& ctx) {
  // Answered on the I/O thread, as a route that cannot block (CONTRACT §12: liveness stays 200
  // while the store does not answer, though every handler thread may be waiting for it).
  router.AddAsync("GET", "/healthz", kPublic, [](const Call&, const Answered& answered) {
    answered(JsonResponse(200, boost::json::object{{"status", "ok"}}));
  });
  // The API's own description (CONTRACT.md §13): public, like the documentation it is. Not on
  // a worker, which answers health and metrics only (CONTRACT §12) and serves no API to describe.
  if (!ctx.options.worker_only) {
    router.Add("GET", "/openapi.json", kPublic, [](const Call&) -> core::Result<Response> {
      Response r;
      r.status = 200;
      r.body = OpenApiDocument();
      return r;
    });
  }
  // Readiness for load balancers (CONTRACT §12): 200 only while the store answers a read.
  router.Add("GET", "/readyz", kPublic, [&ctx](const Call&) -> core::Result<Response> {
    auto answered = ctx.store.Read([](store::Txn&) { return core::Status{}; });
    if (!answered) {
      // The cause stays in the log: this route is public.
      spdlog::debug("readyz: the store does not answer: {}", answered.error().message);
      return core::Fail(MakeError(core::ErrorKind::kUnavailable, "store_unavailable",
                                  "the store does not answer; try again later"));
    }
    return JsonResponse(200, boost::json::object{{"status", "ready"}});
  });
  router.Add("GET", "/metrics", kOperator, [&ctx](const Call&) -> core::Result<Response> {
    Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    std::optional<std::size_t> held;
    if (ctx.hooks.dispatcher_held) held = ctx.hooks.dispatcher_held();
    r.body = ctx.metrics.Render(ctx.store, ctx.clock.Now(), held, ctx.ingest.WaitingPublishes());
    return r;
  });
}

}  // namespace outbound::api
