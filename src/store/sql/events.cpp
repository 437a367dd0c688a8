// SqlTxn: events and idempotency keys.
#include "core/ids.h"
#include "store/sql/txn_util.h"

namespace outbound::store::sql {

using namespace util;  // NOLINT(google-build-using-namespace): the shared helpers of store/sql

// ---------------------------------------------------------------------------------------------
// Events and idempotency

// SQLite (migration 13): the event links to its target's newest event, when that is an event of
// the target older than this one, and becomes the target's newest unless it is older than the
// one there (two publishes whose ids were drawn in one order and stored in the other): so a
// chain always goes from newer to older ids, and an event it leaves out is unlinked, found
// through events_target_start. No target row: unlinked, and nothing to update.
constexpr const char* kInsertLinkedEvent =
    "INSERT INTO events(event_id, tenant_id, event_type, target_id, occurred_at, accepted_at, "
    "origin_client_id, data, prev_target_row) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, (SELECT "
    "h.id FROM targets t JOIN events h ON h.id = t.last_event_row WHERE t.tenant_id = ?2 AND "
    "t.id = ?4 AND h.tenant_id = ?2 AND h.target_id = ?4 AND h.event_id < ?1))";
constexpr const char* kAdvanceTargetHead =
    "UPDATE targets SET last_event_row = last_insert_rowid() WHERE tenant_id = ?1 AND id = ?2 AND "
    "NOT EXISTS (SELECT 1 FROM events h WHERE h.id = targets.last_event_row AND h.tenant_id = ?1 "
    "AND h.target_id = ?2 AND h.event_id > ?3)";

Status SqlTxn::InsertEvent(const StoredEvent& e) {
  const auto& r = e.record;
  // Billing byte for byte (CONTRACT.md §10); the caller's text when it made it (no copy).
  std::string made;
  if (!e.data_text) made = core::EventDataText(r.data);
  const std::string_view data = e.data_text ? std::string_view(*e.data_text) : made;
  const bool linked = c_.dialect() == Dialect::kSqlite && r.target_id.has_value();
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare(linked ? kInsertLinkedEvent
                                : "INSERT INTO events(event_id, tenant_id, event_type, target_id, "
                                  "occurred_at, accepted_at, origin_client_id, data) VALUES (?1, "
                                  "?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
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
  if (linked) {
    // The head it leaves is read again by the next batch (DirectoryCache::heads).
    if (directory_cache_) directory_cache_->heads.erase({r.tenant.value, *r.target_id});
    OB_ASSIGN_OR_RETURN(Stmt head, c_.Prepare(kAdvanceTargetHead));
    head.Bind(1, r.tenant.value).Bind(2, *r.target_id).Bind(3, r.event_id);
    {
      const FlagWhile neutral(TargetsNeutral());  // last_event_row only
      OB_RETURN_IF_ERROR(head.Run());
    }
    if (c_.Changes() == 0) {
      // No target row, or its newest event is newer than this one: spliced in below it.
      OB_ASSIGN_OR_RETURN(Stmt id, c_.Prepare("SELECT last_insert_rowid()"));
      OB_ASSIGN_OR_RETURN(bool found, id.Step());
      if (!found) return Fail(core::Error::Internal("no row id of the event just stored"));
      const std::int64_t row = id.Int(0);
      OB_RETURN_IF_ERROR(SpliceEvent(r.tenant.value, *r.target_id, row, r.event_id));
    }
  }
  last_events_.emplace(r.event_id,
                       EventFacts{r.event_id, r.tenant.value, std::string(core::Info(r.type).name),
                                  r.occurred_at, r.accepted_at, r.target_id});
  // outbound_events_accepted_total (test events are stored by InsertUnlistedEvent, not here).
  ++tally_.events_accepted;
  return {};
}

// SQLite: the target's row and its newest event, read together; an event of another target (a
// row id reused after a deletion) or none is no head.
Result<SqlTxn::ChainHead> SqlTxn::ReadChainHead(std::int64_t tenant, std::int64_t target) {
  OB_ASSIGN_OR_RETURN(
      Stmt h, c_.Prepare("SELECT h.id, h.event_id, h.prev_target_row FROM targets t LEFT JOIN "
                         "events h ON h.id = t.last_event_row AND h.tenant_id = t.tenant_id AND "
                         "h.target_id = t.id WHERE t.tenant_id = ?1 AND t.id = ?2"));
  h.Bind(1, tenant).Bind(2, target);
  OB_ASSIGN_OR_RETURN(bool found, h.Step());
  ChainHead head;
  if (!found) return head;
  head.target = true;
  if (h.IsNull(0)) return head;
  head.row = h.Int(0);
  head.event_id = h.Text(1);
  head.prev = h.OptInt(2);
  return head;
}

// SQLite: an unlinked event of a target whose newest event is newer than it (stored out of
// the order of their ids) goes into the chain where its id belongs: between the first event
// older than it and the one after that. Walks from the newest event down, which for an event
// stored out of order is a step or two. An event older than the chain's first stays unlinked
// (so every linked event stays newer than every unlinked one).
Status SqlTxn::SpliceEvent(std::int64_t tenant, std::int64_t target, std::int64_t row,
                           std::string_view event_id) {
  OB_ASSIGN_OR_RETURN(ChainHead head, ReadChainHead(tenant, target));
  // No chain, or this event is not older than its newest.
  if (head.row == 0 || head.event_id <= event_id) return {};
  std::int64_t newer = head.row;  // an event of the chain newer than this one
  std::string newer_id = std::move(head.event_id);
  std::optional<std::int64_t> prev = head.prev;
  auto read = [&](std::int64_t at, std::optional<std::int64_t>& prev,
                  std::string& id) -> Result<bool> {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT prev_target_row, event_id FROM events WHERE "
                                           "id = ?1 AND tenant_id = ?2 AND target_id = ?3"));
    s.Bind(1, at).Bind(2, tenant).Bind(3, target);
    OB_ASSIGN_OR_RETURN(bool found, s.Step());
    if (!found) return false;
    prev = s.OptInt(0);
    id = s.Text(1);
    return true;
  };
  for (;;) {
    if (!prev) return {};  // older than the chain's first: stays unlinked
    std::optional<std::int64_t> before;
    std::string id;
    OB_ASSIGN_OR_RETURN(bool found, read(*prev, before, id));
    // A link goes to an older id: anything else is not a chain to follow (nor is a gap).
    if (!found || id >= newer_id) return {};
    if (id < event_id) break;
    newer = *prev;
    newer_id = std::move(id);
    prev = before;
  }
  auto link = [&](std::int64_t from, std::int64_t to) -> Status {
    OB_ASSIGN_OR_RETURN(Stmt u, c_.Prepare("UPDATE events SET prev_target_row = ?2 WHERE id = ?1"));
    u.Bind(1, from).Bind(2, to);
    return u.Run();
  };
  OB_RETURN_IF_ERROR(link(row, *prev));
  return link(newer, row);
}

