// The dispatcher: takes due deliveries (handed over after fan-out, or claimed from the store in
// batches), renders the envelope with a new deliveryId, signs it (Standard Webhooks), sends it
// with libcurl's multi interface over kept-alive connections, and records every attempt in
// batches. Failed attempts are rescheduled by the retry policy; exhausted ones become `dead`.
//
// Threading: one dispatcher thread owns the curl multi handle and all per-endpoint state.
// Offer(), Wake(), InvalidateSubscription() and Stop() are thread-safe. Outcomes are recorded
// through Store::Submit (never blocking the send loop on a commit).
// Memory: at most `max_queued` jobs are held (queued in lanes or in flight; Memory() tells how
// many); more are released back to the store and claimed again later.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "core/random.h"
#include "core/result.h"
#include "core/retry.h"
#include "store/store.h"

namespace outbound::delivery {

struct DispatcherOptions {
  core::RetryPolicy retry = core::RetryPolicy::Default();
  core::UnixMs connect_timeout_ms = 5000;
  core::UnixMs request_timeout_ms = 15000;
  // --lease: how long what this process claimed stays its own without a renewal; renewed every
  // third of it.
  core::UnixMs lease_ms = 30000;
  std::size_t max_queued = 50000;    // jobs held in memory
  int max_in_flight = 512;           // requests in flight, all endpoints together
  int default_max_concurrency = 16;  // per subscription, unless it sets maxConcurrency
  // A subscription whose last attempt failed with an answer (not 2xx) or a transport error other
  // than a timeout sends at most this many requests at once (never more than its own limit)
  // until an attempt succeeds again: an endpoint that fails fast (503s) otherwise keeps its full
  // concurrency busy, and the dispatcher's turns go to its failures while a healthy
  // subscription's fresh events wait in their lane (issue 8: the backlog fill). Timeouts leave
  // the limit as it is while fewer than half of max_in_flight are open (a hung endpoint holds
  // slots, not the dispatcher), and lower it to this at or above half (Lanes::Cap). 0: neither.
  int failing_max_concurrency = 2;
  int claim_batch = 500;
  std::size_t response_read_limit = std::size_t{64} * 1024;
  std::size_t response_store_limit = std::size_t{4} * 1024;
  std::string user_agent = "Ordinavo-Outbound/0.1 (+https://ordinavo.example/webhooks)";
  std::string ca_file;  // extra CA bundle; empty = system store
  // TESTS ONLY (--debug-resolve): CURLOPT_RESOLVE entries "host:port:address" that pin a name
  // to an address without DNS, so that end-to-end tests can exercise the connect-time SSRF
  // check (a public-looking name that resolves to a private address). Empty in production.
  std::vector<std::string> debug_resolve;
  bool allow_private_networks = false;
  core::UnixMs secret_grace_ms = 24LL * 3600 * 1000;
  // Jobs of one subscription held in memory; more are released to the store, so that one
  // slow endpoint cannot fill `max_queued` and starve the others.
  std::size_t max_queued_per_subscription = 5000;
  // How often the store is asked for due deliveries when there is room (besides Wake() and the
  // due times of the retries this dispatcher scheduled itself).
  core::UnixMs claim_interval_ms = 200;
  // Stop(): how long in-flight requests may still finish before they are abandoned (their
  // leases released; at-least-once allows the repeat).
  core::UnixMs stop_grace_ms = 2000;
  // How often changes made by other processes (subscriptions, clients, keys) are looked for;
  // CONTRACT §12 wants them in force within 2 s.
  core::UnixMs config_poll_ms = 500;
  // At each renewal, give up idle subscriptions beyond this process's fair share, so that a
  // worker that joins later gets endpoints. Only for processes that fan out nothing (`--role
  // worker`): a process's own fan-out could lease rows of a subscription in a transaction that
  // the give-up cannot see, and two processes would then send for it at once.
  bool shed_idle_subscriptions = false;
  // --proxy: every delivery goes through this egress proxy (http://, https://, socks5://).
  std::string proxy;
  // A subscription failing without a single success for this long, with at least
  // `disable_min_attempts` attempts since it started failing, is disabled (CONTRACT §6).
  core::UnixMs disable_after_ms = 5LL * 24 * 3600 * 1000;
  int disable_min_attempts = 5;
};

class Dispatcher {
 public:
  // store and clock must outlive the dispatcher. Steady time is std::chrono::steady_clock's, and
  // retry jitter comes from a DefaultRandom. Errors: kInvalid (options), kInternal (libcurl).
  static core::Result<std::unique_ptr<Dispatcher>> Create(store::Store& store,
                                                          const core::Clock& clock,
                                                          DispatcherOptions options);
  // The same with steady time and randomness injected, so that tests control them: `steady`
  // times rate limits, claim and config polls, lease renewal, write retries and attempt
  // durations (wall time, `clock`, stamps attempts and schedules retries); `random` draws the
  // retry jitter. All must outlive the dispatcher; only its thread calls `random`. Stop()
  // measures its own bounded waits in real time whatever `steady` says.
  static core::Result<std::unique_ptr<Dispatcher>> Create(store::Store& store,
                                                          const core::Clock& clock,
                                                          const core::MonotonicClock& steady,
                                                          core::Random& random,
                                                          DispatcherOptions options);
  virtual ~Dispatcher() = default;

  virtual void Start() = 0;
  // Stops sending, waits for in-flight requests up to a short grace, records their outcomes,
  // releases the rest. Idempotent.
  virtual void Stop() = 0;

  // Deliveries leased to this process by fan-out.
  virtual void Offer(std::vector<store::DeliveryJob> jobs) = 0;
  // Something became due in the store (redeliver, recover): claim soon.
  virtual void Wake() = 0;
  // The subscription changed (URL, secret, headers, enabled): reload before the next send.
  virtual void InvalidateSubscription(core::SubscriptionId id) = 0;

  // The deliveries this dispatcher holds in memory: queued in its lanes plus attempts in flight
  // (never more than `max_queued`), now and the most held at once since Start(). Updated by the
  // dispatcher thread each time it takes a job in and at every turn of its loop. Thread-safe.
  struct Memory {
    std::size_t held = 0;
    std::size_t peak_held = 0;
  };
  virtual Memory Held() const = 0;
};

// What keeps `path` from serving as --ca-file, if anything: it must be a readable file holding at
// least one PEM certificate. Checked at start-up: libcurl reads the file at every TLS connect,
// and one it cannot load fails every HTTPS delivery (`tls_error`), whatever the receiver's
// certificate.
std::optional<std::string> CaFileProblem(const std::string& path);

}  // namespace outbound::delivery
