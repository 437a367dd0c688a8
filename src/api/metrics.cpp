#include "api/metrics.h"

#include <map>
#include <sstream>

#include "store/counters.h"

namespace outbound::api {

void Metrics::CountRequest(std::string_view method, std::string_view route, int status,
                           double seconds) {
  std::lock_guard lock(mu_);
  auto& c = requests_[{std::string(method), std::string(route), status}];
  ++c.count;
  c.seconds += seconds;
}

std::string Metrics::Render(std::size_t store_queue_depth) const {
  std::ostringstream out;
  std::lock_guard lock(mu_);
  out << "# HELP outbound_http_requests_total API requests by method, route pattern and status.\n"
         "# TYPE outbound_http_requests_total counter\n";
  for (const auto& [key, c] : requests_) {
    const auto& [method, route, status] = key;
    out << "outbound_http_requests_total{method=\"" << method << "\",route=\"" << route
        << "\",status=\"" << status << "\"} " << c.count << "\n";
  }
  // Per route: total handling time, for mean latency.
  std::map<std::pair<std::string, std::string>, Counter> by_route;
  for (const auto& [key, c] : requests_) {
    auto& r = by_route[{std::get<0>(key), std::get<1>(key)}];
    r.count += c.count;
    r.seconds += c.seconds;
  }
  out << "# HELP outbound_http_request_duration_seconds Time spent handling API requests.\n"
         "# TYPE outbound_http_request_duration_seconds summary\n";
  for (const auto& [key, c] : by_route) {
    std::string labels = "method=\"" + key.first + "\",route=\"" + key.second + "\"";
    out << "outbound_http_request_duration_seconds_sum{" << labels << "} " << c.seconds << "\n";
    out << "outbound_http_request_duration_seconds_count{" << labels << "} " << c.count << "\n";
  }
  const store::CounterValues store_counters = store::Counters::Read();
  out << "# HELP outbound_store_round_trips_total Requests answered by the database server "
         "(PostgreSQL).\n"
         "# TYPE outbound_store_round_trips_total counter\n"
         "outbound_store_round_trips_total "
      << store_counters.round_trips << "\n";
  out << "# HELP outbound_stale_lease_writes_total Outcomes and releases ignored because another "
         "process had taken the delivery over.\n"
         "# TYPE outbound_stale_lease_writes_total counter\n"
         "outbound_stale_lease_writes_total "
      << store_counters.stale_lease_writes << "\n";
  out << "# HELP outbound_store_queue_depth Write tasks waiting for the next group commit.\n"
         "# TYPE outbound_store_queue_depth gauge\n"
         "outbound_store_queue_depth "
      << store_queue_depth << "\n";
  return out.str();
}

}  // namespace outbound::api