// SQLite: the events of the chain from `row` down (`row` included) become unlinked, so
// events_target_start finds them: for a chain that lost the event after `row` (PurgeEvents) or
// its target's row (DeleteEntity). Each step must go to an older id of the same target, so the
// walk ends whatever row ids were reused.
Status SqlTxn::UnlinkChain(std::int64_t tenant, std::int64_t target, std::int64_t row) {
  OB_ASSIGN_OR_RETURN(
      Stmt u, c_.Prepare("WITH RECURSIVE chain(id, event_id) AS (SELECT id, event_id FROM events "
                         "WHERE id = ?3 AND tenant_id = ?1 AND target_id = ?2 UNION SELECT p.id, "
                         "p.event_id FROM chain c JOIN events e ON e.id = c.id JOIN events p ON "
                         "p.id = e.prev_target_row WHERE p.tenant_id = ?1 AND p.target_id = ?2 "
                         "AND p.event_id < c.event_id) UPDATE events SET prev_target_row = NULL "
                         "WHERE id IN (SELECT id FROM chain) AND prev_target_row IS NOT NULL"));
  u.Bind(1, tenant).Bind(2, target).Bind(3, row);
  return u.Run();
}

namespace {

inline constexpr std::size_t kEventInsertChunk = 100;  // rows per statement

// The texts of a multi-row INSERT into events of `columns` (a parenthesized list of `count`
// columns), for 1..kEventInsertChunk rows: a batch costs one statement per 100 events.
std::vector<std::string> InsertEventsTexts(const char* columns, std::size_t count) {
  std::vector<std::string> t(kEventInsertChunk + 1);
  for (std::size_t rows = 1; rows <= kEventInsertChunk; ++rows) {
    std::string sql = std::string("INSERT INTO events") + columns + " VALUES ";
    for (std::size_t r = 0; r < rows; ++r) {
      if (r > 0) sql += ", ";
      sql += "(";
      for (std::size_t k = 1; k <= count; ++k) {
        if (k > 1) sql += ", ";
        sql += "?" + std::to_string(r * count + k);
      }
      sql += ")";
    }
    t[rows] = std::move(sql);
  }
  return t;
}

inline constexpr std::size_t kEventColumns = 8;  // those BindEventRow binds

// Multi-row INSERT of `n` events.
const std::string& InsertEventsSql(std::size_t n) {
  static const std::vector<std::string> texts = InsertEventsTexts(
      "(event_id, tenant_id, event_type, target_id, occurred_at, accepted_at, origin_client_id, "
      "data)",
      kEventColumns);
  return texts[n];
}

// SQLite: the same with each row's id and prev_target_row (kInsertLinkedEvent's link, worked out
// before the insert: a row's subquery would not see the rows of its own statement).
const std::string& InsertLinkedEventsSql(std::size_t n) {
  static const std::vector<std::string> texts = InsertEventsTexts(
      "(event_id, tenant_id, event_type, target_id, occurred_at, accepted_at, origin_client_id, "
      "data, id, prev_target_row)",
      kEventColumns + 2);
  return texts[n];
}

// Binds the kEventColumns columns of `e` from parameter b + 1 on; `data` keeps the bound text
// when it is made here (the event's own data_text otherwise).
void BindEventRow(Stmt& s, int b, const StoredEvent& e, std::string& data) {
  const auto& r = e.record;
  if (!e.data_text) data = core::EventDataText(r.data);  // billing byte for byte (CONTRACT §10)
  s.Bind(b + 1, r.event_id)
      .Bind(b + 2, r.tenant.value)
      .Bind(b + 3, core::Info(r.type).name)
      .Bind(b + 4, r.target_id)
      .Bind(b + 5, r.occurred_at)
      .Bind(b + 6, r.accepted_at)
      .Bind(b + 8, e.data_text ? std::string_view(*e.data_text) : std::string_view(data));
  if (e.origin_client) {
    s.Bind(b + 7, e.origin_client->value);
  } else {
    s.BindNull(b + 7, NullType::kInt);
  }
}

}  // namespace

