#include "api/metrics.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <sstream>

#include "store/counters.h"
#include "store/delivery_counters.h"

namespace outbound::api {
namespace {

// A histogram of the store's durations (buckets store::kCommitBucketsUs, not cumulative, the
// last above the last bound; their sum in microseconds), after its HELP and TYPE lines.
template <typename Buckets>
void WriteDurations(std::ostream& out, const char* name, const Buckets& buckets,
                    std::uint64_t sum_us) {
  std::uint64_t count = 0;
  for (std::size_t i = 0; i < store::kCommitBucketsUs.size(); ++i) {
    count += buckets[i];
    out << name << "_bucket{le=\"" << static_cast<double>(store::kCommitBucketsUs[i]) / 1e6
        << "\"} " << count << "\n";
  }
  count += buckets.back();
  out << name << "_bucket{le=\"+Inf\"} " << count << "\n";
  out << name << "_sum " << static_cast<double>(sum_us) / 1e6 << "\n";
  out << name << "_count " << count << "\n";
}

// The method label: one of HTTP's methods, else "other". A request's method is any token the
// client writes, and each distinct one would be a new series for ever (an unbounded /metrics,
// reachable without a token).
std::string_view MethodLabel(std::string_view method) {
  static constexpr std::string_view kKnown[] = {"GET",    "HEAD",    "POST",  "PUT",    "PATCH",
                                                "DELETE", "OPTIONS", "TRACE", "CONNECT"};
  for (std::string_view m : kKnown) {
    if (m == method) return m;
  }
  return "other";
}

}  // namespace

void Metrics::CountRequest(std::string_view method, std::string_view route, int status,
                           double seconds) {
  std::lock_guard lock(mu_);
  auto& c = requests_[{std::string(MethodLabel(method)), std::string(route), status}];
  ++c.count;
  c.seconds += seconds;
}

std::optional<store::StoreGauges> Metrics::Gauges(store::Store& store, core::UnixMs now) {
  std::lock_guard lock(gauges_mu_);
  if (gauges_ && now >= gauges_read_at_ && now - gauges_read_at_ < kGaugeTtlMs) return gauges_;
  store::StoreGauges read;
  auto status = store.Read([&](store::Txn& txn) -> core::Status {
    auto g = txn.ReadGauges(now);
    if (!g) return core::Fail(std::move(g.error()));
    read = *g;
    return {};
  });
  if (!status) {
    // The previous values stay (a scrape must answer even when the database does not).
    spdlog::warn("metrics: reading the store's gauges failed: {}", status.error().message);
    return gauges_;
  }
  gauges_ = read;
  gauges_read_at_ = now;
  return gauges_;
}

std::string Metrics::Render(store::Store& store, core::UnixMs now,
                            std::optional<std::size_t> dispatcher_held,
                            std::size_t publishes_waiting) {
  const std::size_t store_queue_depth = store.QueueDepth();
  const std::optional<store::StoreGauges> gauges = Gauges(store, now);
  std::ostringstream out;
  out.precision(15);  // sums of seconds keep their milliseconds
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
  out << "# HELP outbound_unreadable_renderings_total Claimed deliveries held back because their "
         "stored payload could not be read (a damaged database; each is tried again every 5 s).\n"
         "# TYPE outbound_unreadable_renderings_total counter\n"
         "outbound_unreadable_renderings_total "
      << store_counters.unreadable_renderings << "\n";
  out << "# HELP outbound_store_queue_depth Write tasks waiting for the next group commit.\n"
         "# TYPE outbound_store_queue_depth gauge\n"
         "outbound_store_queue_depth "
      << store_queue_depth << "\n";
  out << "# HELP outbound_publishes_waiting Single publishes waiting for the store in their "
         "tenant's group (one write task per group: outbound_store_queue_depth counts the group "
         "once).\n"
         "# TYPE outbound_publishes_waiting gauge\n"
         "outbound_publishes_waiting "
      << publishes_waiting << "\n";
  out << "# HELP outbound_store_commit_duration_seconds Time of each COMMIT of the store's write "
         "transactions (group commits; a publish's 202 waits for one): on SQLite writing the "
         "WAL (its sync is outbound_sqlite_wal_sync_duration_seconds), on PostgreSQL a round trip "
         "and the server's WAL flush.\n"
         "# TYPE outbound_store_commit_duration_seconds histogram\n";
  WriteDurations(out, "outbound_store_commit_duration_seconds", store_counters.commit_buckets,
                 store_counters.commit_sum_us);
  out << "# HELP outbound_store_committed_tasks_total Write tasks (publishes, imports, batches of "
         "outcomes, claims, API changes) in the committed transactions; per commit, the size of a "
         "group commit.\n"
         "# TYPE outbound_store_committed_tasks_total counter\n"
         "outbound_store_committed_tasks_total "
      << store_counters.committed_tasks << "\n";
  out << "# HELP outbound_sqlite_checkpoints_total WAL checkpoints of the SQLite store's "
         "checkpointer thread that copied pages into the database file, each ending with a sync "
         "of that file (0 on PostgreSQL).\n"
         "# TYPE outbound_sqlite_checkpoints_total counter\n"
         "outbound_sqlite_checkpoints_total "
      << store_counters.sqlite_checkpoints << "\n";
  out << "# HELP outbound_sqlite_wal_sync_duration_seconds Time of each sync of the SQLite "
         "store's write-ahead log that made commits durable before they were acknowledged (the "
         "writer commits without syncing; one sync covers every commit made while the one before "
         "ran; none on PostgreSQL).\n"
         "# TYPE outbound_sqlite_wal_sync_duration_seconds histogram\n";
  WriteDurations(out, "outbound_sqlite_wal_sync_duration_seconds",
                 store_counters.sqlite_wal_sync_buckets, store_counters.sqlite_wal_sync_sum_us);
  if (dispatcher_held) {
    out << "# HELP outbound_dispatcher_held Deliveries this process's dispatcher holds in memory "
           "(queued or in flight; at most max_queued).\n"
           "# TYPE outbound_dispatcher_held gauge\n"
           "outbound_dispatcher_held "
        << *dispatcher_held << "\n";
  }

  // --- deliveries (CONTRACT §13) ---
  const store::DeliveryCounterValues d = store::DeliveryCounters::Read();
  out << "# HELP outbound_events_accepted_total Events accepted and stored by this process.\n"
         "# TYPE outbound_events_accepted_total counter\n"
         "outbound_events_accepted_total "
      << d.events_accepted << "\n";
  out << "# HELP outbound_deliveries_total Attempts that succeeded (2xx) or failed, and "
         "deliveries that went dead or were cancelled, recorded by this process.\n"
         "# TYPE outbound_deliveries_total counter\n";
  out << "outbound_deliveries_total{result=\"succeeded\"} " << d.succeeded << "\n";
  out << "outbound_deliveries_total{result=\"failed\"} " << d.failed << "\n";
  out << "outbound_deliveries_total{result=\"dead\"} " << d.dead << "\n";
  out << "outbound_deliveries_total{result=\"cancelled\"} " << d.cancelled << "\n";
  out << "# HELP outbound_attempt_duration_seconds Duration of delivery attempts, from the "
         "request's start to the answer or the error.\n"
         "# TYPE outbound_attempt_duration_seconds histogram\n";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < store::kAttemptBuckets.size(); ++i) {
    cumulative += d.duration_buckets[i];
    out << "outbound_attempt_duration_seconds_bucket{le=\"" << store::kAttemptBuckets[i] << "\"} "
        << cumulative << "\n";
  }
  cumulative += d.duration_buckets.back();
  out << "outbound_attempt_duration_seconds_bucket{le=\"+Inf\"} " << cumulative << "\n";
  out << "outbound_attempt_duration_seconds_sum " << static_cast<double>(d.duration_sum_ms) / 1000.0
      << "\n";
  out << "outbound_attempt_duration_seconds_count " << cumulative << "\n";

  // --- the database's queue (every process's), read at most every kGaugeTtlMs ---
  if (gauges) {
    const double oldest_age =
        gauges->oldest_due_at
            ? static_cast<double>(std::max<core::UnixMs>(0, now - *gauges->oldest_due_at)) / 1000.0
            : 0.0;
    out << "# HELP outbound_deliveries_due Deliveries due now (pending or failed, next attempt "
           "time reached) that no process has taken yet.\n"
           "# TYPE outbound_deliveries_due gauge\n"
           "outbound_deliveries_due "
        << gauges->deliveries_due << "\n";
    out << "# HELP outbound_oldest_due_age_seconds How long the oldest due delivery has been "
           "waiting past its next attempt time (0 when none is due).\n"
           "# TYPE outbound_oldest_due_age_seconds gauge\n"
           "outbound_oldest_due_age_seconds "
        << oldest_age << "\n";
    out << "# HELP outbound_subscriptions_disabled Subscriptions that are disabled (by a person "
           "or automatically) and not deleted.\n"
           "# TYPE outbound_subscriptions_disabled gauge\n"
           "outbound_subscriptions_disabled "
        << gauges->subscriptions_disabled << "\n";
  }
  return out.str();
}

}  // namespace outbound::api
