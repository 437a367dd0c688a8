// The API without the network: Request in, Response out. Parses the target, routes, authenticates,
// checks the caller's kind against the route, runs the handler and maps every error (and every
// exception) to a JSON error response. server.cpp feeds it from Beast; tests may call it
// directly.
// Thread-safe: Handle() may run on many threads at once. Handle() may block (a synchronous
// route waits for its group commit or reads the store); an asynchronous route (a publish)
// replies from the store's callback thread after its commit. HandleQuickly() never blocks: the
// server's I/O thread answers with it what needs no wait, and hands the rest to Handle() on a
// handler thread.
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
  // Handle(), when that cannot block: an asynchronous route whose caller is known without the
  // store (the operator token, an API key in the key cache), and every answer found before the
  // route's handler (an unknown route, a refused token). Otherwise returns false and leaves
  // `reply` as it was, uncalled.
  bool HandleQuickly(const Request& request, Reply& reply) noexcept;

  const ApiOptions& options() const { return ctx_.options; }
  // The route table (the fuzz target covers every route from it).
  const Router& router() const { return router_; }

 private:
  enum class Pace { kMayBlock, kQuickOnly };
  bool Handle(const Request& request, Reply& reply, Pace pace) noexcept;
  // The answer of a synchronous route; nullopt when the route's asynchronous handler took the
  // request and passes its answer (an ErrorResponse for an error) to `later`, or when `pace` is
  // kQuickOnly and the answer could block (`declined` set; nothing was done).
  std::optional<Response> Dispatch(const Request& request, std::string& route_label,
                                   const std::function<void(Response)>& later, Pace pace,
                                   bool& declined);

  Metrics metrics_;
  KeyCache keys_;
  Context ctx_;
  Router router_;
};

}  // namespace outbound::api