Status SqlTxn::InsertEvents(const std::vector<StoredEvent>& events) {
  last_events_.clear();
  if (c_.dialect() == Dialect::kSqlite) {
    OB_RETURN_IF_ERROR(InsertLinkedEvents(events));
  } else {
    OB_RETURN_IF_ERROR(InsertUnlinkedEvents(events));
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

Status SqlTxn::InsertLinkedEvents(const std::vector<StoredEvent>& events) {
  // Row ids given here (the writer is the database's only one), so that each event's link is
  // known before the insert.
  OB_ASSIGN_OR_RETURN(const std::int64_t first_row, NextRowId(c_, "events", events.size()));
  std::int64_t next_row = first_row - 1;
  struct BatchHead {  // a target's newest event as the batch sees it
    ChainHead head;
    bool moved = false;  // the batch gave it a newer one
  };
  std::map<std::pair<std::int64_t, std::int64_t>, BatchHead> heads;  // by (tenant, target)
  struct Late {  // an event older than its target's newest: spliced in after the inserts
    std::int64_t tenant;
    std::int64_t target;
    std::int64_t row;
    std::string_view event_id;
  };
  std::vector<Late> out_of_order;
  for (std::size_t start = 0; start < events.size(); start += kEventInsertChunk) {
    const std::size_t n = std::min(kEventInsertChunk, events.size() - start);
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(InsertLinkedEventsSql(n)));
    std::vector<std::string> data(n);  // bound texts must outlive the statement's Run
    for (std::size_t i = 0; i < n; ++i) {
      const StoredEvent& e = events[start + i];
      const auto& r = e.record;
      const std::int64_t row = ++next_row;
      std::optional<std::int64_t> prev;
      if (r.target_id) {
        auto [it, added] = heads.try_emplace({r.tenant.value, *r.target_id});
        BatchHead& b = it->second;
        if (added) {
          const DirectoryCache::Head* cached = nullptr;
          if (directory_cache_) {
            auto found = directory_cache_->heads.find(it->first);
            if (found != directory_cache_->heads.end()) cached = &found->second;
          }
          if (cached != nullptr) {
            b.head.target = true;
            b.head.row = cached->row;
            b.head.event_id = cached->event_id;
          } else {
            OB_ASSIGN_OR_RETURN(b.head, ReadChainHead(r.tenant.value, *r.target_id));
          }
        }
        if (b.head.target) {
          const bool older = b.head.row != 0 && b.head.event_id > r.event_id;
          if (older) {
            out_of_order.push_back({r.tenant.value, *r.target_id, row, r.event_id});
          } else {
            if (b.head.row != 0) prev = b.head.row;
            b.head.row = row;
            b.head.event_id = r.event_id;
            b.moved = true;
          }
        }
      }
      const int b = static_cast<int>(i * (kEventColumns + 2));
      BindEventRow(s, b, e, data[i]);
      s.Bind(b + 9, row).Bind(b + 10, prev);
    }
    OB_RETURN_IF_ERROR(s.Run());
  }
  for (const auto& [key, b] : heads) {
    // Kept for the next batch, moved or not (a target without a row is not kept).
    if (directory_cache_ && b.head.target) {
      if (directory_cache_->Size() >= kDirectoryCacheEntries) directory_cache_->Clear();
      directory_cache_->heads.insert_or_assign(key,
                                               DirectoryCache::Head{b.head.row, b.head.event_id});
    }
    if (!b.moved) continue;
    OB_ASSIGN_OR_RETURN(Stmt u, c_.Prepare("UPDATE targets SET last_event_row = ?3 WHERE "
                                           "tenant_id = ?1 AND id = ?2"));
    u.Bind(1, key.first).Bind(2, key.second).Bind(3, b.head.row);
    const FlagWhile neutral(TargetsNeutral());  // last_event_row only
    OB_RETURN_IF_ERROR(u.Run());
  }
  for (const Late& e : out_of_order) {
    OB_RETURN_IF_ERROR(SpliceEvent(e.tenant, e.target, e.row, e.event_id));
  }
  return {};
}

Status SqlTxn::InsertUnlinkedEvents(const std::vector<StoredEvent>& events) {
  for (std::size_t start = 0; start < events.size(); start += kEventInsertChunk) {
    const std::size_t n = std::min(kEventInsertChunk, events.size() - start);
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(InsertEventsSql(n)));
    std::vector<std::string> data(n);  // bound texts must outlive the statement's Run
    for (std::size_t i = 0; i < n; ++i) {
      BindEventRow(s, static_cast<int>(i * kEventColumns), events[start + i], data[i]);
    }
    OB_RETURN_IF_ERROR(s.Run());
  }
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

namespace {

// The terms of `filter` but its target, each " AND ...", their values added to `p`.
std::string EventTerms(const EventFilter& filter, Params& p) {
  std::string sql = " AND e.operational = 0";
  sql += " AND e.test = 0";  // test events are read by id only (CONTRACT §13)
  if (filter.event_type) sql += " AND e.event_type = " + p.Add(*filter.event_type);
  if (filter.since) sql += " AND e.occurred_at >= " + p.Add(*filter.since);
  if (filter.until) sql += " AND e.occurred_at < " + p.Add(*filter.until);
  if (filter.client) {
    std::string c = p.Add(filter.client->value);
    sql += " AND (e.origin_client_id = " + c +
           " OR EXISTS (SELECT 1 FROM deliveries d JOIN subscriptions s ON s.id = "
           "d.subscription_id WHERE d.event_id = e.event_id AND s.client_id = " +
           c + "))";
  }
  return sql;
}

}  // namespace

Result<PageResult<StoredEvent>> SqlTxn::ListEvents(TenantId tenant, const EventFilter& filter,
                                                   const Page& page) {
  // The cursor is the last event id of the page before: anything else is refused, as the id
  // lists' cursors are (compared as text, "abc" would end the list and "zzz" start it again).
  if (page.after && !page.after->empty() && !core::IsEventId(*page.after)) {
    return Fail(BadCursor());
  }
  if (filter.target && c_.dialect() == Dialect::kSqlite) {
    return ListTargetEvents(tenant, filter, page);
  }
  int limit = Limit(page);
  Params p;
  // Newest first: event ids are ULIDs, which sort by acceptance.
  std::string sql = "SELECT " OB_EVENT_COLS " FROM events e WHERE e.tenant_id = ";
  sql += p.Add(tenant.value);
  if (filter.target) sql += " AND e.target_id = " + p.Add(filter.target->value);
  sql += EventTerms(filter, p);
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

// SQLite (migration 13): a target's events are its linked events, a chain from the target's
// newest event down to older ones (each links to the one before it), and its unlinked events,
// indexed by events_target_start (the first of a chain, those stored before the migration, those
// whose target had no row). Every linked event is newer than every unlinked one (InsertEvent
// splices an event stored out of order into its place), but the two streams are merged by id
// all the same. A page reads its rows of the chain one by one (each a probe of the primary key)
// and the unlinked ones in one statement.
Result<PageResult<StoredEvent>> SqlTxn::ListTargetEvents(TenantId tenant, const EventFilter& filter,
                                                         const Page& page) {
  const int limit = Limit(page);
  const std::int64_t target = filter.target->value;
  const bool after = page.after && !page.after->empty();

  // The unlinked stream: at most limit + 1 rows, newest first.
  std::vector<StoredEvent> unlinked;
  {
    Params p;
    std::string sql = "SELECT " OB_EVENT_COLS " FROM events e WHERE e.tenant_id = ";
    sql += p.Add(tenant.value);
    sql += " AND e.target_id = " + p.Add(target);
    sql += " AND e.prev_target_row IS NULL";
    sql += EventTerms(filter, p);
    if (after) sql += " AND e.event_id < " + p.Add(*page.after);
    sql += " ORDER BY e.event_id DESC LIMIT " + p.Add(limit + 1);
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
    p.BindTo(s);
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      OB_ASSIGN_OR_RETURN(StoredEvent e, ReadEvent(s));
      unlinked.push_back(std::move(e));
    }
  }

  // Where the chain starts: the target's newest event, or after a cursor the event the cursor's
  // links to. A cursor that is no event of the target (deleted since, another target's, made
  // up) goes on from the target's newest linked event below it: none if the target has no
  // chain; its newest event if that is below the cursor; else the first event of the target
  // that a read of the tenant's events from the cursor down finds (events_tenant), no further
  // than the newest unlinked event below the cursor (every linked event is newer) and than
  // kSeekRows rows; past those, the chain from the newest event with the events at or above
  // the cursor skipped (as many steps as the target has events above the cursor).
  constexpr int kSeekRows = 10'000;
  OB_ASSIGN_OR_RETURN(const ChainHead chain, ReadChainHead(tenant.value, target));
  const std::int64_t head = chain.row;  // 0: none
  const std::string& head_id = chain.event_id;
  std::int64_t next = 0;  // 0: none (row ids start at 1)
  std::string newer_id;   // the id of the chain's event read last: each step must be older
  bool skip = false;      // skip the chain's events at or above the cursor
  if (!after) {
    next = head;
  } else {
    newer_id = *page.after;
    OB_ASSIGN_OR_RETURN(Stmt c, c_.Prepare("SELECT e.prev_target_row FROM events e WHERE "
                                           "e.event_id = ?1 AND e.tenant_id = ?2 AND "
                                           "e.target_id = ?3"));
    c.Bind(1, *page.after).Bind(2, tenant.value).Bind(3, target);
    OB_ASSIGN_OR_RETURN(bool found, c.Step());
    if (found) {
      next = c.OptInt(0).value_or(0);
    } else if (head != 0 && head_id < *page.after) {
      next = head;
    } else if (head != 0) {
      const std::string floor = unlinked.empty() ? std::string() : unlinked.front().record.event_id;
      OB_ASSIGN_OR_RETURN(
          Stmt below, c_.Prepare("SELECT e.id, e.prev_target_row, e.target_id FROM events e "
                                 "INDEXED BY events_tenant WHERE e.tenant_id = ?1 AND e.event_id "
                                 "< ?2 AND e.event_id > ?3 ORDER BY e.event_id DESC LIMIT ?4"));
      below.Bind(1, tenant.value).Bind(2, *page.after).Bind(3, floor).Bind(4, kSeekRows);
      int rows = 0;
      bool found_one = false;
      for (;;) {
        OB_ASSIGN_OR_RETURN(bool more, below.Step());
        if (!more) break;
        ++rows;
        if (below.Int(2) != target) continue;
        found_one = true;
        next = below.OptInt(1) ? below.Int(0) : 0;  // an unlinked one ends the chain
        break;
      }
      if (!found_one && rows == kSeekRows) {
        next = head;
        newer_id.clear();
        skip = true;
      }
    }
  }

  // One step of the chain: the event, its link, whether it passes the filter.
  Params step;
  std::string step_sql = "SELECT " OB_EVENT_COLS ", e.prev_target_row, CASE WHEN 1";
  step.Add(std::int64_t{0});  // ?1: the row, bound at each step
  step.Add(tenant.value);     // ?2
  step.Add(target);           // ?3
  step_sql += EventTerms(filter, step);
  step_sql +=
      " THEN 1 ELSE 0 END FROM events e WHERE e.id = ?1 AND e.tenant_id = ?2 AND "
      "e.target_id = ?3";
  constexpr int kLinkCol = 9;  // after OB_EVENT_COLS' nine columns
  constexpr int kPassesCol = 10;

  std::vector<StoredEvent> rows;
  std::size_t u = 0;  // next of `unlinked`
  const auto wanted = static_cast<std::size_t>(limit) + 1;
  while (rows.size() < wanted && next > 0) {
    const std::int64_t row = next;
    next = 0;
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(step_sql));
    step.BindTo(s);
    s.Bind(1, row);
    OB_ASSIGN_OR_RETURN(bool found, s.Step());
    // A missing row or an unlinked one ends the chain (the unlinked one is in `unlinked`).
    if (!found || s.IsNull(kLinkCol)) break;
    OB_ASSIGN_OR_RETURN(StoredEvent e, ReadEvent(s));
    // Links go to older ids (row ids need not be: InsertEvent splices an event stored late into
    // its place); anything else, a row id reused after a deletion, ends the chain.
    if (!newer_id.empty() && e.record.event_id >= newer_id) break;
    newer_id = e.record.event_id;
    next = s.Int(kLinkCol);
    if (skip && e.record.event_id >= *page.after) continue;
    skip = false;
    if (s.Int(kPassesCol) == 0) continue;
    while (rows.size() < wanted && u < unlinked.size() &&
           unlinked[u].record.event_id > e.record.event_id) {
      rows.push_back(std::move(unlinked[u++]));
    }
    if (rows.size() < wanted) rows.push_back(std::move(e));
  }
  while (rows.size() < wanted && u < unlinked.size()) rows.push_back(std::move(unlinked[u++]));
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
