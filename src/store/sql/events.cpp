// SqlTxn: events and idempotency keys.
#include "store/sql/txn_util.h"

namespace outbound::store::sql {

using namespace util;  // NOLINT(google-build-using-namespace): the shared helpers of store/sql

// ---------------------------------------------------------------------------------------------
// Events and idempotency

Status SqlTxn::InsertEvent(const StoredEvent& e) {
  const auto& r = e.record;
  std::string data = core::EventDataText(r.data);  // billing byte for byte (CONTRACT.md §10)
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare("INSERT INTO events(event_id, tenant_id, event_type, target_id, "
                         "occurred_at, accepted_at, origin_client_id, data) VALUES (?1, ?2, ?3, "
                         "?4, ?5, ?6, ?7, ?8)"));
  s.Bind(1, r.event_id)
      .Bind(2, r.tenant.value)
      .Bind(3, core::Info(r.type).name)
      .Bind(4, r.target_id)
      .Bind(5, r.occurred_at)
      .Bind(6, r.accepted_at)
      .Bind(8, data);
  if (e.origin_client) s.Bind(7, e.origin_client->value);
  last_events_.clear();
  // Nothing reads its result: on PostgreSQL it goes with the publish's next statement (the
  // rendering's insert), a round trip fewer per publish.
  OB_RETURN_IF_ERROR(s.RunLater());
  last_events_.emplace(r.event_id,
                       EventFacts{r.event_id, r.tenant.value, std::string(core::Info(r.type).name),
                                  r.occurred_at, r.accepted_at, r.target_id});
  // outbound_events_accepted_total (test events are stored by InsertUnlistedEvent, not here).
  ++tally_.events_accepted;
  return {};
}

namespace {

inline constexpr std::size_t kEventInsertChunk = 100;  // rows per statement (8 parameters each)

// Multi-row INSERT of `n` events: a batch costs one statement per 100 events.
const std::string& InsertEventsSql(std::size_t n) {
  static const std::vector<std::string> texts = [] {
    std::vector<std::string> t(kEventInsertChunk + 1);
    for (std::size_t rows = 1; rows <= kEventInsertChunk; ++rows) {
      std::string sql =
          "INSERT INTO events(event_id, tenant_id, event_type, target_id, occurred_at, "
          "accepted_at, origin_client_id, data) VALUES ";
      for (std::size_t r = 0; r < rows; ++r) {
        if (r > 0) sql += ", ";
        sql += "(";
        for (std::size_t k = 1; k <= 8; ++k) {
          if (k > 1) sql += ", ";
          sql += "?" + std::to_string(r * 8 + k);
        }
        sql += ")";
      }
      t[rows] = std::move(sql);
    }
    return t;
  }();
  return texts[n];
}

}  // namespace

Status SqlTxn::InsertEvents(const std::vector<StoredEvent>& events) {
  last_events_.clear();
  for (std::size_t start = 0; start < events.size(); start += kEventInsertChunk) {
    const std::size_t n = std::min(kEventInsertChunk, events.size() - start);
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(InsertEventsSql(n)));
    std::vector<std::string> data(n);  // bound texts must outlive the statement's Run
    for (std::size_t i = 0; i < n; ++i) {
      const StoredEvent& e = events[start + i];
      const auto& r = e.record;
      data[i] = core::EventDataText(r.data);  // billing byte for byte (CONTRACT.md §10)
      const int b = static_cast<int>(i * 8);
      s.Bind(b + 1, r.event_id)
          .Bind(b + 2, r.tenant.value)
          .Bind(b + 3, core::Info(r.type).name)
          .Bind(b + 4, r.target_id)
          .Bind(b + 5, r.occurred_at)
          .Bind(b + 6, r.accepted_at)
          .Bind(b + 8, data[i]);
      if (e.origin_client) {
        s.Bind(b + 7, e.origin_client->value);
      } else {
        s.BindNull(b + 7, NullType::kInt);
      }
    }
    OB_RETURN_IF_ERROR(s.Run());
  }
  for (const StoredEvent& e : events) {
    const auto& r = e.record;
    last_events_.emplace(
        r.event_id, EventFacts{r.event_id, r.tenant.value, std::string(core::Info(r.type).name),
                               r.occurred_at, r.accepted_at, r.target_id});
  }
  tally_.events_accepted += events.size();  // outbound_events_accepted_total
  return {};
}

