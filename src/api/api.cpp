#include "api/api.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/url/parse.hpp>
#include <chrono>
#include <exception>
#include <future>
#include <memory>
#include <string>
#include <utility>

#include "api/errors.h"
#include "core/utf8.h"

namespace outbound::api {

Api::Api(ApiOptions options, store::Store& store, ingest::IngestService& ingest,
         const core::Clock& clock, core::UlidGenerator& ids, ApiHooks hooks)
    : ctx_{std::move(options), store, ingest, clock, ids, std::move(hooks), metrics_, keys_} {
  AddSystemRoutes(router_, ctx_);
  if (ctx_.options.worker_only) return;  // a worker answers health and metrics only
  AddTenantRoutes(router_, ctx_);
  AddDirectoryRoutes(router_, ctx_);
  AddTargetRoutes(router_, ctx_);
  AddEventRoutes(router_, ctx_);
  AddSubscriptionRoutes(router_, ctx_);
  AddSubscriptionToolRoutes(router_, ctx_);
  AddOperationsRoutes(router_, ctx_);
  AddPortalRoutes(router_, ctx_);
}

void Api::Handle(const Request& request, Reply reply) noexcept {
  Handle(request, reply, Pace::kMayBlock);
}

bool Api::HandleQuickly(const Request& request, Reply& reply) noexcept {
  return Handle(request, reply, Pace::kQuickOnly);
}

bool Api::Handle(const Request& request, Reply& reply, Pace pace) noexcept {
  // What counting and logging the answer needs; shared with an asynchronous route's answer.
  struct Pending {
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    std::string method;
    std::string route = "unmatched";
    Reply reply;
    std::atomic<bool> answered{false};
  };
  auto pending = std::make_shared<Pending>();
  pending->method = request.method;
  pending->reply = std::move(reply);
  const std::function<void(Response)> finish = [this, pending](Response response) {
    if (pending->answered.exchange(true)) return;  // a handler that threw after answering
    try {
      double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - pending->start).count();
      metrics_.CountRequest(pending->method, pending->route, response.status, seconds);
      // Only the route pattern: concrete paths and queries may carry external ids.
      spdlog::debug("{} {} {} {:.3f}ms", pending->method, pending->route, response.status,
                    seconds * 1000);
    } catch (...) {
    }
    try {
      pending->reply(std::move(response));
    } catch (const std::exception& e) {
      spdlog::error("{} {}: the answer could not be sent: {}", pending->method, pending->route,
                    e.what());
    } catch (...) {
      spdlog::error("{} {}: the answer could not be sent", pending->method, pending->route);
    }
  };
  std::optional<Response> now;
  bool declined = false;
  try {
    now = Dispatch(request, pending->route, finish, pace, declined);
    if (declined) {
      reply = std::move(pending->reply);
      return false;
    }
  } catch (const std::exception& e) {
    spdlog::error("{} {}: handler failed: {}", request.method, pending->route, e.what());
    now = ErrorResponse(core::Error::Internal("exception"));
  } catch (...) {
    spdlog::error("{} {}: handler failed with an unknown exception", request.method,
                  pending->route);
    now = ErrorResponse(core::Error::Internal("exception"));
  }
  if (now) finish(std::move(*now));
  return true;
}

Response Api::Handle(const Request& request) noexcept {
  std::promise<Response> promise;
  std::future<Response> answer = promise.get_future();
  Handle(request, [&promise](Response r) { promise.set_value(std::move(r)); });
  return answer.get();
}

namespace {

// A handler's result as the answer: an error in the error shape (internal ones logged).
Response ToResponse(const Route& route, core::Result<Response> result) {
  if (!result) {
    if (result.error().kind == core::ErrorKind::kInternal) {
      spdlog::error("{} {}: {}", route.method, route.pattern, result.error().message);
    }
    return ErrorResponse(result.error());
  }
  return std::move(*result);
}

}  // namespace

std::optional<Response> Api::Dispatch(const Request& request, std::string& route_label,
                                      const std::function<void(Response)>& later, Pace pace,
                                      bool& declined) {
  auto url = boost::urls::parse_origin_form(request.target);
  if (!url) {
    return ErrorResponse(core::Error::Malformed("the request target is not a valid path"));
  }
  Query query;
  for (auto param : url->params()) {
    // Decoded parameters may be echoed in errors; they must be text (JSON answers are UTF-8).
    if (!core::IsValidUtf8(param.key) || !core::IsValidUtf8(param.value)) {
      return ErrorResponse(
          core::Error::Malformed("query parameters must be percent-encoded UTF-8"));
    }
    query[std::string(param.key)] = param.has_value ? std::string(param.value) : std::string();
  }
  Router::Match match = router_.Find(request.method, url->encoded_path());
  if (!match.path_known) {
    if (ctx_.options.worker_only) {
      return ErrorResponse(404, "route_not_found",
                           "this process runs --role worker: it answers only GET /healthz, "
                           "/readyz and /metrics");
    }
    return ErrorResponse(
        404, "route_not_found",
        "no such route: " + request.method + " " + std::string(url->encoded_path().substr(0, 200)));
  }
  if (match.route == nullptr) {
    Response r = ErrorResponse(
        405, "method_not_allowed",
        request.method.substr(0, 16) + " is not allowed here; allowed: " + match.allow);
    r.headers.emplace_back("Allow", match.allow);
    return r;
  }
  const Route& route = *match.route;
  if (pace == Pace::kQuickOnly && !route.async_handler) {
    declined = true;
    return std::nullopt;
  }
  route_label = route.pattern;

  Caller caller;
  caller.kind = CallerKind::kOperator;
  if (route.scopes != kPublic) {
    core::Result<Caller> authenticated = caller;
    if (pace == Pace::kQuickOnly) {
      auto known = AuthenticateWithoutStore(request.authorization, ctx_.operator_token_hash,
                                            ctx_.clock.Now(), ctx_.keys);
      if (!known) {
        declined = true;
        return std::nullopt;
      }
      authenticated = std::move(*known);
    } else {
      authenticated = Authenticate(request.authorization, ctx_.operator_token_hash, ctx_.store,
                                   ctx_.clock.Now(), &ctx_.keys);
    }
    if (!authenticated) return ErrorResponse(authenticated.error());
    caller = *authenticated;
    if (caller.portal_session && !PortalSessionMayUse(route)) {
      return ErrorResponse(Forbidden("a portal session may not use " + route.method + " " +
                                     route.pattern + "; use a client key"));
    }
    if ((route.scopes & ScopeBit(caller.kind)) == 0) {
      const char* kind = caller.kind == CallerKind::kOperator ? "the operator token"
                         : caller.kind == CallerKind::kTenant ? "a tenant key"
                                                              : "a client key";
      return ErrorResponse(
          MakeError(core::ErrorKind::kForbidden, "insufficient_scope",
                    std::string(kind) + " may not use " + route.method + " " + route.pattern));
    }
  }
  Call call{request, caller, match.params, query};
  if (route.async_handler) {
    route.async_handler(call, [&route, later](core::Result<Response> result) {
      // Runs on another thread, where nothing catches for us: the request is answered whatever
      // happens here (a lost answer would leave its connection waiting for ever).
      Response answer;
      try {
        answer = ToResponse(route, std::move(result));
      } catch (...) {
        answer.status = 500;
        answer.content_type = "application/json";
        answer.body = R"({"error":{"code":"internal","message":"internal error"}})";
      }
      later(std::move(answer));
    });
    return std::nullopt;
  }
  return ToResponse(route, route.handler(call));
}

}  // namespace outbound::api
