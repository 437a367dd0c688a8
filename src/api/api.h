// The API without the network: Request in, Response out. Parses the target, routes, authenticates,
// checks the caller's kind against the route, runs the handler and maps every error (and every
// exception) to a JSON error response. server.cpp feeds it from Beast; tests may call it
// directly.
// Thread-safe: Handle() may run on many threads at once. The Response-returning Handle() may
// block (group commit); the one with a Reply never does: an asynchronous route (a publish)
// replies from the store's callback thread after its commit.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "api/handlers.h"
#include "api/metrics.h"
#include "api/request.h"
#include "api/router.h"
#include "api/server.h"

namespace outbound::api {

class Api {
 public:
  // store, ingest, clock and ids must outlive the Api.
  Api(ApiOptions options, store::Store& store, ingest::IngestService& ingest,
      const core::Clock& clock, core::UlidGenerator& ids, ApiHooks hooks);

  // Calls `reply` exactly once with the answer: before returning, or later on another thread.
  // Nothing of `request` is used once this returns.
  using Reply = std::function<void(Response)>;
  void Handle(const Request& request, Reply reply) noexcept;
  // The same, waiting for the answer.
  Response Handle(const Request& request) noexcept;

  const ApiOptions& options() const { return ctx_.options; }
  // The route table (the fuzz target covers every route from it).
  const Router& router() const { return router_; }

 private:
  // The answer of a synchronous route; nullopt when the route's asynchronous handler took the
  // request and passes its answer (an ErrorResponse for an error) to `later`.
  std::optional<Response> Dispatch(const Request& request, std::string& route_label,
                                   const std::function<void(Response)>& later);

  Metrics metrics_;
  KeyCache keys_;
  Context ctx_;
  Router router_;
};

}  // namespace outbound::api
