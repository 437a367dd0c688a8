// SqlTxn: retention (CONTRACT §13 --retention) and the gauges of GET /metrics.
#include <cstring>
#include <unordered_set>

#include "core/ids.h"
#include "store/sql/txn_util.h"

namespace outbound::store::sql {

using namespace util;  // NOLINT(google-build-using-namespace): the shared helpers of store/sql

namespace {

// Values per IN (...) list: well below SQLite's 32,766 and PostgreSQL's 65,535 parameters.
constexpr std::size_t kInChunk = 500;

// The smallest eventId of time `ms`: "evt_" + the ULID of `ms` with an all-zero random part.
// Event ids sort by acceptance time, so `event_id < EventIdFloor(t)` is "accepted before t" and
// the unique index on event_id serves the purge without a new index on every insert.
std::string EventIdFloor(UnixMs ms) {
  core::UlidGenerator zero([](unsigned char* out, std::size_t n) { std::memset(out, 0, n); });
  return "evt_" + zero.Next(ms < 0 ? 0 : ms);
}

// " IN (?a, ?b, ...)" over values [begin, end) added to `p`.
template <class T>
std::string InList(Params& p, const std::vector<T>& values, std::size_t begin, std::size_t end) {
  std::string sql = " IN (";
  for (std::size_t i = begin; i < end; ++i) {
    if (i > begin) sql += ", ";
    sql += p.Add(values[i]);
  }
  return sql + ")";
}

}  // namespace

Result<PurgeResult> SqlTxn::PurgeEvents(std::string_view after, UnixMs accepted_before, int limit) {
  PurgeResult out;
  std::vector<std::string> finished;
  struct Cut {  // a kept event that a going one links to
    std::int64_t tenant;
    std::int64_t target;
    std::int64_t row;
  };
  std::vector<Cut> cut;
  int seen = 0;
  std::string last;
  const std::string floor = EventIdFloor(accepted_before);  // bound values must outlive Step
  {
    // Oldest first, through the event_id index; the EXISTS probes deliveries' (event_id,
    // subscription_id) index. Each call reads at most `limit` events, kept ones included.
    // SQLite (migration 13): an event that goes while the event it links to stays (kept for an
    // open delivery) would leave that one and the kept events below it out of the target's
    // chain: they are unlinked after the deletes (`cut`), which puts them into
    // events_target_start. The link is read only when its event exists (by row id), is of the
    // same target and is older.
    const bool chains = c_.dialect() == Dialect::kSqlite;
    OB_ASSIGN_OR_RETURN(
        Stmt s,
        c_.Prepare(chains
                       ? "SELECT e.event_id, CASE WHEN EXISTS (SELECT 1 FROM deliveries d WHERE "
                         "d.event_id = e.event_id AND d.status IN ('pending', 'failed')) THEN 1 "
                         "ELSE 0 END, e.id, CASE WHEN EXISTS (SELECT 1 FROM events p WHERE p.id = "
                         "e.prev_target_row AND p.tenant_id = e.tenant_id AND p.target_id = "
                         "e.target_id AND p.event_id < e.event_id) THEN e.prev_target_row END, "
                         "e.tenant_id, e.target_id FROM events e WHERE "
                         "e.event_id > ?1 AND e.event_id < ?2 AND e.accepted_at < ?3 ORDER BY "
                         "e.event_id LIMIT ?4"
                       : "SELECT e.event_id, CASE WHEN EXISTS (SELECT 1 FROM deliveries d WHERE "
                         "d.event_id = e.event_id AND d.status IN ('pending', 'failed')) THEN 1 "
                         "ELSE 0 END FROM events e WHERE e.event_id > ?1 AND e.event_id < ?2 AND "
                         "e.accepted_at < ?3 ORDER BY e.event_id LIMIT ?4"));
    s.Bind(1, after).Bind(2, floor).Bind(3, accepted_before).Bind(4, limit);
    std::unordered_set<std::int64_t> going;  // rows of `finished` (chains only)
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      ++seen;
      last = s.Text(0);
      if (s.Int(1) != 0) {
        ++out.kept;
        continue;
      }
      finished.push_back(last);
      if (!chains) continue;
      going.insert(s.Int(2));
      // Its link, set when that event exists; older, so seen before in this call if in it.
      if (const std::optional<std::int64_t> prev = s.OptInt(3); prev && !going.contains(*prev)) {
        cut.push_back(Cut{s.Int(4), s.Int(5), *prev});
      }
    }
  }
  if (seen >= limit) out.next = last;