Result<std::optional<StoredEvent>> SqlTxn::GetEvent(TenantId tenant, std::string_view event_id) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT " OB_EVENT_COLS " FROM events e WHERE "
                                         "e.event_id = ?1 AND e.tenant_id = ?2 AND "
                                         "e.operational = 0"));
  s.Bind(1, event_id).Bind(2, tenant.value);
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<StoredEvent>();
  OB_ASSIGN_OR_RETURN(StoredEvent e, ReadEvent(s));
  return std::optional<StoredEvent>(std::move(e));
}

Result<PageResult<StoredEvent>> SqlTxn::ListEvents(TenantId tenant, const EventFilter& filter,
                                                   const Page& page) {
  int limit = Limit(page);
  Params p;
  // Newest first: event ids are ULIDs, which sort by acceptance.
  std::string sql = "SELECT " OB_EVENT_COLS " FROM events e WHERE e.tenant_id = ";
  sql += p.Add(tenant.value);
  sql += " AND e.operational = 0";
  sql += " AND e.test = 0";  // test events are read by id only (CONTRACT §13)
  if (filter.event_type) sql += " AND e.event_type = " + p.Add(*filter.event_type);
  if (filter.target) sql += " AND e.target_id = " + p.Add(filter.target->value);
  if (filter.since) sql += " AND e.occurred_at >= " + p.Add(*filter.since);
  if (filter.until) sql += " AND e.occurred_at < " + p.Add(*filter.until);
  if (filter.client) {
    std::string c = p.Add(filter.client->value);
    sql += " AND (e.origin_client_id = " + c +
           " OR EXISTS (SELECT 1 FROM deliveries d JOIN subscriptions s ON s.id = "
           "d.subscription_id WHERE d.event_id = e.event_id AND s.client_id = " +
           c + "))";
  }
  if (page.after && !page.after->empty()) sql += " AND e.event_id < " + p.Add(*page.after);
  sql += " ORDER BY e.event_id DESC LIMIT " + p.Add(limit + 1);
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
  p.BindTo(s);
  std::vector<StoredEvent> rows;
  for (;;) {
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    OB_ASSIGN_OR_RETURN(StoredEvent e, ReadEvent(s));
    rows.push_back(std::move(e));
  }
  return Paginate(std::move(rows), limit, [](const StoredEvent& e) { return e.record.event_id; });
}

Result<std::optional<IdempotencyRecord>> SqlTxn::GetIdempotency(TenantId tenant,
                                                                std::string_view key) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT request_hash, status, body, created_at FROM "
                                         "idempotency WHERE tenant_id = ?1 AND key = ?2"));
  s.Bind(1, tenant.value).Bind(2, key);
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<IdempotencyRecord>();
  return std::optional<IdempotencyRecord>(
      IdempotencyRecord{s.Text(0), static_cast<int>(s.Int(1)), s.Text(2), s.Int(3)});
}

Result<std::optional<IdempotencyRecord>> SqlTxn::PutIdempotencyIfAbsent(
    TenantId tenant, std::string_view key, const IdempotencyRecord& rec) {
  {
    // One statement: of two transactions with the same key, the second waits for the first and
    // then inserts nothing.
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("INSERT INTO idempotency(tenant_id, key, request_hash, "
                                           "status, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5, "
                                           "?6) ON CONFLICT (tenant_id, key) DO NOTHING"));
    s.Bind(1, tenant.value)
        .Bind(2, key)
        .Bind(3, rec.request_hash)
        .Bind(4, rec.status)
        .Bind(5, rec.body)
        .Bind(6, rec.created_at);
    OB_RETURN_IF_ERROR(s.Run());
    if (c_.Changes() > 0) return std::optional<IdempotencyRecord>();
  }
  OB_ASSIGN_OR_RETURN(std::optional<IdempotencyRecord> first, GetIdempotency(tenant, key));
  if (!first) return Fail(core::Error::Internal("idempotency key vanished"));
  return first;
}

}  // namespace outbound::store::sql
