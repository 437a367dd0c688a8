// Request counters for GET /metrics (Prometheus text format 0.0.4). Labels are the method, the
// route pattern (never a concrete path, so no ids or tenant names) and the status.
// Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>

namespace outbound::api {

class Metrics {
 public:
  void CountRequest(std::string_view method, std::string_view route, int status, double seconds);
  // `store_queue_depth`: Store::QueueDepth() at the time of the scrape.
  std::string Render(std::size_t store_queue_depth) const;

 private:
  struct Counter {
    std::uint64_t count = 0;
    double seconds = 0;
  };
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, Counter> requests_;  // guarded by mu_
};

}  // namespace outbound::api
