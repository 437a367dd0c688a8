// The HTTP side of the dispatcher: POSTs over kept-alive connections with libcurl's multi
// interface, behind an interface so that curl stays inside sender.cpp. The thread that owns a
// Sender (the dispatcher's) calls everything but Wakeup(), which any thread may call.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "store/store.h"

namespace outbound::delivery::internal {

// One POST as the receiver sees it (request.h builds it).
struct Request {
  std::string url;
  std::vector<std::string> header_lines;  // "Name: value"
  std::string body;
};

// What the dispatcher keeps with a request in flight; handed back with its response.
struct Attempt {
  store::DeliveryJob job;
  std::string delivery_id;
  core::UnixMs attempted_at = 0;
  core::MonotonicClock::TimePoint started{};
};

struct Response {
  Attempt attempt;
  int http_status = 0;  // 0: no status line was received
  // Without a status line, what went wrong: "timeout", "private_address", "dns_error: …",
  // "tls_error: …" and so on. Never includes secrets: curl's messages name the host and port at
  // most.
  std::string error;
  std::string retry_after;  // raw Retry-After value of the last response; empty without one
  // The start of the body: at most response_store_limit + 1 bytes, so that a longer body stays
  // recognisably longer than the limit.
  std::string body;
};

struct SenderOptions {
  core::UnixMs connect_timeout_ms = 5000;
  core::UnixMs request_timeout_ms = 15000;
  // A body is read up to the larger of the two, and aborted beyond it.
  std::size_t response_read_limit = std::size_t{64} * 1024;
  std::size_t response_store_limit = std::size_t{4} * 1024;
  std::string user_agent;
  std::string ca_file;                     // extra CA bundle; empty = system store
  std::vector<std::string> debug_resolve;  // CURLOPT_RESOLVE entries (tests only)
  // Without it, a connection to a private address is refused at connect time (unless `proxy`).
  bool allow_private_networks = false;
  std::string proxy;        // every request through this proxy; empty = direct
  int max_in_flight = 512;  // sizes the connection cache
};

class Sender {
 public:
  // Initialises libcurl (once per process) and a multi handle. Errors: kInternal.
  static core::Result<std::unique_ptr<Sender>> Create(SenderOptions options);
  // Drops whatever is still in flight.
  virtual ~Sender() = default;

  // Starts `request`. On success takes `attempt` (moved from); on failure leaves it as it was and
  // returns the attempt's error ("internal_error: …").
  virtual std::optional<std::string> Start(Request request, Attempt& attempt) = 0;
  // Moves the transfers along; returns those that ended.
  virtual std::vector<Response> Perform() = 0;
  // Waits up to `timeout_ms` for network activity or a Wakeup().
  virtual void Poll(int timeout_ms) = 0;
  // Ends a Poll() early. Thread-safe.
  virtual void Wakeup() = 0;
  // Drops every request in flight without waiting for its end; returns their attempts.
  virtual std::vector<Attempt> Abandon() = 0;
  virtual int in_flight() const = 0;
};

}  // namespace outbound::delivery::internal
