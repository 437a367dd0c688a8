// The API without the network: Request in, Response out. Parses the target, routes, authenticates,
// checks the caller's kind against the route, runs the handler and maps every error (and every
// exception) to a JSON error response. server.cpp feeds it from Beast; tests may call it
// directly.
// Thread-safe: Handle() may run on many threads at once. Handle() may block (group commit).
#pragma once

#include <memory>

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

  Response Handle(const Request& request) noexcept;

  const ApiOptions& options() const { return ctx_.options; }
  // The route table (the fuzz target covers every route from it).
  const Router& router() const { return router_; }

 private:
  Response Dispatch(const Request& request, std::string& route_label);

  Metrics metrics_;
  KeyCache keys_;
  Context ctx_;
  Router router_;
};

}  // namespace outbound::api
