// Plain-HTTP deliveries without libcurl: HTTP/1.1 POSTs over kept-alive connections of our own,
// driven from the dispatcher's thread by one epoll set. libcurl's bookkeeping costs about 13 µs a
// request on these machines (e2e_bench --raw-sender: 21.6 against 8.0 µs for the same signed
// requests), more than the rest of the dispatcher's work per delivery; for `http://` endpoints
// (reachable only with --allow-private-networks) Outbound writes each request with one writev
// and reads its answer with Beast's parser instead. HTTPS and every delivery through --proxy stay
// with libcurl (sender.cpp), which routes between the two. docs/DESIGN.md, "Sending".
//
// Behaves as the libcurl sender does, as the dispatcher sees it: the same timeouts (the connect
// timeout covers name resolution and the connect; the request timeout the whole attempt), the
// same errors ("timeout", "dns_error: …", "connect_error: …", "connection_error: …",
// "private_address"), the same Retry-After and body limits, 1xx answers skipped, and one resend
// on a fresh connection when a reused one closes before any answer (as libcurl does).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "delivery/internal/sender.h"

namespace outbound::delivery::internal {

class Http1Sender {
 public:
  static core::Result<std::unique_ptr<Http1Sender>> Create(const SenderOptions& options);
  virtual ~Http1Sender() = default;

  // True for an `http://` URL this sender can send to (no user info). Cheap; no allocation for
  // a URL seen before.
  virtual bool Handles(const std::string& url) = 0;
  // As Sender::Start, for a URL Handles() accepted.
  virtual std::optional<std::string> Start(Request request, Attempt& attempt) = 0;
  // Reads the epoll set without waiting, moves the transfers along, ends those past their
  // timeouts; returns those that ended.
  virtual std::vector<Response> Perform() = 0;
  // Readable when Perform() has something to do (network activity or a resolved name).
  virtual int fd() const = 0;
  // Milliseconds until the next timeout could end a transfer; -1: none in flight.
  virtual int MsToNextDeadline() const = 0;
  virtual std::vector<Attempt> Abandon() = 0;
  virtual int in_flight() const = 0;
};

}  // namespace outbound::delivery::internal
