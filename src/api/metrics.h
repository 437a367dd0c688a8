// GET /metrics (Prometheus text format 0.0.4, CONTRACT §13).
//   - Request counters: labels are the method, the route pattern (never a concrete path, so no
//     ids or tenant names) and the status.
//   - Delivery counters (store/delivery_counters.h): events accepted, attempts and deliveries by
//     result, the attempt duration histogram. Per process.
//   - Store gauges (Txn::ReadGauges): due deliveries, age of the oldest, disabled subscriptions.
//     They describe the whole database (on PostgreSQL: every process's work). Read at most once
//     per kGaugeTtlMs, on a scrape; a scrape in between answers the values read last.
// Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

#include "core/clock.h"
#include "store/store.h"

namespace outbound::api {

class Metrics {
 public:
  static constexpr core::UnixMs kGaugeTtlMs = 2000;

  void CountRequest(std::string_view method, std::string_view route, int status, double seconds);
  // The exposition, with the store's gauges as of `now` (read again when older than the TTL).
  // `dispatcher_held`: what ApiHooks::dispatcher_held says, when the process has a dispatcher.
  // `publishes_waiting`: single publishes waiting in groups (ingest's WaitingPublishes).
  std::string Render(store::Store& store, core::UnixMs now,
                     std::optional<std::size_t> dispatcher_held = std::nullopt,
                     std::size_t publishes_waiting = 0);

 private:
  struct Counter {
    std::uint64_t count = 0;
    double seconds = 0;
  };
  // The gauges as last read, refreshed when older than kGaugeTtlMs; nullopt until a read works.
  std::optional<store::StoreGauges> Gauges(store::Store& store, core::UnixMs now);

  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, Counter> requests_;  // guarded by mu_
  std::mutex gauges_mu_;  // one scrape reads the store at a time; the others wait for its answer
  std::optional<store::StoreGauges> gauges_;  // guarded by gauges_mu_
  core::UnixMs gauges_read_at_ = 0;           // guarded by gauges_mu_
};

}  // namespace outbound::api
