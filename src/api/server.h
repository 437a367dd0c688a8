// The management API over HTTP/1.1 (Boost.Beast): routing, authentication, JSON errors.
// I/O runs on its own threads; handlers run on a separate pool so that a handler waiting for a
// group commit never blocks the sockets of other connections.
// Thread-safe. Start() binds and returns once requests are accepted; Stop() closes the listener,
// finishes in-flight requests and joins.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/clock.h"
#include "core/ids.h"
#include "core/result.h"
#include "ingest/ingest.h"
#include "store/store.h"

namespace outbound::api {

struct ApiOptions {
  std::string listen = "127.0.0.1:8780";                  // host:port; port 0 picks a free one
  std::optional<std::string> operator_token;              // nullopt: the operator API is off
  std::size_t max_body_bytes = std::size_t{1024} * 1024;  // larger → 413
  // POST /v1/events/batch (CONTRACT §13): its body may be this large whatever max_body_bytes.
  std::size_t max_batch_body_bytes = std::size_t{4} * 1024 * 1024;
  std::size_t max_header_bytes = std::size_t{16} * 1024;
  core::UnixMs request_timeout_ms = 30000;  // whole request read, against slow clients
  int io_threads = 1;
  int handler_threads = 32;
  bool allow_private_networks = false;  // subscription URLs on loopback / plain http
  core::UnixMs secret_grace_ms = 24LL * 3600 * 1000;
  // `--role worker` (CONTRACT §12): only GET /healthz, /readyz and /metrics are served; every
  // other path is 404 "route_not_found" before any authentication.
  bool worker_only = false;
  // The portal (handlers_portal.cpp). `public_url`: where users reach this API (scheme, host,
  // optional path prefix, no trailing slash), the base of portal links; empty: the request's
  // Host header over http://. `portal_frame_ancestors`: the CSP frame-ancestors sources of the
  // portal page (who may embed it).
  std::string public_url;
  std::string portal_frame_ancestors = "'none'";
};

// What the API tells the rest of the process.
struct ApiHooks {
  std::function<void(core::SubscriptionId)> subscription_changed;  // may be empty
  std::function<void()> deliveries_due;                            // may be empty
  // Deliveries this process's dispatcher holds in memory (queued in lanes or in flight), for
  // GET /metrics; empty when the process has no dispatcher (`--role api`).
  std::function<std::size_t()> dispatcher_held;
};

class Server {
 public:
  // store, ingest, clock and ids must outlive the server.
  static core::Result<std::unique_ptr<Server>> Create(ApiOptions options, store::Store& store,
                                                      ingest::IngestService& ingest,
                                                      const core::Clock& clock,
                                                      core::UlidGenerator& ids, ApiHooks hooks);
  virtual ~Server() = default;
  virtual core::Status Start() = 0;
  virtual std::uint16_t Port() const = 0;
  virtual void Stop() = 0;
};

}  // namespace outbound::api