  for (std::size_t begin = 0; begin < finished.size(); begin += kInChunk) {
    const std::size_t end = std::min(finished.size(), begin + kInChunk);
    // Deliveries first, each only if it is still finished: one that a concurrent Redeliver made
    // pending (PostgreSQL re-checks the condition on the row it waited for) stays, and so do its
    // attempts and its event.
    std::vector<std::int64_t> deliveries;
    std::vector<std::int64_t> payloads;  // those the deleted deliveries referred to
    {
      Params p;
      std::string sql = "DELETE FROM deliveries WHERE event_id" + InList(p, finished, begin, end) +
                        " AND status NOT IN ('pending', 'failed') RETURNING id, payload_id";
      OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
      p.BindTo(s);
      for (;;) {
        OB_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) break;
        deliveries.push_back(s.Int(0));
        if (std::optional<std::int64_t> payload = s.OptInt(1)) payloads.push_back(*payload);
      }
    }
    std::sort(payloads.begin(), payloads.end());
    payloads.erase(std::unique(payloads.begin(), payloads.end()), payloads.end());
    out.deliveries += static_cast<std::int64_t>(deliveries.size());
    for (std::size_t d = 0; d < deliveries.size(); d += kInChunk) {
      Params p;
      std::string sql = "DELETE FROM attempts WHERE delivery_row_id" +
                        InList(p, deliveries, d, std::min(deliveries.size(), d + kInChunk));
      OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
      p.BindTo(s);
      OB_RETURN_IF_ERROR(s.Run());
      out.attempts += c_.Changes();
    }
    {
      Params p;
      std::string sql = "DELETE FROM events WHERE event_id" + InList(p, finished, begin, end) +
                        " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = "
                        "events.event_id)";
      OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
      p.BindTo(s);
      OB_RETURN_IF_ERROR(s.Run());
      out.events += static_cast<int>(c_.Changes());
    }
    for (std::size_t d = 0; d < payloads.size(); d += kInChunk) {
      // The stored renderings no delivery refers to any more (a payload belongs to one event:
      // its deliveries are found through deliveries' (event_id, subscription_id) index). So a
      // payload goes with the last delivery that sent it, at the latest with its event: no
      // payload outlives its deliveries, none goes while one refers to it.
      Params p;
      std::string sql = "DELETE FROM payloads WHERE id" +
                        InList(p, payloads, d, std::min(payloads.size(), d + kInChunk)) +
                        " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = "
                        "payloads.event_id AND d.payload_id = payloads.id)";
      OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
      p.BindTo(s);
      OB_RETURN_IF_ERROR(s.Run());
    }
  }
  for (const Cut& c : cut) OB_RETURN_IF_ERROR(UnlinkChain(c.tenant, c.target, c.row));
  return out;
}

Result<int> SqlTxn::PurgeIdempotencyKeys(UnixMs created_before, int limit) {
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare("DELETE FROM idempotency WHERE (tenant_id, key) IN (SELECT tenant_id, "
                         "key FROM idempotency WHERE created_at < ?1 ORDER BY created_at LIMIT "
                         "?2)"));
  s.Bind(1, created_before).Bind(2, limit);
  OB_RETURN_IF_ERROR(s.Run());
  return static_cast<int>(c_.Changes());
}

Result<StoreGauges> SqlTxn::ReadGauges(UnixMs now) {
  StoreGauges g;
  {
    // The conditions of the partial index deliveries_due, written as it is: the count walks
    // only the due rows, the minimum is its first entry. Deliveries held for a paused
    // subscription, or held back by ordering, are pending and count as due: they are waiting.
    // They are out of deliveries_due once held (SQLite's migration 15, PostgreSQL's 11) and
    // counted in deliveries_held alone: a held row is always open and unleased (it is held only so,
    // leased only through deliveries_due, or deliveries_due_subscription on PostgreSQL, and a
    // cancel lets go of it; store/sql/deliveries.cpp).
    OB_ASSIGN_OR_RETURN(
        Stmt s, c_.Prepare("SELECT COUNT(*), MIN(next_attempt_at) FROM (SELECT next_attempt_at "
                           "FROM deliveries WHERE status IN ('pending', 'failed') AND lease_owner "
                           "IS NULL AND held = 0 AND next_attempt_at <= ?1 UNION ALL SELECT "
                           "next_attempt_at FROM deliveries WHERE held <> 0 AND next_attempt_at "
                           "<= ?1) due"));
    s.Bind(1, now);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) {
      g.deliveries_due = s.Int(0);
      g.oldest_due_at = s.OptInt(1);
    }
  }
  {
    // The partial index subscriptions_disabled (migration 4).
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT COUNT(*) FROM subscriptions WHERE enabled = 0 "
                                           "AND deleted = 0"));
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) g.subscriptions_disabled = s.Int(0);
  }
  return g;
}

}  // namespace outbound::store::sql
