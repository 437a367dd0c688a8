// SqlTxn: delivery rows, claims and leases, outcomes, the delivery log, redelivery.
#include <array>
#include <set>

#include "store/sql/payload_codec.h"
#include "store/sql/txn_util.h"

namespace outbound::store::sql {

using namespace util;  // NOLINT(google-build-using-namespace): the shared helpers of store/sql

// ---------------------------------------------------------------------------------------------
// Deliveries

namespace {

// A statement's text cached per dialect and shape (see ClaimSql, InsertDeliveriesSql).
std::string JoinDialect(Dialect d) { return d == Dialect::kSqlite ? "CROSS JOIN" : "JOIN"; }

// Multi-row INSERT of `n` deliveries: a publish costs one statement whatever its fan-out.
// `extended`: the rows also carry their event's order (target_id, occurred_at, event_row; NULL
// for the rows of unordered subscriptions), for the claim's check of ordered subscriptions
// (OB_NOT_BLOCKED), on SQLite their `held` (1 for a paused subscription's row, which is
// inserted held rather than updated after: SQLite migration 15), and on both their status
// (`cancelled` for a disabled subscription's row, NewDelivery::cancelled); without it the order
// and `held` take their defaults and the status is written 'pending', the statement as it was
// before them, so a fan-out to unordered, unpaused, enabled subscriptions binds nothing more.
std::size_t DeliveryColumns(Dialect d, bool extended) {
  if (!extended) return 7;
  return d == Dialect::kSqlite ? 12 : 11;
}

// The extended statement's parameter (within a row) for the row's status: its last column,
// after the order's (and on SQLite `held`). The plain statement writes 'pending'.
std::size_t StatusParam(Dialect d) { return DeliveryColumns(d, true); }

// SQLite's statements of more than one row name each row's id (the writer is the file's only
// one, so the ids are MAX(id) + 1 on: NextRowId, txn_util.h) and return nothing: SQLite runs
// RETURNING through an ephemeral table, a b-tree insert and a read per row (below), and the rows
// came back to be matched by (subscription, event id) in a map. That id, when named, is each
// row's last parameter. PostgreSQL's return their ids.
bool NamesRowIds(Dialect d, std::size_t rows) { return d == Dialect::kSqlite && rows > 1; }

std::vector<std::string> InsertDeliveriesTexts(Dialect d) {
  std::vector<std::string> t(2 * (kDeliveryInsertChunk + 1));
  for (int extended = 0; extended < 2; ++extended) {
    const std::size_t columns = DeliveryColumns(d, extended != 0);
    for (std::size_t rows = 1; rows <= kDeliveryInsertChunk; ++rows) {
      const bool ids = NamesRowIds(d, rows);
      const std::size_t per_row = columns + (ids ? 1 : 0);
      std::string sql =
          "INSERT INTO deliveries(tenant_id, event_id, subscription_id, status, attempts, "
          "cycle_attempts, next_attempt_at, lease_owner, lease_until, payload_id, data_json, "
          "created_at";
      if (extended != 0) {
        sql += d == Dialect::kSqlite ? ", target_id, occurred_at, event_row, held"
                                     : ", target_id, occurred_at, event_row";
      }
      // The status goes in its own column's place, its parameter numbered last of the row's
      // columns (StatusParam).
      const std::size_t status_k = extended != 0 ? StatusParam(d) : 0;
      sql += ids ? ", id) VALUES " : ") VALUES ";
      const std::string created = "?" + std::to_string(rows * per_row + 1);
      for (std::size_t r = 0; r < rows; ++r) {
        const std::size_t b = r * per_row;
        auto p = [&](std::size_t k) { return "?" + std::to_string(b + k); };
        if (r > 0) sql += ", ";
        sql += "(" + p(1) + ", " + p(2) + ", " + p(3) + ", " +
               (status_k != 0 ? p(status_k) : std::string("'pending'")) + ", 0, 0, " + p(4) + ", " +
               p(5) + ", " + p(6) + ", " + p(7) + ", '', " + created;
        for (std::size_t k = 8; k <= per_row; ++k) {
          if (k != status_k) sql += ", " + p(k);
        }
        sql += ")";
      }
      if (rows == 1) {
        // Slot 0 of each half: the one-row statement without RETURNING (OneRowInsert).
        t[extended * (kDeliveryInsertChunk + 1)] = sql;
      }
      if (!ids) sql += " RETURNING id, subscription_id, event_id";
      t[extended * (kDeliveryInsertChunk + 1) + rows] = std::move(sql);
    }
  }
  return t;
}

const std::string& InsertDeliveriesSql(Dialect d, std::size_t n, bool extended) {
  // Built on first use, per dialect: a process uses one.
  const std::size_t slot = (extended ? kDeliveryInsertChunk + 1 : 0) + n;
  if (d == Dialect::kSqlite) {
    static const std::vector<std::string> sqlite = InsertDeliveriesTexts(Dialect::kSqlite);
    return sqlite[slot];
  }
  static const std::vector<std::string> postgres = InsertDeliveriesTexts(Dialect::kPostgres);
  return postgres[slot];
}

// SQLite runs an INSERT ... RETURNING by collecting its rows in an ephemeral table, which it
// opens and closes (a b-tree and a pager each time) for every statement: about 3 % of the
// writer thread at K=1, 5 % with the steps that fill and read it, where every publish inserted
// one payload and one delivery that way (issue 8, profile of 6 Dec). A one-row insert on SQLite
// goes without RETURNING and takes its id from sqlite3_last_insert_rowid instead; multi-row inserts
// name their rows' ids (NamesRowIds, NextRowId; batch publishing: 0.28-0.35 -> 0.35-0.45 of the
// bare insert in three pairs, 6 Dec). PostgreSQL always returns its ids (LastInsertRowid is
// nullopt there). This needs `id` to be the table's row id (INTEGER PRIMARY KEY of a rowid table
// without AUTOINCREMENT, as in SQLite migrations 1 and 8): a table rebuilt WITHOUT ROWID, or with
// another key, must go back to RETURNING.
bool OneRowInsert(const Conn& c, std::size_t n) {
  return n == 1 && c.dialect() == Dialect::kSqlite;
}

// Multi-row INSERT of `n` payloads (issue 8, batch publishing): one statement per 100 renderings
// instead of one each. When they came back through RETURNING, each SQLite statement ended with a
// statement savepoint, whose release walks the in-memory statement journal of the writer's task
// savepoint from its start: one statement per event made a batch of 500 events quadratic (28 % of
// the CPU of `e2e_bench --batch` went there). They name their ids now (NamesRowIds), and a
// statement per 100 still costs less than one each.
inline constexpr std::size_t kPayloadInsertChunk = 100;

// `packed`: the values are packed (SQLite, PackPayload), stored as BLOBs. Slot 0: one row
// without an id (OneRowInsert); n > 1: `n` rows, each naming its id (NamesRowIds).
const std::string& InsertPayloadsSql(std::size_t n, bool packed) {
  static const std::vector<std::string> texts = [] {
    std::vector<std::string> t(2 * (kPayloadInsertChunk + 1));
    for (int blob = 0; blob < 2; ++blob) {
      auto data = [&](const std::string& p) { return blob != 0 ? "CAST(" + p + " AS BLOB)" : p; };
      t[blob * (kPayloadInsertChunk + 1)] =
          "INSERT INTO payloads(event_id, data_json) VALUES (?1, " + data("?2") + ")";
      for (std::size_t rows = 2; rows <= kPayloadInsertChunk; ++rows) {
        std::string sql = "INSERT INTO payloads(id, event_id, data_json) VALUES ";
        for (std::size_t r = 0; r < rows; ++r) {
          if (r > 0) sql += ", ";
          sql += "(?" + std::to_string(r * 3 + 1) + ", ?" + std::to_string(r * 3 + 2) + ", " +
                 data("?" + std::to_string(r * 3 + 3)) + ")";
        }
        t[blob * (kPayloadInsertChunk + 1) + rows] = std::move(sql);
      }
    }
    return t;
  }();
  return texts[(packed ? kPayloadInsertChunk + 1 : 0) + n];
}

// PostgreSQL: payload ids drawn from the table's sequence ahead of need, kPayloadIdBlock per
// round trip (SqlTxn::payload_ids_, per connection: a sequence's values are never handed out
// twice, and one left unused is a gap). Knowing its ids, the insert returns nothing and goes
// with the deliveries' insert that refers to them (Stmt::RunLater): a round trip fewer per
// publish.
constexpr std::size_t kPayloadIdBlock = 256;

Result<std::vector<std::int64_t>> InsertPayloadsWithIds(
    Conn& c, const std::vector<std::pair<std::string_view, std::string_view>>& payloads,
    std::vector<std::int64_t>& pool) {
  if (pool.size() < payloads.size()) {
    OB_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT nextval(pg_get_serial_sequence('payloads', "
                                          "'id')) FROM generate_series(1, ?1)"));
    s.Bind(1, static_cast<std::int64_t>(std::max(kPayloadIdBlock, payloads.size())));
    for (;;) {
      OB_ASSIGN_OR_RETURN(const bool more, s.Step());
      if (!more) break;
      pool.push_back(s.Int(0));
    }
    if (pool.size() < payloads.size()) {
      return Fail(core::Error::Internal("the payload id sequence gave too few ids"));
    }
  }
  std::vector<std::int64_t> ids(pool.end() - static_cast<std::ptrdiff_t>(payloads.size()),
                                pool.end());
  pool.resize(pool.size() - payloads.size());
  for (std::size_t start = 0; start < payloads.size(); start += kPayloadInsertChunk) {
    const std::size_t n = std::min(kPayloadInsertChunk, payloads.size() - start);
    std::string sql = "INSERT INTO payloads(id, event_id, data_json) VALUES ";
    for (std::size_t r = 0; r < n; ++r) {
      if (r > 0) sql += ", ";
      sql += "(?" + std::to_string(r * 3 + 1) + ", ?" + std::to_string(r * 3 + 2) + ", ?" +
             std::to_string(r * 3 + 3) + ")";
    }
    OB_ASSIGN_OR_RETURN(Stmt s, c.Prepare(sql));
    for (std::size_t r = 0; r < n; ++r) {
      const int b = static_cast<int>(r * 3);
      s.Bind(b + 1, ids[start + r])
          .Bind(b + 2, payloads[start + r].first)
          .Bind(b + 3, payloads[start + r].second);
    }
    OB_RETURN_IF_ERROR(s.RunLater());
  }
  return ids;
}

// Inserts the payloads (event id, rendered data) and returns their ids in the same order.
// PostgreSQL takes its ids from `pool` (InsertPayloadsWithIds); SQLite inserts one alone without
// an id (OneRowInsert) and more with theirs named (NamesRowIds).
// `ahead`: renderings being packed ahead (PrepareDeliveries), used when they are these
// payloads' texts, in order; nullptr or other texts: packed here.
Result<std::vector<std::int64_t>> InsertPayloads(
    Conn& c, const std::vector<std::pair<std::string_view, std::string_view>>& payloads,
    std::vector<std::int64_t>& pool, PackAhead* ahead = nullptr) {
  if (c.dialect() == Dialect::kPostgres) return InsertPayloadsWithIds(c, payloads, pool);
  std::vector<std::int64_t> ids(payloads.size(), 0);
  // SQLite keeps a rendering compressed when that is shorter (payload_codec.h), as a BLOB
  // in the TEXT column; PostgreSQL keeps the text (its column is text: no bytes that are not
  // UTF-8). Both read back the same text (UnpackRendering). Packed and plain renderings go in
  // statements of their own.
  std::vector<std::optional<std::string>> packed;
  if (ahead != nullptr && ahead->texts().size() == payloads.size() &&
      std::equal(payloads.begin(), payloads.end(), ahead->texts().begin(),
                 [](const auto& p, const std::string& t) { return p.second == t; })) {
    packed = ahead->Take();
  } else {
    packed.resize(payloads.size());
    for (std::size_t i = 0; i < payloads.size(); ++i) packed[i] = PackPayload(payloads[i].second);
  }
  auto value = [&](std::size_t i) {
    return packed[i] ? std::string_view(*packed[i]) : payloads[i].second;
  };
  if (OneRowInsert(c, payloads.size())) {
    OB_ASSIGN_OR_RETURN(Stmt s, c.Prepare(InsertPayloadsSql(0, packed[0].has_value())));
    s.Bind(1, payloads[0].first).Bind(2, value(0));
    OB_RETURN_IF_ERROR(s.Run());
    const std::optional<std::int64_t> id = c.LastInsertRowid();
    if (!id || c.Changes() != 1)
      return Fail(core::Error::Internal("a payload insert returned no id"));
    ids[0] = *id;
    return ids;
  }
  OB_ASSIGN_OR_RETURN(std::int64_t next_id, NextRowId(c, "payloads", payloads.size()));
  std::vector<std::size_t> members;
  for (const bool blob : {false, true}) {
    members.clear();
    for (std::size_t i = 0; i < payloads.size(); ++i) {
      if (packed[i].has_value() == blob) members.push_back(i);
    }
    for (std::size_t start = 0; start < members.size(); start += kPayloadInsertChunk) {
      const std::size_t n = std::min(kPayloadInsertChunk, members.size() - start);
      // A group of one goes in the one-row statement, whose id SQLite chooses: MAX(id) + 1,
      // the next one anyway.
      if (n == 1) {
        const std::size_t i = members[start];
        OB_ASSIGN_OR_RETURN(Stmt s, c.Prepare(InsertPayloadsSql(0, blob)));
        s.Bind(1, payloads[i].first).Bind(2, value(i));
        OB_RETURN_IF_ERROR(s.Run());
        const std::optional<std::int64_t> id = c.LastInsertRowid();
        if (!id || c.Changes() != 1) {
          return Fail(core::Error::Internal("a payload insert returned no id"));
        }
        ids[i] = *id;
        next_id = std::max(next_id, *id + 1);
        continue;
      }
      OB_ASSIGN_OR_RETURN(Stmt s, c.Prepare(InsertPayloadsSql(n, blob)));
      for (std::size_t r = 0; r < n; ++r) {
        const std::size_t i = members[start + r];
        const int b = static_cast<int>(r * 3);
        ids[i] = next_id++;
        s.Bind(b + 1, ids[i]).Bind(b + 2, payloads[i].first).Bind(b + 3, value(i));
      }
      OB_RETURN_IF_ERROR(s.Run());
      if (c.Changes() != static_cast<std::int64_t>(n)) {
        return Fail(core::Error::Internal("a payload insert stored fewer rows than it had"));
      }
    }
  }
  return ids;
}

// A payload: its event id and rendered text.
using PayloadKey = std::pair<std::string_view, std::string_view>;

// One payload per event and distinct rendering (subscriptions whose options render the same
// text share it), in the order of the rows, and each row's index among them. Compared by text,
// so it holds whatever made the caller's renderings equal. Only the rows of one event can share,
// and fan-out gives an event's rows one after the other: a row looks for its text among the
// payloads of its run of rows of the same event alone (a few renderings), not in a map of every
// row's event id and text. (Rows of one event that were not adjacent would only miss sharing.)
void DistinctPayloads(const std::vector<NewDelivery>& rows, std::vector<PayloadKey>& payloads,
                      std::vector<std::size_t>& payload_index) {
  payload_index.resize(rows.size());
  std::size_t run_begin = 0;  // the first payload of the current row's run
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i == 0 || rows[i].event_id != rows[i - 1].event_id) run_begin = payloads.size();
    std::size_t k = run_begin;
    while (k < payloads.size() && payloads[k].second != rows[i].data_json) ++k;
    if (k == payloads.size()) payloads.emplace_back(rows[i].event_id, rows[i].data_json);
    payload_index[i] = k;
  }
}

// Fewer distinct renderings than this are packed by InsertDeliveries itself: a single publish
// has one or a few, and a group of single publishes (one per connection waiting) a few dozen,
// where the helper thread would take a core from the dispatcher and the API thread for little
// to overlap (at K=10 the rates were lower in two of three pairs with a bound of 32 rows). A batch
// of POST /v1/events/batch has up to 500 events.
constexpr std::size_t kPackAheadPayloads = 128;

}  // namespace

void SqlTxn::PrepareDeliveries(const std::vector<NewDelivery>& rows) {
  pack_ahead_.reset();
  if (c_.dialect() != Dialect::kSqlite || rows.size() < kPackAheadPayloads) return;
  std::vector<PayloadKey> payloads;
  std::vector<std::size_t> payload_index;
  DistinctPayloads(rows, payloads, payload_index);
  if (payloads.size() < kPackAheadPayloads) return;
  std::vector<std::string> texts;
  texts.reserve(payloads.size());
  for (const PayloadKey& p : payloads) texts.emplace_back(p.second);
  pack_ahead_ = std::make_unique<PackAhead>(std::move(texts));
}

Result<std::vector<DeliveryJob>> SqlTxn::InsertDeliveries(const std::vector<NewDelivery>& rows,
                                                          std::string_view owner, UnixMs now,
                                                          UnixMs lease_until) {
  std::vector<DeliveryJob> jobs;
  if (rows.empty()) return jobs;
  // Which rows this process may lease: none without an owner (or when its lease was taken
  // back); on a shared database only those of subscriptions it owns.
  bool leasing = false;
  if (!owner.empty()) {
    OB_ASSIGN_OR_RETURN(leasing, OwnerActive(owner, lease_until));
  }
  std::vector<std::int64_t> owned;
  if (leasing && shared_) {
    std::vector<std::int64_t> subs;
    subs.reserve(rows.size());
    for (const NewDelivery& row : rows) {
      if (!row.held && !row.cancelled) subs.push_back(row.subscription.value);
    }
    OB_ASSIGN_OR_RETURN(owned, OwnSubscriptions(owner, std::move(subs)));
  }
  // Rows of a paused subscription (held) are left unleased: ClaimDue takes them once unpaused.
  // A disabled subscription's rows go in cancelled, never leased.
  auto leased_to_me = [&](const NewDelivery& row) {
    return leasing && !row.held && !row.cancelled &&
           (!shared_ || std::binary_search(owned.begin(), owned.end(), row.subscription.value));
  };

  struct Facts {
    std::string event_type;
    UnixMs occurred_at = 0;
    UnixMs accepted_at = 0;
    std::optional<std::int64_t> target_id;
    std::optional<std::int64_t> row = std::nullopt;  // events.id: only for an ordered row
  };
  // Fan-out rows of one call usually share their event: look it up once per event. The rows of
  // an event come one after the other, so a row whose event is its predecessor's takes its facts
  // without a lookup; `fact_of[i]` is row i's index in `facts` (an index, not a pointer: `facts`
  // grows). Keys and views are the rows' own event ids, which outlive this call.
  std::vector<Facts> facts;
  std::vector<std::size_t> fact_of(rows.size());
  std::unordered_map<std::string_view, std::size_t> fact_by_event;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const NewDelivery& row = rows[i];
    if (i > 0 && row.event_id == rows[i - 1].event_id) {
      fact_of[i] = fact_of[i - 1];
      continue;
    }
    if (auto it = fact_by_event.find(row.event_id); it != fact_by_event.end()) {
      fact_of[i] = it->second;
      continue;
    }
    fact_of[i] = facts.size();
    fact_by_event.emplace(row.event_id, facts.size());
    if (auto it = last_events_.find(row.event_id);
        it != last_events_.end() && it->second.tenant == row.tenant.value) {
      const EventFacts& last = it->second;
      facts.push_back(Facts{last.event_type, last.occurred_at, last.accepted_at, last.target_id});
      continue;
    }
    OB_ASSIGN_OR_RETURN(Stmt e, c_.Prepare("SELECT event_type, occurred_at, target_id, "
                                           "accepted_at, id FROM events WHERE event_id = ?1 AND "
                                           "tenant_id = ?2"));
    e.Bind(1, row.event_id).Bind(2, row.tenant.value);
    OB_ASSIGN_OR_RETURN(bool found, e.Step());
    if (!found) return Fail(core::Error::Internal("delivery for unknown event " + row.event_id));
    facts.push_back(Facts{e.Text(0), e.Int(1), e.Int(3), e.OptInt(2), e.Int(4)});
  }

  // Ordered subscriptions (CONTRACT §6): a row to an event with a target carries the event's
  // order, which the claim's check probes in deliveries_ordered (OB_NOT_BLOCKED). Rows of
  // unordered subscriptions, and rows to events without a target, leave it NULL: no entry in
  // that index, no work here. The subscription's flag comes with the row (fan-out's list) or is
  // read; the event's row id is read once per event (InsertEvent(s) do not return it: that would
  // cost every event).
  std::vector<char> carries_order(rows.size(), 0);
  bool any_order = false;
  {
    std::map<std::int64_t, bool> ordered_sub;  // flags read here
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const NewDelivery& row = rows[i];
      Facts& f = facts[fact_of[i]];
      if (!f.target_id) continue;
      bool ordered = false;
      if (row.ordered) {
        ordered = *row.ordered;
      } else if (auto it = ordered_sub.find(row.subscription.value); it != ordered_sub.end()) {
        ordered = it->second;
      } else {
        OB_ASSIGN_OR_RETURN(Stmt q, c_.Prepare("SELECT ordered FROM subscriptions WHERE id = ?1"));
        q.Bind(1, row.subscription.value);
        OB_ASSIGN_OR_RETURN(bool found, q.Step());
        ordered = found && q.Int(0) != 0;
        ordered_sub.emplace(row.subscription.value, ordered);
      }
      if (!ordered) continue;
      if (!f.row) {
        OB_ASSIGN_OR_RETURN(Stmt q, c_.Prepare("SELECT id FROM events WHERE event_id = ?1"));
        q.Bind(1, row.event_id);
        OB_ASSIGN_OR_RETURN(bool found, q.Step());
        if (!found)
          return Fail(core::Error::Internal("delivery for unknown event " + row.event_id));
        f.row = q.Int(0);
      }
      carries_order[i] = 1;
      any_order = true;
    }
  }

  // One payload row per event and distinct rendering (DistinctPayloads); the deliveries refer
  // to it.
  std::vector<std::int64_t> payload_of(rows.size());
  {
    std::vector<PayloadKey> payloads;
    std::vector<std::size_t> payload_index;
    DistinctPayloads(rows, payloads, payload_index);
    const std::unique_ptr<PackAhead> ahead = std::move(pack_ahead_);
    OB_ASSIGN_OR_RETURN(const std::vector<std::int64_t> ids,
                        InsertPayloads(c_, payloads, payload_ids_, ahead.get()));
    for (std::size_t i = 0; i < rows.size(); ++i) payload_of[i] = ids[payload_index[i]];
  }

  // (subscription, event) → the row's index, to match RETURNING rows to their inputs: PostgreSQL's
  // (SQLite's statements go without RETURNING: one row alone, or many with their ids named).
  std::map<std::pair<std::int64_t, std::string_view>, std::size_t> index;
  if (!OneRowInsert(c_, rows.size()) && !NamesRowIds(c_.dialect(), rows.size())) {
    for (std::size_t i = 0; i < rows.size(); ++i) {
      index.emplace(std::make_pair(rows[i].subscription.value, std::string_view(rows[i].event_id)),
                    i);
    }
  }
  jobs.reserve(rows.size());
  // SQLite: rows of paused subscriptions go in held (migration 15), in the extended statement.
  const bool holds = c_.dialect() == Dialect::kSqlite;
  // The job of an inserted row (row id `id`), when this process leased it.
  auto add_job = [&](std::int64_t id, std::size_t i) {
    const NewDelivery& row = rows[i];
    if (row.cancelled) return;  // not due: recover or a redeliver reopens it
    if (!leased_to_me(row)) {
      tally_.due_rows_added = true;
      return;
    }
    const Facts& f = facts[fact_of[i]];
    DeliveryJob job;
    job.id = DeliveryRowId(id);
    job.tenant = row.tenant;
    job.subscription = row.subscription;
    job.event_id = row.event_id;
    job.event_type = f.event_type;
    job.occurred_at = f.occurred_at;
    job.target_id = f.target_id;
    job.data_json = row.data_json;
    job.next_attempt_at = row.next_attempt_at;
    jobs.push_back(std::move(job));
  };
  for (std::size_t start = 0; start < rows.size(); start += kDeliveryInsertChunk) {
    const std::size_t n = std::min(kDeliveryInsertChunk, rows.size() - start);
    const auto chunk_begin = rows.begin() + static_cast<std::ptrdiff_t>(start);
    const auto chunk_end = chunk_begin + static_cast<std::ptrdiff_t>(n);
    const bool extended =
        (any_order && std::any_of(carries_order.begin() + static_cast<std::ptrdiff_t>(start),
                                  carries_order.begin() + static_cast<std::ptrdiff_t>(start + n),
                                  [](char c) { return c != 0; })) ||
        std::any_of(chunk_begin, chunk_end,
                    [holds](const NewDelivery& r) { return (holds && r.held) || r.cancelled; });
    const bool one_row = OneRowInsert(c_, n);
    const bool named_ids = NamesRowIds(c_.dialect(), n);
    const std::size_t columns = DeliveryColumns(c_.dialect(), extended);
    const std::size_t per_row = columns + (named_ids ? 1 : 0);
    std::int64_t first_id = 0;
    if (named_ids) {
      OB_ASSIGN_OR_RETURN(first_id, NextRowId(c_, "deliveries", n));
    }
    OB_ASSIGN_OR_RETURN(Stmt s,
                        c_.Prepare(InsertDeliveriesSql(c_.dialect(), one_row ? 0 : n, extended)));
    for (std::size_t r = 0; r < n; ++r) {
      const NewDelivery& row = rows[start + r];
      const int b = static_cast<int>(r * per_row);
      s.Bind(b + 1, row.tenant.value).Bind(b + 2, row.event_id).Bind(b + 3, row.subscription.value);
      if (row.cancelled) {
        s.BindNull(b + 4, NullType::kInt);  // as CancelOpenDeliveries leaves a row
      } else {
        s.Bind(b + 4, row.next_attempt_at);
      }
      if (leased_to_me(row)) {
        s.Bind(b + 5, owner).Bind(b + 6, lease_until);
      } else {
        s.BindNull(b + 5, NullType::kText).BindNull(b + 6, NullType::kInt);
      }
      s.Bind(b + 7, payload_of[start + r]);
      if (named_ids) s.Bind(static_cast<int>(b + per_row), first_id + static_cast<std::int64_t>(r));
      if (!extended) continue;
      if (carries_order[start + r] != 0) {
        const Facts& f = facts[fact_of[start + r]];
        s.Bind(b + 8, *f.target_id).Bind(b + 9, f.occurred_at).Bind(b + 10, *f.row);
      } else {
        s.BindNull(b + 8, NullType::kInt)
            .BindNull(b + 9, NullType::kInt)
            .BindNull(b + 10, NullType::kInt);
      }
      if (holds) s.Bind(b + 11, std::int64_t{row.held && !row.cancelled ? 1 : 0});
      s.Bind(b + static_cast<int>(StatusParam(c_.dialect())),
             std::string_view(row.cancelled ? "cancelled" : "pending"));
    }
    s.Bind(static_cast<int>(n * per_row + 1), now);
    if (one_row) {
      OB_RETURN_IF_ERROR(s.Run());
      const std::optional<std::int64_t> id = c_.LastInsertRowid();
      if (!id || c_.Changes() != 1) {
        return Fail(core::Error::Internal("a delivery insert returned no id"));
      }
      add_job(*id, start);
      continue;
    }
    if (named_ids) {
      OB_RETURN_IF_ERROR(s.Run());
      if (c_.Changes() != static_cast<std::int64_t>(n)) {
        return Fail(core::Error::Internal("a delivery insert stored fewer rows than it had"));
      }
      for (std::size_t r = 0; r < n; ++r) {
        add_job(first_id + static_cast<std::int64_t>(r), start + r);
      }
      continue;
    }
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool more, s.Step());
      if (!more) break;
      const std::int64_t sub = s.Int(1);
      const std::string event_id = s.Text(2);
      auto it = index.find(std::make_pair(sub, std::string_view(event_id)));
      if (it == index.end()) return Fail(core::Error::Internal("an inserted delivery is unknown"));
      add_job(s.Int(0), it->second);
    }
  }
  // Rows inserted cancelled are not counted in outbound_deliveries_total{result="cancelled"}:
  // that counts open deliveries a disable or delete cancelled, and alerts on it would fire at
  // every publish while any subscription is disabled.
  std::sort(jobs.begin(), jobs.end(),
            [](const DeliveryJob& a, const DeliveryJob& b) { return a.id < b.id; });
  return jobs;
}

Result<std::int64_t> SqlTxn::InsertPayload(std::string_view event_id, std::string_view data_json) {
  OB_ASSIGN_OR_RETURN(const std::vector<std::int64_t> ids,
                      InsertPayloads(c_, {std::make_pair(event_id, data_json)}, payload_ids_));
  return ids.front();
}

// Ordered subscriptions (CONTRACT §6): a delivery is claimable only when no earlier event about
// the same target (occurred_at, then acceptance order) still has an open delivery to the same
// subscription. Fan-out hands rows over leased; the dispatcher gives ordered ones back so that
// they pass through this check. The rows of an ordered subscription carry their event's order
// (target_id, occurred_at, event_row = events.id; InsertDeliveries, the backfill when a
// subscription becomes ordered, SQLite migration 11 / PostgreSQL 9), and the open ones are in
// deliveries_ordered (subscription_id, target_id, occurred_at, event_row): the check reads the
// first entry of the candidate's subscription and target, its head, and the candidate is
// claimable when it is that head (it is open itself, so the head is at most the candidate). One
// index descent, on both backends. Written as NOT EXISTS (an earlier open row), PostgreSQL's
// planner ran it as a sequential scan of deliveries per candidate when one subscription's rows
// filled the table (it expects the first match at once; it is found late when the rows came in
// another order than they occurred: PostgresStore.OrderedClaimReadsNoBacklogPerCandidate); the
// ORDER BY of the index's own order leaves it no cheaper plan than the index. A row without a
// target (or of a subscription that was not ordered when it was made and not since filled:
// UpdateSubscription) is never held back. Before these columns the check joined the candidate's
// event to every open delivery of the subscription and their events: a claim over an ordered
// backlog of n rows on few targets read O(n²) rows (343 s on PostgreSQL's seeded database;
// docs/PERFORMANCE.md, "ordered claims").
#define OB_NOT_BLOCKED                                                                          \
  "(d.target_id IS NULL OR (d.occurred_at, d.event_row) <= (SELECT d2.occurred_at, "            \
  "d2.event_row FROM deliveries d2 WHERE d2.subscription_id = d.subscription_id AND "           \
  "d2.target_id = d.target_id AND d2.status IN ('pending', 'failed') ORDER BY d2.occurred_at, " \
  "d2.event_row LIMIT 1))"

// A claimed row's rendered data (in RETURNING, which names only the updated table): its shared
// payload, or the data_json of a row written before SQLite migration 8 / PostgreSQL 6.
#define OB_DELIVERY_DATA                                                               \
  "COALESCE((SELECT p.data_json FROM payloads p WHERE p.id = deliveries.payload_id), " \
  "deliveries.data_json)"

// deliveries_held's predicate, which a statement must name to use it: SQLite takes a partial
// index only for a WHERE that contains its terms, and does not infer `held <> 0` from
// `held = 1`.
#define OB_HELD_INDEX "held <> 0"

// SQLite: a reopened row's `held` (Redeliver, recover): 3 while its subscription is disabled
// (migration 16), else `otherwise`.
#define OB_HELD_IF_DISABLED(otherwise)                                                       \
  "CASE WHEN (SELECT enabled FROM subscriptions WHERE id = deliveries.subscription_id) = 0 " \
  "THEN 3 ELSE " otherwise " END"

// When a subscription `s` no longer holds its rows of each `held` kind (1: paused, 2: ordered,
// 3: disabled): SQLite's whole release pass and the one of changed subscriptions ask the same
// (ReleaseHeldRows); PostgreSQL's claim asks the second (ReleaseOrderGone).
#define OB_PAUSE_GONE "s.paused = 0 OR s.enabled = 0 OR s.deleted = 1"
#define OB_ORDER_GONE "s.ordered = 0 OR s.enabled = 0 OR s.deleted = 1"
#define OB_DISABLE_GONE "s.enabled = 1 OR s.deleted = 1"

// `held`, the subscriptions with rows held for a pause (`held` = 1), held back by ordering (2)
// or reopened while disabled (3) (SQLite's migrations 15 and 16; PostgreSQL's 11 has the second
// alone), one index descent each in deliveries_held (the row after the last has a NULL id).
#define OB_HELD_SUBSCRIPTIONS(kind)                                                           \
  "held(id) AS (SELECT MIN(subscription_id) FROM deliveries WHERE " OB_HELD_INDEX             \
  " AND held = " kind                                                                         \
  " UNION ALL SELECT (SELECT MIN(d.subscription_id) FROM deliveries d WHERE d." OB_HELD_INDEX \
  " AND d.held = " kind " AND d.subscription_id > h.id) FROM held h WHERE h.id IS NOT NULL)"

namespace {

// Held rows a claim holds, and lets go of, at most (PostgreSQL: HoldBlockedRows and
// ReleaseOrderGone as well): that many row updates take the
// writer about 0.1 s, and a million rows are held in twenty claims (the first ones also walk
// the rows not yet held, a quarter second and more at a million: 20,000 a claim took 7 s of the
// writer in all to hold a million, 50,000 took 4 s, and another tenant's publishes waited up to
// 0.56 s meanwhile; docs/PERFORMANCE.md) and let go in twenty, which follow each other while
// they come back full (ClaimPacer).
constexpr int kHeldRowsPerClaim = 50000;
// Rows held back by ordering that a claim looks at again (SweepHeldBack).
constexpr int kHeldBackSweptPerClaim = 64;
// PostgreSQL: the size past which a deliveries table without statistics is analyzed by the
// writer (ClaimDueAsStored; about 20,000 rows). Smaller, the planner's guesses cost little.
constexpr std::int64_t kUnanalyzedBytes = std::int64_t{8} << 20;

// The claim on SQLite: deliveries_due holds exactly the claimable rows; CROSS JOIN keeps that
// index the outer loop. One process (or processes of one host, `shared`) takes the oldest due
// rows first: a fan-out hands a fresh delivery straight to its dispatcher, so a claim there only
// picks up retries, recoveries and rows given back. A paused subscription's rows that the walk
// meets are dropped at the join, and an ordered subscription's rows behind their target's head
// at the order's check; then they are held (HoldWaitingRows), which takes them out of the index:
// the next claims do not read them again.
std::string ClaimSql(bool shared) {
  std::string sql =
      "UPDATE deliveries SET lease_owner = ?1, lease_until = ?2 WHERE id IN (SELECT d.id FROM "
      "deliveries d " +
      JoinDialect(Dialect::kSqlite) + " subscriptions s ON s.id = d.subscription_id ";
  if (shared) sql += "LEFT JOIN subscription_owners so ON so.subscription_id = d.subscription_id ";
  sql +=
      "WHERE d.status IN ('pending', 'failed') AND d.lease_owner IS NULL AND d.held = 0 AND "
      "d.next_attempt_at <= ?3 AND s.enabled = 1 AND s.deleted = 0 AND s.paused = 0 ";
  if (shared) sql += "AND (so.owner IS NULL OR so.owner = ?1) ";
  sql += "AND (s.ordered = 0 OR " OB_NOT_BLOCKED ") ORDER BY d.next_attempt_at LIMIT ?4";
  sql += ") RETURNING id, tenant_id, subscription_id, event_id, " OB_DELIVERY_DATA
         ", attempts, cycle_attempts, next_attempt_at, test";
  return sql;
}

// A row the claim may take on PostgreSQL, as deliveries_due_subscription holds them (not held
// back by ordering: PostgreSQL's migration 11).
#define OB_CLAIMABLE                                                                \
  "d.status IN ('pending', 'failed') AND d.lease_owner IS NULL AND d.held = 0 AND " \
  "d.next_attempt_at <= ?3"

// The claim on PostgreSQL, fair per subscription (issue 8): with workers that only claim (`serve
// --role worker`), every delivery reaches a dispatcher through here, and the oldest-due-first
// claim gave a backlog of a million recovered rows every claim until it had drained, while
// another client's fresh rows, due later, waited (114 s in `e2e_bench --backlog --stores pg3`).
// Here each claim serves the subscriptions with due rows (`heads`: the ?4 whose oldest due row is
// oldest) and takes at most `cap` = ceil(?4 / their number) rows of each, its oldest due;
// ClaimDueAsStored claims again for the rest of ?4 when a subscription was cut at the cap. The
// subscriptions are found without reading the due rows: `waiting` steps through the distinct
// subscription ids of deliveries_due_subscription (one index descent per subscription with an
// open unleased row; PostgreSQL 15 has no skip scan), so subscriptions with nothing waiting
// cost nothing (a head probe of every subscription instead: 6-7 ms a claim with nothing due at
// 10,000 subscriptions, against 1.3-2.2 ms; docs/PERFORMANCE.md). Each step takes the first
// entry of the next subscription in that index, its oldest open row, whose next_attempt_at is
// the subscription's head (due if <= ?3), so the head takes no probe of its own: a probe
// ordered by next_attempt_at alone (`subscription_id = s.id`, a constant to the planner, drops
// out of the order) was planned as a walk of deliveries_due filtered by subscription, and the
// subscriptions of a recovered backlog lie far apart in it (28,865 rows read for each of nine
// subscriptions, 70-80 ms a claim of 500 at 100,000 waiting; docs/PERFORMANCE.md, session of
// 6 Dec 18:35). The walk for the rows to lease keeps that shape: its LIMIT is a subquery the
// planner takes for a tenth of the rows, and it took deliveries_due_subscription in every plan
// seen, while in the hold's bounded form (OB_PG_DUE_UNHELD) its estimates had the planner read
// each subscription's rows whole by another index and sort them (11,000 rows in
// ClaimOfARecoveredBacklogReadsNoOtherSubscriptionsRows). Each is looked up in subscriptions (and
// subscription_owners) by its key, in a LATERAL subquery whose LIMIT keeps the planner from joining
// it: as a join, the planner hash-joined a sequential scan of every subscription (a node of 2,001
// rows at 2,001 subscriptions, two of them with rows waiting;
// PostgresStore.RowsHeldBackByOrderCostAClaimNothing). SKIP LOCKED lets processes claim side by
// side; `shared`: only subscriptions unowned or the claimer's. The tenth column is the cap; the
// last three are the event's facts (type, occurrence, target), joined to the leased rows in the
// same statement (a statement of their own was a round trip more per claim, planned afresh each
// time with its ids as constants). The rows to lease are named by `id = ANY(ARRAY(...))`, an index
// condition on the primary key: with `id IN (SELECT ...)` the planner hash-joined them to a
// sequential scan of the whole table on a compact table of tens of thousands of rows
// (ClaimDueAsStored also plans this statement at each run; docs/PERFORMANCE.md). Healthy
// subscriptions first: a subscription whose endpoint is failing (failing_since set) gets its oldest
// due row in every claim, and the rest of its share (`cap`) only after the healthy subscriptions'
// due rows (each at most `cap_healthy`, the limit shared among them alone): with shares alone,
// failing endpoints whose fill outran the workers kept a healthy client's fresh rows waiting their
// turn among theirs (0.5-2 s in `e2e_bench --backlog --stores pg3`;
// PostgresStore.ClaimServesHealthySubscriptionsFirst). Within each tier the rows are taken in turn,
// each subscription's oldest due first.
std::string FairClaimSql(bool shared) {
  std::string sql =
      "WITH RECURSIVE waiting(id, at) AS ((SELECT subscription_id, next_attempt_at FROM "
      "deliveries WHERE status IN ('pending', 'failed') AND lease_owner IS NULL AND held = 0 "
      "ORDER BY subscription_id, next_attempt_at LIMIT 1) UNION ALL SELECT n.subscription_id, "
      "n.next_attempt_at FROM waiting w CROSS JOIN LATERAL (SELECT d.subscription_id, "
      "d.next_attempt_at FROM deliveries d WHERE d.subscription_id > w.id AND d.status IN "
      "('pending', 'failed') AND d.lease_owner IS NULL AND d.held = 0 ORDER BY "
      "d.subscription_id, d.next_attempt_at LIMIT 1) n), heads AS MATERIALIZED (SELECT s.id, "
      "s.ordered, w.at, s.failing_since IS NOT NULL AS failing FROM waiting w CROSS JOIN "
      "LATERAL (SELECT s.id, s.ordered, s.failing_since FROM subscriptions s WHERE s.id = w.id "
      "AND s.enabled = 1 AND s.deleted = 0 AND s.paused = 0 ";
  // Owned by no one or by the claimer (subscription_owners: a row per owned subscription).
  if (shared) {
    sql +=
        "AND NOT EXISTS (SELECT 1 FROM subscription_owners so WHERE so.subscription_id = s.id "
        "AND so.owner <> ?1) ";
  }
  sql += "LIMIT 1) s WHERE w.at <= ?3 ";
  sql +=
      "ORDER BY s.failing_since IS NOT NULL, w.at, s.id LIMIT ?4), fair AS MATERIALIZED (SELECT "
      "(?4 + COUNT(*) - 1) / GREATEST(COUNT(*), 1) AS cap, (?4 + COUNT(*) FILTER (WHERE NOT "
      "failing) - 1) / GREATEST(COUNT(*) FILTER (WHERE NOT failing), 1) AS cap_healthy FROM "
      "heads), claimed AS (UPDATE deliveries SET lease_owner = ?1, lease_until = ?2 WHERE id = "
      "ANY(ARRAY(SELECT c.id FROM heads h CROSS JOIN LATERAL (SELECT x.id, x.at, row_number() "
      "OVER (ORDER BY x.at, x.id) AS rank FROM (SELECT d.id, d.next_attempt_at AS at FROM "
      "deliveries d WHERE d.subscription_id = h.id AND " OB_CLAIMABLE
      " AND (h.ordered = 0 OR " OB_NOT_BLOCKED
      ") ORDER BY d.next_attempt_at LIMIT (SELECT CASE WHEN h.failing THEN cap ELSE cap_healthy "
      "END FROM fair) FOR UPDATE OF d SKIP LOCKED) x) c ORDER BY h.failing AND c.rank > 1, "
      "c.rank, c.at, c.id LIMIT ?4)) RETURNING id, tenant_id, subscription_id, "
      "event_id, " OB_DELIVERY_DATA
      " AS data_json, attempts, cycle_attempts, next_attempt_at, test, (SELECT cap FROM fair) "
      "AS cap) SELECT c.id, c.tenant_id, c.subscription_id, c.event_id, c.data_json, "
      "c.attempts, c.cycle_attempts, c.next_attempt_at, c.test, c.cap, e.event_type, "
      "e.occurred_at, e.target_id FROM claimed c LEFT JOIN events e ON e.event_id = c.event_id";
  return sql;
}

}  // namespace

Result<bool> SqlTxn::ExtendOwner(std::string_view owner, UnixMs lease_until) {
  // Not when the lease was taken back (reaped): the owner leases nothing until RenewLease has
  // told it so.
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("INSERT INTO lease_owners(owner, lease_until, reaped) "
                                         "VALUES (?1, ?2, 0) ON CONFLICT (owner) DO UPDATE SET "
                                         "lease_until = CASE WHEN lease_owners.lease_until > "
                                         "excluded.lease_until THEN lease_owners.lease_until "
                                         "ELSE excluded.lease_until END WHERE "
                                         "lease_owners.reaped = 0"));
  s.Bind(1, owner).Bind(2, lease_until);
  OB_RETURN_IF_ERROR(s.Run());
  const bool active = c_.Changes() > 0;
  LeaseFactsOf(owner).active = active;
  return active;
}

Result<bool> SqlTxn::OwnerActive(std::string_view owner, UnixMs lease_until) {
  // Read, not written and not locked, on the hot path: concurrent fan-outs must not queue on
  // their owner's row. A reaper may take the lease back between this read and the commit; the
  // rows leased meanwhile are given back when the owner's next renewal learns of it (RenewLease).
  // Read once per transaction: a take-back after it is that same race.
  if (const LeaseFacts& known = LeaseFactsOf(owner); known.active) return *known.active;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT reaped FROM lease_owners WHERE owner = ?1"));
    s.Bind(1, owner);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) {
      const bool active = s.Int(0) == 0;
      LeaseFactsOf(owner).active = active;
      return active;
    }
  }
  return ExtendOwner(owner, lease_until);
}

Status SqlTxn::ReapExpiredOwners(UnixMs now) {
  lease_facts_ = {};  // it may take back any owner's lease
  std::vector<std::string> expired;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT owner FROM lease_owners WHERE reaped = 0 AND "
                                           "lease_until < ?1"));
    s.Bind(1, now);
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      expired.push_back(s.Text(0));
    }
  }
  for (const std::string& owner : expired) {
    {
      // Checked again under the row's lock: a renewal may have come first.
      OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE lease_owners SET reaped = 1 WHERE owner = "
                                             "?1 AND reaped = 0 AND lease_until < ?2"));
      s.Bind(1, owner).Bind(2, now);
      OB_RETURN_IF_ERROR(s.Run());
      if (c_.Changes() == 0) continue;
    }
    OB_RETURN_IF_ERROR(ReleaseOwnerRows(owner));
  }
  // A fan-out of a taken-back owner that was under way at the take-back commits after it, with
  // rows and subscriptions still in that owner's name; if the owner then died, nobody would take
  // them back again. So the rows of owners taken back in the last ten minutes (transactions are
  // far shorter) are given back at every claim, until the owner renews (and so gives them back
  // itself) or the ten minutes are over.
  std::vector<std::string> recent;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT owner FROM lease_owners WHERE reaped = 1 AND "
                                           "lease_until < ?1 AND lease_until >= ?2"));
    s.Bind(1, now).Bind(2, now - kRecentTakeBackMs);
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      recent.push_back(s.Text(0));
    }
  }
  for (const std::string& owner : recent) OB_RETURN_IF_ERROR(ReleaseOwnerRows(owner));
  return {};
}

Status SqlTxn::ReleaseOwnerRows(std::string_view owner) {
  lease_facts_ = {};
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE deliveries SET lease_owner = NULL, lease_until "
                                           "= NULL WHERE lease_owner = ?1"));
    s.Bind(1, owner);
    OB_RETURN_IF_ERROR(s.Run());
  }
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("DELETE FROM subscription_owners WHERE owner = ?1"));
  s.Bind(1, owner);
  return s.Run();
}

Result<std::vector<std::int64_t>> SqlTxn::OwnSubscriptions(std::string_view owner,
                                                           std::vector<std::int64_t> subs) {
  std::sort(subs.begin(), subs.end());
  subs.erase(std::unique(subs.begin(), subs.end()), subs.end());
  // Asked once per subscription and transaction (the publishes of a batch ask about the same
  // few): what this transaction took or found stays so until it ends.
  LeaseFacts& known = LeaseFactsOf(owner);
  std::vector<std::int64_t> ask;
  for (std::int64_t sub : subs) {
    if (known.owns.count(sub) == 0) ask.push_back(sub);
  }
  const bool pg = c_.dialect() == Dialect::kPostgres;
  for (std::size_t start = 0; start < ask.size(); start += kDeliveryInsertChunk) {
    const std::size_t n = std::min(kDeliveryInsertChunk, ask.size() - start);
    std::string values;
    std::string in;
    for (std::size_t i = 0; i < n; ++i) {
      if (i > 0) {
        values += ", ";
        in += ", ";
      }
      values += "(?" + std::to_string(i + 2) + ", ?1)";
      in += "?" + std::to_string(i + 2);
    }
    const std::string insert = "INSERT INTO subscription_owners(subscription_id, owner) VALUES " +
                               values + " ON CONFLICT (subscription_id) DO NOTHING";
    const std::string owned_before =
        "SELECT subscription_id FROM subscription_owners WHERE owner = ?1 AND subscription_id IN "
        "(" +
        in + ")";
    auto bind = [&](Stmt& s) {
      s.Bind(1, owner);
      for (std::size_t i = 0; i < n; ++i) s.Bind(static_cast<int>(i + 2), ask[start + i]);
    };
    if (!pg) {
      OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(insert));
      bind(s);
      OB_RETURN_IF_ERROR(s.Run());
    }
    // PostgreSQL: one round trip, as a rule. The statement's own snapshot does not see the rows
    // its insert adds, so those come from RETURNING and the rest (owned before) from the table.
    std::string sql = owned_before;
    if (pg) {
      sql = "WITH taken AS (";
      sql += insert;
      sql += " RETURNING subscription_id) SELECT subscription_id FROM taken UNION ALL ";
      sql += owned_before;
    }
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
    bind(s);
    std::set<std::int64_t> owned_now;
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      owned_now.insert(s.Int(0));
    }
    if (pg && owned_now.size() < n) {
      // The statement's SELECT reads with the snapshot taken before its INSERT waited for a
      // concurrent insert of the same subscription: a row that this owner's other connection
      // committed meanwhile is not in it. Those not found are read again (a fresh snapshot);
      // usually they are another process's.
      OB_ASSIGN_OR_RETURN(Stmt again, c_.Prepare(owned_before));
      bind(again);
      for (;;) {
        OB_ASSIGN_OR_RETURN(bool row, again.Step());
        if (!row) break;
        owned_now.insert(again.Int(0));
      }
    }
    for (std::size_t i = 0; i < n; ++i) {
      known.owns[ask[start + i]] = owned_now.count(ask[start + i]) != 0;
    }
  }
  std::vector<std::int64_t> owned;
  for (std::int64_t sub : subs) {
    if (known.owns[sub]) owned.push_back(sub);
  }
  return owned;
}

// SQLite: a statement per job, each a step of the embedded engine (no round trip).
Status SqlTxn::FillEventFacts(std::vector<DeliveryJob>& jobs) {
  for (DeliveryJob& job : jobs) {
    OB_ASSIGN_OR_RETURN(Stmt e, c_.Prepare("SELECT event_type, occurred_at, target_id FROM events "
                                           "WHERE event_id = ?1"));
    e.Bind(1, job.event_id);
    OB_ASSIGN_OR_RETURN(bool found, e.Step());
    if (!found) return Fail(core::Error::Internal("delivery of unknown event " + job.event_id));
    job.event_type = e.Text(0);
    job.occurred_at = e.Int(1);
    job.target_id = e.OptInt(2);
  }
  return {};
}

Result<std::vector<DeliveryJob>> SqlTxn::ClaimDue(std::string_view owner, UnixMs now,
                                                  UnixMs lease_until, int limit) {
  OB_ASSIGN_OR_RETURN(std::vector<DeliveryJob> jobs,
                      ClaimDueAsStored(owner, now, lease_until, limit));
  for (DeliveryJob& job : jobs) OB_RETURN_IF_ERROR(UnpackRendering(job.data_json));
  return jobs;
}

Result<std::vector<DeliveryJob>> SqlTxn::ClaimDueAsStored(std::string_view owner, UnixMs now,
                                                          UnixMs lease_until, int limit) {
  std::vector<DeliveryJob> jobs;
  // The caller's own lease first, so that a late claimer never takes back its own rows.
  OB_ASSIGN_OR_RETURN(bool leasing, ExtendOwner(owner, lease_until));
  OB_RETURN_IF_ERROR(ReapExpiredOwners(now));
  if (limit <= 0 || !leasing) return jobs;
  const bool sqlite = c_.dialect() == Dialect::kSqlite;
  if (sqlite) {
    OB_RETURN_IF_ERROR(ReleaseHeldRows(kHeldRowsPerClaim));
    OB_RETURN_IF_ERROR(SweepHeldBack(kHeldBackSweptPerClaim));
  }
  static const std::string kSqlite = ClaimSql(false);
  static const std::string kSqliteShared = ClaimSql(true);
  static const std::string kPgShared = FairClaimSql(true);
  static const std::string kPgExclusive = FairClaimSql(false);
  const bool fair = c_.dialect() == Dialect::kPostgres;
  const std::string& sql =
      !fair ? (shared_ ? kSqliteShared : kSqlite) : (shared_ ? kPgShared : kPgExclusive);
  // PostgreSQL: a round that cut a subscription at its cap and left room claims again for the
  // room (the rows just leased are no longer claimable), so that a claim fills up while rows are
  // due, as the dispatcher expects of a full answer (ClaimPacer). At most kFairClaimRounds.
  constexpr int kFairClaimRounds = 3;
  // PostgreSQL plans the claim afresh at each run (a custom plan), for the table as it is then:
  // the statement is prepared once per connection, and after five runs the server may keep a
  // generic plan for good. One made while deliveries was empty (a new database, or statistics
  // taken before a fill: autovacuum analyzes a minute later at best) scanned the whole table
  // and sorted whole indexes to lease a few hundred rows, 40-150 ms a claim of 500 and growing
  // with the table (issue 8, `e2e_bench --backlog --stores pg3`; PostgreSQL's planner sizes a
  // table by its pages at planning time, so a fresh plan sees the fill even with statistics
  // taken empty; PostgresStore.ClaimPlannedOnAnEmptyTableScalesWithTheTable). Planning costs
  // about a millisecond a claim. Only for these statements: the setting goes back to the
  // server's after them; a claim that fails is undone with its setting (the store rolls a
  // failed task back to its savepoint). A statement of its own rather than SET: the tests'
  // statement recorder sees it. The sweep, the recheck and the release of rows no longer ordered
  // come before it and keep their generic plans: planned afresh at each claim too, they cost the
  // server more CPU in every pair of a drain's runs (docs/PERFORMANCE.md); a generic plan kept
  // from a small table (the release's scanned the whole table, 17-32 ms a claim at 110,000 rows
  // without statistics) is made again once the table is analyzed, below. The hold, after the
  // claim, is planned afresh (below).
  //
  // The same statement asks whether deliveries has statistics yet. A database whose tables
  // filled faster than autovacuum visited it (a new one: every minute at best) has none, and
  // the planner's default estimates of `status`, `lease_owner` and `held` multiply to a row or
  // so: it then walked deliveries_due for the claim's subscriptions instead of
  // deliveries_due_subscription, 70-100 ms a claim of 500 at 110,000 rows (`e2e_bench --backlog
  // --stores pg3`: the drain at 0.07 of the bare sender instead of 0.31). So the writer
  // analyzes the table after this transaction commits (AnalyzeDeliveries, pg_store.cpp: at most
  // once per five minutes per process, while the table still has no analysis on record; not
  // `reltuples`, which a VACUUM or an index build sets without column statistics).
  if (fair) {
    // A literal, not a parameter: the tests replay the statement's text as the setting.
    static const std::string kSetting =
        "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), (SELECT CASE WHEN "
        "pg_stat_get_last_analyze_time(c.oid) IS NULL AND "
        "pg_stat_get_last_autoanalyze_time(c.oid) IS NULL AND pg_relation_size(c.oid) > " +
        std::to_string(kUnanalyzedBytes) +
        " THEN 1 ELSE 0 END FROM pg_class c WHERE c.oid = 'deliveries'::regclass)";
    OB_RETURN_IF_ERROR(SweepHeldBack(kHeldBackSweptPerClaim));
    OB_RETURN_IF_ERROR(RecheckHeads());                       // sent with the setting
    OB_RETURN_IF_ERROR(ReleaseOrderGone(kHeldRowsPerClaim));  // the same
    OB_ASSIGN_OR_RETURN(Stmt set, c_.Prepare(kSetting));
    OB_ASSIGN_OR_RETURN(bool row, set.Step());
    if (row && !set.IsNull(1) && set.Int(1) != 0) analyze_wanted_ = true;
  }
  std::unordered_map<std::int64_t, std::int64_t> per_sub;
  for (int round = 0; round < kFairClaimRounds; ++round) {
    const int room = limit - static_cast<int>(jobs.size());
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
    s.Bind(1, owner).Bind(2, lease_until).Bind(3, now).Bind(4, room);
    std::int64_t cap = 0;
    std::size_t got = 0;
    per_sub.clear();
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      DeliveryJob job;
      job.id = DeliveryRowId(s.Int(0));
      job.tenant = TenantId(s.Int(1));
      job.subscription = SubscriptionId(s.Int(2));
      job.event_id = s.Text(3);
      job.data_json = s.Text(4);
      job.attempts = static_cast<int>(s.Int(5));
      job.cycle_attempts = static_cast<int>(s.Int(6));
      job.next_attempt_at = s.Int(7);
      job.test = s.Int(8) != 0;
      if (fair) {
        cap = s.Int(9);
        ++per_sub[job.subscription.value];
        if (s.IsNull(10)) {
          return Fail(core::Error::Internal("delivery of unknown event " + job.event_id));
        }
        job.event_type = s.Text(10);
        job.occurred_at = s.Int(11);
        job.target_id = s.OptInt(12);
      }
      jobs.push_back(std::move(job));
      ++got;
    }
    if (!fair || got == 0 || static_cast<int>(got) >= room) break;
    const bool cut = std::any_of(per_sub.begin(), per_sub.end(),
                                 [cap](const auto& sub) { return sub.second >= cap; });
    if (!cut) break;
  }
  if (fair) {
    // Planned afresh too: its generic plan, made by the connection's sixth claim on a table still
    // empty (a new database, before the guard below kept it from running there) or nearly so,
    // kept sequential scans that a backlog of held-back rows then made quadratic (15 s for 11,000
    // rows; PostgresStore.HoldPlannedOnAnEmptyTableScalesWithTheTable). Run only when an open row
    // carries its target's order (`target_id` set, as the rows of ordered subscriptions do), the
    // only rows it could hold: planning the hold costs the server about 0.7 ms a claim, its guard
    // (one descent of deliveries_ordered) a fraction of that, and most databases have no such row
    // most of the time.
    OB_ASSIGN_OR_RETURN(const bool ordered_open, AnyOpenOrderedRow());
    if (ordered_open) OB_RETURN_IF_ERROR(HoldBlockedRows(now, kHeldRowsPerClaim));
    // A statement (not Exec) so that the tests' statement recorder sees where the setting ends.
    OB_ASSIGN_OR_RETURN(Stmt reset, c_.Prepare("SET LOCAL plan_cache_mode TO DEFAULT"));
    OB_RETURN_IF_ERROR(reset.Run());
  }
  if (sqlite) {
    // As far as the claim walked deliveries_due: to its last row when it came back full, else
    // all that is due.
    UnixMs bound = now;
    if (!jobs.empty() && static_cast<int>(jobs.size()) >= limit) {
      bound = std::max_element(jobs.begin(), jobs.end(),
                               [](const DeliveryJob& a, const DeliveryJob& b) {
                                 return a.next_attempt_at < b.next_attempt_at;
                               })
                  ->next_attempt_at;
    }
    OB_RETURN_IF_ERROR(HoldWaitingRows(bound, kHeldRowsPerClaim));
  }
  // Oldest due first, before KeepFairShare, which keeps new subscriptions in that order.
  std::sort(jobs.begin(), jobs.end(), [](const DeliveryJob& a, const DeliveryJob& b) {
    return a.next_attempt_at != b.next_attempt_at ? a.next_attempt_at < b.next_attempt_at
                                                  : a.id < b.id;
  });
  if (shared_ && !jobs.empty()) {
    OB_ASSIGN_OR_RETURN(jobs, KeepFairShare(owner, now, std::move(jobs)));
  }
  // PostgreSQL's claim joined its events' facts (FairClaimSql); SQLite reads them here.
  if (sqlite) OB_RETURN_IF_ERROR(FillEventFacts(jobs));
  return jobs;
}

// A paused subscription's rows stay pending and are never claimed (CONTRACT §13), and an ordered
// subscription's row waits while an earlier one of its target is open (§6); a disabled
// subscription's reopened row waits until it is enabled again. (PostgreSQL holds the ordered
// kind alone, with a protocol of its own for several processes: HoldBlockedRows.) On SQLite all
// are held
// (migrations 15 and 16; `held` 1, 2, 3): out of deliveries_due, so that the claim, which walks
// that index in due order, does not read them at every claim while they wait (issue 8: the
// writer 19-21 % busy with 200,000 rows of a paused subscription and nothing else to do; 35 ms a
// claim with 20,000 rows of an ordered one behind two failing heads; both linear in the rows).
// The claim holds them as its walk meets them, a bounded number at a time and no further than
// it walked, so a claim costs at most twice what it did, and only while a subscription is paused
// or ordered (and fan-out inserts a paused subscription's rows held: InsertDeliveries). Held
// is a hint, not the rule: the claim still checks `paused` and the order, so a row held late or
// let go early is only walked, never sent out of turn. What must not happen is a row left held
// once nothing holds it back:
// - rows held for a pause: a claim first lets go of those of subscriptions no longer paused (or
//   deleted, or disabled), found through deliveries_held; it looks at the subscriptions changed
//   since the last claim (a read of each one's flags), or at every subscription with held rows
//   (one descent each) when it must (ReleaseHeldRows), so unpausing needs no step of its own and
//   nothing is lost if the process stops midway;
// - rows reopened while their subscription is disabled (3, migration 16; Redeliver and recover
//   hold them, the claim never does): let go of as those held for a pause, once the subscription
//   is enabled (or deleted) again;
// - rows held back by ordering: an outcome that closes a row lets go of its target's next open
//   row (ReleaseNextInOrder), in the outcome's transaction. A held row always has an earlier
//   open row on its target, and rows stop being open only through an outcome, or all at once
//   (a disabled or deleted subscription's are cancelled), so it is let go when it becomes its
//   target's head. Every claim also lets go of those of subscriptions no longer ordered (or
//   deleted, or disabled), as for a pause.
Status SqlTxn::HoldWaitingRows(UnixMs bound, int budget) {
  {
    // Most of the time no subscription is paused or ordered: then the claim's walk is not gone
    // over again (one descent of the partial index subscriptions_holding).
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT 1 FROM subscriptions WHERE (paused = 1 OR "
                                           "ordered = 1) AND enabled = 1 AND deleted = 0 LIMIT 1"));
    OB_ASSIGN_OR_RETURN(bool any, s.Step());
    if (!any) return {};
  }
  OB_ASSIGN_OR_RETURN(
      Stmt s,
      c_.Prepare(
          "UPDATE deliveries SET held = (SELECT CASE WHEN s.paused = 1 THEN 1 ELSE 2 END "
          "FROM subscriptions s WHERE s.id = deliveries.subscription_id) WHERE id IN "
          "(SELECT d.id FROM deliveries d CROSS JOIN subscriptions s ON s.id = "
          "d.subscription_id WHERE d.status IN ('pending', 'failed') AND d.lease_owner IS "
          "NULL AND d.held = 0 AND d.next_attempt_at <= ?1 AND s.enabled = 1 AND s.deleted = 0 "
          "AND (s.paused = 1 OR (s.ordered = 1 AND NOT " OB_NOT_BLOCKED ")) ORDER BY "
          "d.next_attempt_at LIMIT ?2)"));
  s.Bind(1, bound).Bind(2, budget);
  OB_RETURN_IF_ERROR(s.Run());
  if (c_.Changes() > 0) rows_held_back_.clear();
  return {};
}

Status SqlTxn::ReleaseHeldRows(int budget) {
  // Every subscription with held rows only when a whole pass is wanted (release_wanted_), which
  // is done only when the pass ends with its budget to spare: a statement that fails leaves it
  // wanted. Otherwise only the subscriptions changed since (release_subs_), each one's flags read.
  if (!release_wanted_ && release_subs_.empty()) return {};
  ++release_passes_;  // a rollback of this transaction or task undoes what follows
  // (held, the subscription's reason to hold it)
#define OB_HELD_GONE(kind, gone) \
  "WITH RECURSIVE " OB_HELD_SUBSCRIPTIONS(kind) " SELECT h.id FROM held h CROSS JOIN " \
                                                "subscriptions s ON s.id = h.id WHERE " gone
  static const std::string kSubs[3] = {OB_HELD_GONE("1", OB_PAUSE_GONE),
                                       OB_HELD_GONE("2", OB_ORDER_GONE),
                                       OB_HELD_GONE("3", OB_DISABLE_GONE)};
#undef OB_HELD_GONE
  // Lets go of up to `budget` rows of `sub` held as `kind`, in due order.
  auto release = [&](std::int64_t sub, int kind) -> Status {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE deliveries SET held = 0 WHERE id IN (SELECT "
                                           "id FROM deliveries WHERE " OB_HELD_INDEX
                                           " AND held = ?3 AND subscription_id = ?1 ORDER BY "
                                           "next_attempt_at LIMIT ?2)"));
    s.Bind(1, sub).Bind(2, budget).Bind(3, std::int64_t{kind});
    OB_RETURN_IF_ERROR(s.Run());
    budget -= static_cast<int>(c_.Changes());
    return {};
  };
  if (!release_wanted_) {
    // The changed subscriptions: each one's reasons read once, its rows of each kind whose
    // reason is gone let go of (a subscription deleted from the table has none left).
    while (!release_subs_.empty()) {
      if (budget <= 0) return {};  // the rest at the next claim
      const std::int64_t sub = *release_subs_.begin();
      bool gone[3] = {true, true, true};
      {
        OB_ASSIGN_OR_RETURN(
            Stmt s, c_.Prepare("SELECT (" OB_PAUSE_GONE "), (" OB_ORDER_GONE "), (" OB_DISABLE_GONE
                               ") FROM subscriptions s WHERE s.id = ?1"));
        s.Bind(1, sub);
        OB_ASSIGN_OR_RETURN(bool row, s.Step());
        if (row) {
          for (int k = 0; k < 3; ++k) gone[k] = s.Int(k) != 0;
        }
      }
      for (int kind = 1; kind <= 3; ++kind) {
        if (gone[kind - 1]) OB_RETURN_IF_ERROR(release(sub, kind));
      }
      if (budget <= 0) return {};  // it may have more: looked at again at the next claim
      release_subs_.erase(sub);
    }
    return {};
  }
  for (int kind = 1; kind <= 3; ++kind) {
    std::vector<std::int64_t> subs;
    {
      OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(kSubs[kind - 1]));
      for (;;) {
        OB_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) break;
        subs.push_back(s.Int(0));
      }
    }
    for (std::int64_t sub : subs) {
      if (budget <= 0) return {};  // the rest at the next claim: still wanted
      OB_RETURN_IF_ERROR(release(sub, kind));
    }
  }
  // The last UPDATE may have stopped at its limit: then the next claim looks again.
  release_wanted_ = budget <= 0;
  if (!release_wanted_) release_subs_.clear();
  return {};
}

Status SqlTxn::ReleaseNextInOrder(const std::vector<const Outcome*>& applied,
                                  const std::vector<std::int64_t>& closed_in_order) {
  if (c_.dialect() == Dialect::kPostgres) {
    // The heads of the targets of the rows closed that carry their target (the outcome's UPDATE
    // said which: a row of an unordered subscription, or of an event without a target, is no
    // target's head; before, each such row cost a primary-key probe here and another after the
    // commit), in one statement sent with the next one, and looked at again after the commit
    // (RecheckHeads; HoldBlockedRows).
    recheck_next_.insert(recheck_next_.end(), closed_in_order.begin(), closed_in_order.end());
    return ReleaseHeadsOf(closed_in_order);
  }
  for (const Outcome* outcome : applied) {
    const Outcome& o = *outcome;
    // A row that stays open (failed, to be tried again) stays its target's head: nothing to let
    // go of.
    if (o.new_status == DeliveryStatus::kFailed) continue;
    // Most of the time the subscription holds nothing back (one descent of deliveries_held, once
    // per subscription and transaction): an outcome of another subscription costs nothing here.
    auto [known, added] = rows_held_back_.try_emplace(o.subscription.value, false);
    if (added) {
      OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT 1 FROM deliveries WHERE " OB_HELD_INDEX
                                             " AND held = 2 AND subscription_id = ?1 LIMIT 1"));
      s.Bind(1, o.subscription.value);
      OB_ASSIGN_OR_RETURN(const bool any, s.Step());
      known->second = any;
    }
    if (!known->second) continue;
    OB_RETURN_IF_ERROR(ReleaseHeadOf(o.delivery));
  }
  return {};
}

Status SqlTxn::ReleaseHeadOf(DeliveryRowId row) {
  // The head of the row's target (OB_NOT_BLOCKED's probe of deliveries_ordered), if it is held
  // back; nothing for a row without a target or of an unordered subscription. SQLite's; on
  // PostgreSQL ReleaseHeadsOf.
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare("UPDATE deliveries SET held = 0 WHERE held = 2 AND id = (SELECT d2.id "
                         "FROM deliveries f CROSS JOIN deliveries d2 WHERE f.id = ?1 AND "
                         "f.target_id IS NOT NULL AND d2.subscription_id = f.subscription_id "
                         "AND d2.target_id = f.target_id AND d2.status IN ('pending', 'failed') "
                         "ORDER BY d2.occurred_at, d2.event_row LIMIT 1)"));
  s.Bind(1, row.value);
  return s.Run();
}

// PostgreSQL: SweepHeldBack in one statement (a round trip per target would cost a claim 64):
// a recursive walk of the next `n` targets' heads from the cursor, one descent of
// deliveries_ordered each (a row comparison, an index condition here), which lets go of those
// held back and returns the last target looked at. Besides paths no one knows of, it lets go of
// a row whose head a process of the release before closed (that process knows nothing of `held`
// and lets go of nothing: docs/SCALING.md). Nothing when no row is held back (one descent of
// deliveries_held). The rows are named by their primary key alone (`held + 0`: ReleaseHeadsOf).
// RecheckHeads (and the store's close: LookAgainAtClose) covers the races known; this covers
// what they do not (a transaction's rows to look at again are lost with its connection, or with
// its process when it is killed).
Status SqlTxn::SweepHeldBackInOne(int n) {
  const std::array<std::int64_t, 2> after =
      held_back_cursor_.value_or(std::array<std::int64_t, 2>{-1, -1});
  OB_ASSIGN_OR_RETURN(
      Stmt s,
      c_.Prepare(
          "WITH RECURSIVE heads(sub, target, id, held, n) AS ((SELECT subscription_id, "
          "target_id, id, held, 1 FROM deliveries WHERE target_id IS NOT NULL AND status IN "
          "('pending', 'failed') AND (subscription_id, target_id) > (?1, ?2) AND EXISTS (SELECT "
          "1 FROM deliveries h WHERE h." OB_HELD_INDEX
          " AND h.held = 2) ORDER BY subscription_id, target_id, occurred_at, event_row LIMIT 1) "
          "UNION ALL SELECT x.* FROM heads p CROSS JOIN LATERAL (SELECT subscription_id, "
          "target_id, id, held, p.n + 1 FROM deliveries WHERE target_id IS NOT NULL AND status IN "
          "('pending', 'failed') AND (subscription_id, target_id) > (p.sub, p.target) ORDER BY "
          "subscription_id, target_id, occurred_at, event_row LIMIT 1) x WHERE p.n < ?3), let_go "
          "AS (UPDATE deliveries SET held = 0 WHERE id = ANY(ARRAY(SELECT id FROM heads WHERE held "
          "= "
          "2 ORDER BY id)) "
          "AND held + 0 = 2) SELECT sub, target, (SELECT COUNT(*) FROM heads) FROM heads "
          "ORDER BY n DESC LIMIT 1"));
  s.Bind(1, after[0]).Bind(2, after[1]).Bind(3, std::int64_t{n});
  OB_ASSIGN_OR_RETURN(const bool row, s.Step());
  // Fewer than `n` targets (or none) to the end: from the start at the next claim.
  if (!row || s.Int(2) < n) {
    held_back_cursor_.reset();
  } else {
    held_back_cursor_ = std::array<std::int64_t, 2>{s.Int(0), s.Int(1)};
  }
  return {};
}

// PostgreSQL (migration 11): rows an ordered subscription holds back behind an earlier open row
// of their target are held (`held` = 2), out of deliveries_due_subscription, as on SQLite: the
// claim walked every one of them at each claim while their target's head waited for a retry
// (60-150 ms a claim at 20,000 such rows: one failing endpoint slowed every tenant). Each claim
// holds, in one statement, up to `budget` rows of ordered subscriptions whose first due row is
// held back (so that a subscription whose due rows are heads, a healthy backlog, costs one probe
// and no walk), among each one's first `budget` due rows. Several processes claim and record
// outcomes at once here, each with its own snapshot: a claim can hold a row behind a head that
// an outcome closes meanwhile, after that outcome looked for rows to let go of; two outcomes can
// close a target's two open rows at once, each seeing the other's still open. So every
// transaction that holds rows or closes rows of ordered subscriptions has their targets' heads
// looked at again by its connection's next claim (RecheckHeads, in a transaction begun after
// its commit): of two transactions that missed each other, the one that commits last looks
// again after both, and lets go of the head. (Locking the heads instead, FOR SHARE, deadlocked
// a claim and an outcome of two processes, each with the other's head locked.) Rows of a
// subscription no longer ordered (or disabled, deleted) are let go of by the next claim
// (ReleaseOrderGone); a cancelled row is held for nothing (CancelOpenDeliveries); the sweep
// (SweepHeldBackInOne) is the net under all of it.
#define OB_HEAD_OF(row)                                                                      \
  "(SELECT d2.id FROM deliveries d2 WHERE d2.subscription_id = " row                         \
  ".subscription_id AND d2.target_id = " row                                                 \
  ".target_id AND d2.status IN ('pending', 'failed') ORDER BY d2.occurred_at, d2.event_row " \
  "LIMIT 1)"
// A subscription's due unheld rows, oldest due first, from deliveries_due_subscription alone:
// its bounds are written as inequalities (`subscription_id >= sub` and a row comparison of
// (subscription_id, next_attempt_at) with (sub, ?1), which together leave sub's rows alone) and
// the order names both columns, so no other index gives the order. With `subscription_id = sub` the
// planner, to which that column is then a constant and drops out of the order, may walk
// deliveries_due and filter it by subscription instead, reading every other subscription's due
// rows that come first (as the claim's head probe did: FairClaimSql, which says why its own walk
// for rows to lease is not written this way).
#define OB_PG_DUE_UNHELD(sub)                                                                     \
  "SELECT d.id, d.subscription_id, d.target_id FROM deliveries d WHERE d.subscription_id >= " sub \
  " AND (d.subscription_id, d.next_attempt_at) <= (" sub                                          \
  ", ?1) AND d.status IN ('pending', "                                                            \
  "'failed') AND d.lease_owner IS NULL AND d.held = 0 ORDER BY d.subscription_id, "               \
  "d.next_attempt_at"

// Planned afresh like the hold it guards (under the claim's setting): a generic plan made on an
// empty table could scan it whole
// (PostgresStore.HoldsGuardPlannedOnAnEmptyTableScalesWithTheTable). The LIMIT is a parameter
// because PostgreSQL keeps its generic plan for a statement without any, whatever plan_cache_mode
// says (until an invalidation, such as the table's next ANALYZE). deliveries_ordered holds exactly
// these rows, and its order in the statement leaves the planner no cheaper plan than a descent of
// it.
Result<bool> SqlTxn::AnyOpenOrderedRow() {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT 1 FROM deliveries WHERE target_id IS NOT NULL AND "
                                         "status IN ('pending', 'failed') ORDER BY subscription_id "
                                         "LIMIT ?1"));
  s.Bind(1, std::int64_t{1});
  return s.Step();
}

Status SqlTxn::HoldBlockedRows(UnixMs now, int budget) {
  // The rows held back among each subscription's first `budget` due rows, if its first is.
  static const std::string kHeldBack =
      std::string("SELECT x.id FROM (") + OB_PG_DUE_UNHELD("s.id") +
      " LIMIT ?2) x WHERE x.target_id IS NOT NULL AND x.id <> " + OB_HEAD_OF("x");
  static const std::string kFirstHeldBack = std::string("SELECT 1 FROM (") +
                                            OB_PG_DUE_UNHELD("s.id") +
                                            " LIMIT 1) f WHERE f.target_id IS NOT NULL AND f.id "
                                            "<> " +
                                            OB_HEAD_OF("f");
  // The rows are named by their primary key alone (`held + 0`: with `held = 0` the statement
  // implies deliveries_due's predicate, and without statistics the planner walked that index
  // instead, 27,605 rows at 110,000).
  // The subscriptions it looks at: those with open rows in deliveries_ordered (a skip scan, one
  // descent each), not every ordered subscription (subscriptions has no index on `ordered`, and
  // each one with nothing open cost a probe: 2,000 of them 2.5-4 ms a claim), each looked up by
  // its key in a LATERAL whose LIMIT keeps the planner from joining it (as the claim's). Planned
  // afresh at each claim (ClaimDueAsStored), which costs the server 0.7 ms a claim: run only when
  // an open row carries its target's order (AnyOpenOrderedRow).
  static const std::string kSql =
      "WITH RECURSIVE open_ordered(id) AS ((SELECT subscription_id FROM deliveries WHERE "
      "target_id IS NOT NULL AND status IN ('pending', 'failed') ORDER BY subscription_id LIMIT "
      "1) UNION ALL SELECT (SELECT d.subscription_id FROM deliveries d WHERE d.target_id IS NOT "
      "NULL AND d.status IN ('pending', 'failed') AND d.subscription_id > o.id ORDER BY "
      "d.subscription_id LIMIT 1) FROM open_ordered o WHERE o.id IS NOT NULL) UPDATE deliveries "
      "SET held = 2 WHERE id = ANY(ARRAY(SELECT c.id FROM open_ordered o CROSS JOIN LATERAL "
      "(SELECT s.id FROM subscriptions s WHERE s.id = o.id AND s.ordered = 1 AND s.enabled = 1 "
      "AND s.deleted = 0 AND s.paused = 0 LIMIT 1) s CROSS JOIN LATERAL (" +
      kHeldBack + ") c WHERE EXISTS (" + kFirstHeldBack +
      ") LIMIT ?2)) AND held + 0 = 0 AND status IN ('pending', 'failed') AND lease_owner IS "
      "NULL RETURNING subscription_id, target_id";
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(kSql));
  s.Bind(1, now).Bind(2, std::int64_t{budget});
  for (;;) {
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    recheck_targets_next_.emplace(s.Int(0), s.Int(1));  // a target once, however many rows
  }
  return {};
}

// PostgreSQL: lets go of the heads of the targets of `rows` (their ids) that are held: one
// LATERAL probe of deliveries_ordered per row (as a join of the two rows, the planner
// hash-joined a sequential scan of deliveries: 8 ms at 20,000 rows). Sent with the next
// statement. The rows are named by their primary key alone: `held + 0` is not the indexed
// column, so that a plan made while the statistics still knew of no held row cannot walk
// deliveries_held instead (it did: 10 ms).
Status SqlTxn::ReleaseHeadsOf(const std::vector<std::int64_t>& rows) {
  if (rows.empty()) return {};
  ArrayLiteral ids;
  for (std::int64_t id : rows) ids.Add(id);
  static const std::string kSql =
      std::string(
          "UPDATE deliveries SET held = 0 WHERE held + 0 = 2 AND id = ANY(ARRAY(SELECT h.id "
          "FROM deliveries f CROSS JOIN LATERAL ") +
      OB_HEAD_OF("f") + " h(id) WHERE f.id = ANY(?1::bigint[]) AND f.target_id IS NOT NULL))";
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(kSql));
  s.Bind(1, ids.Take());
  return s.RunLater();
}

// PostgreSQL: the heads of the targets whose rows the transactions before this one held or
// closed, looked at again (HoldBlockedRows): by target for the rows held (a hold of 20,000 rows
// on two targets is two probes), by row for the rows closed (an outcome does not know its row's
// target). Sent with the next statement.
Status SqlTxn::RecheckHeads() {
  if (!recheck_pending_.empty()) {
    std::sort(recheck_pending_.begin(), recheck_pending_.end());
    recheck_pending_.erase(std::unique(recheck_pending_.begin(), recheck_pending_.end()),
                           recheck_pending_.end());
    OB_RETURN_IF_ERROR(ReleaseHeadsOf(recheck_pending_));
    recheck_sent_.insert(recheck_sent_.end(), recheck_pending_.begin(), recheck_pending_.end());
    recheck_pending_.clear();
  }
  if (recheck_targets_pending_.empty()) return {};
  ArrayLiteral subs;
  ArrayLiteral targets;
  for (const auto& [sub, target] : recheck_targets_pending_) {
    subs.Add(sub);
    targets.Add(target);
  }
  recheck_targets_sent_.insert(recheck_targets_pending_.begin(), recheck_targets_pending_.end());
  recheck_targets_pending_.clear();
  static const std::string kSql = std::string(
                                      "UPDATE deliveries SET held = 0 WHERE held + 0 = 2 AND id "
                                      "= ANY(ARRAY(SELECT h.id FROM unnest(?1::bigint[], "
                                      "?2::bigint[]) AS f(subscription_id, target_id) CROSS "
                                      "JOIN LATERAL ") +
                                  OB_HEAD_OF("f") + " h(id)))";
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(kSql));
  s.Bind(1, subs.Take()).Bind(2, targets.Take());
  return s.RunLater();
}

// PostgreSQL: lets go of up to `budget` rows held back by ordering whose subscription no longer
// holds them (no longer ordered, disabled or deleted), found per subscription with held rows
// (one descent of deliveries_held each, as SQLite's whole release pass); sent with the claim's
// next statement.
Status SqlTxn::ReleaseOrderGone(int budget) {
  OB_ASSIGN_OR_RETURN(Stmt s,
                      c_.Prepare("WITH RECURSIVE " OB_HELD_SUBSCRIPTIONS(
                          "2") ", gone AS (SELECT h.id FROM held h JOIN subscriptions s ON "
                               "s.id = h.id WHERE " OB_ORDER_GONE
                               ") UPDATE deliveries SET held = 0 WHERE id = ANY(ARRAY(SELECT "
                               "r.id FROM gone g CROSS JOIN LATERAL (SELECT d.id FROM "
                               "deliveries d WHERE d." OB_HELD_INDEX
                               " AND d.held = 2 AND d.subscription_id = g.id LIMIT ?1) r "
                               "LIMIT ?1))"));
  s.Bind(1, std::int64_t{budget});
  return s.RunLater();
}

// A safety net under ReleaseNextInOrder: a row held back that has become its target's head
// without being let go (on SQLite no path is known to do that; on PostgreSQL, see
// SweepHeldBackInOne; such a target would wait for good, like one whose endpoint is down) is
// let go by a later claim. While any row is held back, each claim looks at the heads of the next
// `n` targets with open rows of ordered subscriptions, in deliveries_ordered's order from where
// the last claim stopped (the writer's SqlTxn lives as long as the store; PostgreSQL's, as long
// as its connection), and starts over at the end: one descent of deliveries_ordered per target
// (the first entry after the last target is the next target's head), so a claim costs tens of
// microseconds more while rows are held back, and every target is looked at again every
// (targets / n) claims.
Status SqlTxn::SweepHeldBack(int n) {
  if (c_.dialect() == Dialect::kPostgres) return SweepHeldBackInOne(n);
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT 1 FROM deliveries WHERE " OB_HELD_INDEX
                                           " AND held = 2 LIMIT 1"));
    OB_ASSIGN_OR_RETURN(const bool any, s.Step());
    if (!any) return {};
  }
  bool wrapped = !held_back_cursor_;
  for (int seen = 0; seen < n; ++seen) {
    const std::array<std::int64_t, 2> after =
        held_back_cursor_.value_or(std::array<std::int64_t, 2>{-1, -1});
    // The next target of the same subscription, else the first of the next subscription: a
    // seek each (written as one row-value comparison, SQLite walked the last target's rows).
    OB_ASSIGN_OR_RETURN(
        Stmt s,
        c_.Prepare("SELECT * FROM (SELECT subscription_id, target_id, id, held FROM deliveries "
                   "WHERE target_id IS NOT NULL AND status IN ('pending', 'failed') AND "
                   "subscription_id = ?1 AND target_id > ?2 ORDER BY target_id, occurred_at, "
                   "event_row LIMIT 1) UNION ALL SELECT * FROM (SELECT subscription_id, "
                   "target_id, id, held FROM deliveries WHERE target_id IS NOT NULL AND status IN "
                   "('pending', 'failed') AND subscription_id > ?1 ORDER BY subscription_id, "
                   "target_id, occurred_at, event_row LIMIT 1) LIMIT 1"));
    s.Bind(1, after[0]).Bind(2, after[1]);
    OB_ASSIGN_OR_RETURN(const bool row, s.Step());
    if (!row) {
      held_back_cursor_.reset();  // the end: from the start, once per claim
      if (wrapped) return {};
      wrapped = true;
      continue;
    }
    held_back_cursor_ = std::array<std::int64_t, 2>{s.Int(0), s.Int(1)};
    if (s.Int(3) != 2) continue;
    OB_RETURN_IF_ERROR(SetHeld(DeliveryRowId(s.Int(2)), 0));
  }
  return {};
}

Status SqlTxn::SetHeld(DeliveryRowId row, std::int64_t held) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE deliveries SET held = ?2 WHERE id = ?1"));
  s.Bind(1, row.value).Bind(2, held);
  return s.Run();
}

Result<std::vector<DeliveryJob>> SqlTxn::KeepFairShare(std::string_view owner, UnixMs now,
                                                       std::vector<DeliveryJob> jobs) {
  // The subscriptions of the claimed rows: those this process owns already, and new ones in the
  // order their rows came (oldest due first).
  std::vector<std::int64_t> subs;
  subs.reserve(jobs.size());
  for (const DeliveryJob& job : jobs) subs.push_back(job.subscription.value);
  std::sort(subs.begin(), subs.end());
  subs.erase(std::unique(subs.begin(), subs.end()), subs.end());
  std::vector<std::int64_t> mine;
  std::int64_t owned_by_me = 0;
  std::int64_t owned_total = 0;
  std::int64_t live_owners = 1;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT subscription_id FROM subscription_owners WHERE "
                                           "owner = ?1"));
    s.Bind(1, owner);
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      ++owned_by_me;
      if (std::binary_search(subs.begin(), subs.end(), s.Int(0))) mine.push_back(s.Int(0));
    }
  }
  std::sort(mine.begin(), mine.end());
  std::vector<std::int64_t> fresh;  // unowned until now, oldest due first
  for (const DeliveryJob& job : jobs) {
    const std::int64_t sub = job.subscription.value;
    if (!std::binary_search(mine.begin(), mine.end(), sub) &&
        std::find(fresh.begin(), fresh.end(), sub) == fresh.end()) {
      fresh.push_back(sub);
    }
  }
  std::size_t allowed = fresh.size();
  if (!fresh.empty()) {
    // A fair share of the subscriptions with work: ceil(all owned after this claim / processes
    // that send), so that processes started together split the endpoints between them instead
    // of the first claim taking every one. At least one, so work never waits for a share.
    OB_ASSIGN_OR_RETURN(owned_total, CountOwned(std::nullopt));
    OB_ASSIGN_OR_RETURN(live_owners, CountLiveOwners(now));
    const std::int64_t total = owned_total + static_cast<std::int64_t>(fresh.size());
    const std::int64_t share = (total + live_owners - 1) / live_owners;
    allowed = static_cast<std::size_t>(
        std::clamp<std::int64_t>(share - owned_by_me, 1, static_cast<std::int64_t>(fresh.size())));
    fresh.resize(allowed);
  }
  // Two processes may have claimed rows of one unowned subscription at once: the one whose
  // insert came first owns it.
  std::vector<std::int64_t> wanted = mine;
  wanted.insert(wanted.end(), fresh.begin(), fresh.end());
  OB_ASSIGN_OR_RETURN(std::vector<std::int64_t> owned, OwnSubscriptions(owner, std::move(wanted)));
  std::vector<DeliveryRowId> give_back;
  std::vector<DeliveryJob> kept;
  for (DeliveryJob& job : jobs) {
    if (std::binary_search(owned.begin(), owned.end(), job.subscription.value)) {
      kept.push_back(std::move(job));
    } else {
      give_back.push_back(job.id);
    }
  }
  if (!give_back.empty()) {
    OB_ASSIGN_OR_RETURN(int stale, ReleaseLeases(owner, give_back));
    (void)stale;
  }
  return kept;
}

Result<std::int64_t> SqlTxn::CountOwned(std::optional<std::string_view> owner) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(owner ? "SELECT COUNT(*) FROM subscription_owners WHERE "
                                                 "owner = ?1"
                                               : "SELECT COUNT(*) FROM subscription_owners"));
  if (owner) s.Bind(1, *owner);
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? s.Int(0) : 0;
}

Result<std::int64_t> SqlTxn::CountLiveOwners(UnixMs now) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT COUNT(*) FROM lease_owners WHERE reaped = 0 AND "
                                         "lease_until >= ?1"));
  s.Bind(1, now);
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  return std::max<std::int64_t>(1, row ? s.Int(0) : 1);
}

Result<int> SqlTxn::ShedSubscriptions(std::string_view owner, UnixMs now,
                                      const std::vector<SubscriptionId>& idle) {
  if (!shared_ || idle.empty()) return 0;
  lease_facts_ = {};  // it gives subscriptions up
  OB_ASSIGN_OR_RETURN(const std::int64_t mine, CountOwned(owner));
  if (mine <= 1) return 0;
  OB_ASSIGN_OR_RETURN(const std::int64_t total, CountOwned(std::nullopt));
  OB_ASSIGN_OR_RETURN(const std::int64_t live, CountLiveOwners(now));
  const std::int64_t share = (total + live - 1) / live;
  std::int64_t excess = mine - share;
  int shed = 0;
  for (std::size_t i = 0; i < idle.size() && excess > 0; ++i) {
    // Only while none of its rows is leased to the owner (an outcome not yet recorded).
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("DELETE FROM subscription_owners WHERE subscription_id "
                                           "= ?1 AND owner = ?2 AND NOT EXISTS (SELECT 1 FROM "
                                           "deliveries WHERE subscription_id = ?1 AND status IN "
                                           "('pending', 'failed') AND status <> 'succeeded' AND "
                                           "lease_owner = ?2)"));
    s.Bind(1, idle[i].value).Bind(2, owner);
    OB_RETURN_IF_ERROR(s.Run());
    if (c_.Changes() > 0) {
      ++shed;
      --excess;
    }
  }
  return shed;
}

Result<bool> SqlTxn::RenewLease(std::string_view owner, UnixMs now, UnixMs lease_until) {
  (void)now;
  lease_facts_ = {};
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE lease_owners SET lease_until = ?2 WHERE owner "
                                           "= ?1 AND reaped = 0"));
    s.Bind(1, owner).Bind(2, lease_until);
    OB_RETURN_IF_ERROR(s.Run());
    if (c_.Changes() > 0) return true;
  }
  {
    // Never there (a process starting): nothing could have been taken from it.
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("INSERT INTO lease_owners(owner, lease_until, reaped) "
                                           "VALUES (?1, ?2, 0) ON CONFLICT (owner) DO NOTHING"));
    s.Bind(1, owner).Bind(2, lease_until);
    OB_RETURN_IF_ERROR(s.Run());
    if (c_.Changes() > 0) return true;
  }
  // Taken back: everything it held is gone (rows it leased after the take-back are given back
  // too); start a fresh lease.
  OB_RETURN_IF_ERROR(ReleaseOwnerRows(owner));
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE lease_owners SET lease_until = ?2, reaped = 0 "
                                         "WHERE owner = ?1"));
  s.Bind(1, owner).Bind(2, lease_until);
  OB_RETURN_IF_ERROR(s.Run());
  return false;
}

namespace {

// Rows per statement when PostgreSQL gives leases back: each statement is a round trip there.
constexpr std::size_t kGiveBackChunk = 500;

// ReleaseLeases and DeferLeases: the rows still leased to `owner` are given back (due no
// earlier than `not_before` when it is set); returns how many were not (stale). SQLite runs a
// statement per row (in-process calls); PostgreSQL one per chunk, the ids as an array literal.
// A row named twice is given back once and counted stale once, as row by row.
Result<int> GiveLeasesBack(Conn& c, std::string_view owner, const std::vector<DeliveryRowId>& ids,
                           std::optional<UnixMs> not_before) {
  std::string sql = "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL";
  if (not_before) {
    sql +=
        ", next_attempt_at = CASE WHEN next_attempt_at IS NOT NULL AND next_attempt_at < ?3 THEN "
        "?3 ELSE next_attempt_at END";
  }
  const bool by_row = c.dialect() == Dialect::kSqlite;
  sql += by_row ? " WHERE id = ?1" : " WHERE id = ANY(?1::bigint[])";
  sql += " AND lease_owner = ?2";
  std::int64_t given_back = 0;
  const std::size_t chunk = by_row ? 1 : kGiveBackChunk;
  for (std::size_t start = 0; start < ids.size(); start += chunk) {
    const std::size_t end = std::min(ids.size(), start + chunk);
    OB_ASSIGN_OR_RETURN(Stmt s, c.Prepare(sql));
    std::string array;
    if (by_row) {
      s.Bind(1, ids[start].value);
    } else {
      ArrayLiteral a;
      for (std::size_t i = start; i < end; ++i) a.Add(ids[i].value);
      array = a.Take();
      s.Bind(1, array);
    }
    s.Bind(2, owner);
    if (not_before) s.Bind(3, *not_before);
    OB_RETURN_IF_ERROR(s.Run());
    given_back += c.Changes();
  }
  const int stale = static_cast<int>(static_cast<std::int64_t>(ids.size()) - given_back);
  if (stale > 0) Counters::StaleLeaseWrites(static_cast<std::uint64_t>(stale));
  return stale;
}

}  // namespace

Result<int> SqlTxn::ReleaseLeases(std::string_view owner, const std::vector<DeliveryRowId>& ids) {
  return GiveLeasesBack(c_, owner, ids, std::nullopt);
}

Result<int> SqlTxn::DeferLeases(std::string_view owner, const std::vector<DeliveryRowId>& ids,
                                UnixMs not_before) {
  return GiveLeasesBack(c_, owner, ids, not_before);
}

Result<int> SqlTxn::ReleaseUnheld(std::string_view owner, UnixMs leased_until_at_most,
                                  const std::vector<DeliveryRowId>& held) {
  std::vector<DeliveryRowId> stray;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT id FROM deliveries WHERE lease_owner = ?1 AND "
                                           "lease_until <= ?2"));
    s.Bind(1, owner).Bind(2, leased_until_at_most);
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      const DeliveryRowId id(s.Int(0));
      if (!std::binary_search(held.begin(), held.end(), id)) stray.push_back(id);
    }
  }
  if (stray.empty()) return 0;
  OB_ASSIGN_OR_RETURN(int stale, ReleaseLeases(owner, stray));
  return static_cast<int>(stray.size()) - stale;
}

Status SqlTxn::ReleaseOwner(std::string_view owner) {
  lease_facts_ = {};
  OB_RETURN_IF_ERROR(ReleaseOwnerRows(owner));
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("DELETE FROM lease_owners WHERE owner = ?1"));
  s.Bind(1, owner);
  return s.Run();
}

namespace {

// What RecordOutcomes did with each outcome of a batch.
// kAppliedInOrder: applied to a row that carries its target (deliveries.target_id: a row of an
// ordered subscription's event about a target), which alone can be a head with rows held behind
// it (PostgreSQL's outcomes say so; SQLite's rows are kApplied).
enum class Applied : std::uint8_t { kStale, kApplied, kAppliedTest, kAppliedInOrder };

// The next attempt's time that an outcome asks for: only a failed or pending delivery has one.
std::optional<UnixMs> NextAttemptAt(const Outcome& o) {
  if (o.new_status == DeliveryStatus::kFailed || o.new_status == DeliveryStatus::kPending) {
    return o.next_attempt_at.value_or(o.attempt.attempted_at);
  }
  return std::nullopt;
}

// Attempts per INSERT on SQLite (11 parameters a row): one statement, whose cursors on the
// table and its three indexes are opened once, for the attempts of a batch of outcomes instead of
// one statement each (issue 8, the writer's CPU per outcome).
inline constexpr std::size_t kAttemptInsertChunk = 50;

const std::string& InsertAttemptsSql(std::size_t n) {
  static const std::vector<std::string> texts = [] {
    std::vector<std::string> t(kAttemptInsertChunk + 1);
    for (std::size_t rows = 1; rows <= kAttemptInsertChunk; ++rows) {
      std::string sql =
          "INSERT INTO attempts(tenant_id, delivery_row_id, subscription_id, event_id, "
          "delivery_id, attempt, attempted_at, http_status, duration_ms, error, response_snippet, "
          "test) VALUES ";
      for (std::size_t r = 0; r < rows; ++r) {
        auto p = [&](std::size_t k) { return "?" + std::to_string(r * 11 + k); };
        if (r > 0) sql += ", ";
        sql += "(" + p(1) + ", " + p(2) + ", " + p(3) + ", ''";
        for (std::size_t k = 4; k <= 11; ++k) sql += ", " + p(k);
        sql += ")";
      }
      t[rows] = std::move(sql);
    }
    return t;
  }();
  return texts[n];
}

// SQLite: one fenced UPDATE per outcome (each an in-process call), then the applied outcomes'
// attempts in multi-row INSERTs.
Status RecordOutcomesRowByRow(Conn& c, std::string_view owner, const std::vector<Outcome>& outcomes,
                              std::vector<Applied>& result) {
  std::vector<std::size_t> logged;  // the outcomes applied: their attempts go in the log
  logged.reserve(outcomes.size());
  for (std::size_t index = 0; index < outcomes.size(); ++index) {
    const Outcome& o = outcomes[index];
    // Fenced: only a row still leased to the caller. A delivery cancelled while its attempt was
    // in flight stays cancelled unless the attempt succeeded. A test delivery (CONTRACT §13) has
    // one attempt: a failure is final (`dead`), whatever the caller asked. (Every expression
    // sees the row as it was before this UPDATE.) RecordOutcomesInBatches says the same for
    // PostgreSQL.
    // The row's `test` is part of the fence instead of a RETURNING (issue 8, the writer's CPU
    // per outcome): SQLite collects RETURNING rows in an ephemeral table, opened and closed for
    // every outcome (about a tenth of the outcome's CPU). An ordinary row matches the first
    // try; a test row matches the second; a row matching neither was not leased to the caller.
    bool test = false;
    bool updated = false;
    for (const bool as_test : {o.test, !o.test}) {
      OB_ASSIGN_OR_RETURN(
          Stmt s, c.Prepare("UPDATE deliveries SET status = CASE WHEN status = 'cancelled' AND "
                            "?1 <> 'succeeded' THEN 'cancelled' WHEN test = 1 AND ?1 <> "
                            "'succeeded' THEN 'dead' ELSE ?1 END, next_attempt_at = CASE WHEN "
                            "(status = 'cancelled' OR test = 1) AND ?1 <> 'succeeded' THEN NULL "
                            "ELSE ?3 END, attempts = ?2, cycle_attempts = cycle_attempts + 1, "
                            "last_delivery_id = NULL, lease_owner = NULL, lease_until = NULL "
                            "WHERE id = ?4 AND tenant_id = ?5 AND lease_owner = ?6 AND test = ?7"));
      s.Bind(1, ToString(o.new_status))
          .Bind(2, o.attempt.attempt)
          .Bind(3, NextAttemptAt(o))
          .Bind(4, o.delivery.value)
          .Bind(5, o.tenant.value)
          .Bind(6, owner)
          .Bind(7, std::int64_t{as_test ? 1 : 0});
      OB_RETURN_IF_ERROR(s.Run());
      if (c.Changes() > 0) {
        test = as_test;
        updated = true;
        break;
      }
    }
    if (!updated) {
      result[index] = Applied::kStale;
      continue;
    }
    result[index] = test ? Applied::kAppliedTest : Applied::kApplied;
    logged.push_back(index);
  }
  for (std::size_t start = 0; start < logged.size(); start += kAttemptInsertChunk) {
    const std::size_t n = std::min(kAttemptInsertChunk, logged.size() - start);
    OB_ASSIGN_OR_RETURN(Stmt s, c.Prepare(InsertAttemptsSql(n)));
    for (std::size_t r = 0; r < n; ++r) {
      const std::size_t index = logged[start + r];
      const Outcome& o = outcomes[index];
      const AttemptRecord& a = o.attempt;
      const int b = static_cast<int>(r * 11);
      s.Bind(b + 1, o.tenant.value)
          .Bind(b + 2, o.delivery.value)
          .Bind(b + 3, o.subscription.value)
          .Bind(b + 4, a.delivery_id)
          .Bind(b + 5, a.attempt)
          .Bind(b + 6, a.attempted_at)
          .Bind(b + 7, a.http_status)
          .Bind(b + 8, a.duration_ms)
          .Bind(b + 9, a.error)
          .Bind(b + 10, a.response_snippet)
          .Bind(b + 11, result[index] == Applied::kAppliedTest);
    }
    OB_RETURN_IF_ERROR(s.Run());
  }
  return {};
}

// Outcomes per pair of statements on PostgreSQL: bounds a statement's parameters (an attempt's
// response snippet is up to 4 KB: 2 MB at most) while a batch stays a few round trips.
constexpr std::size_t kOutcomeChunk = 500;

// PostgreSQL: every statement is a round trip, so a chunk of outcomes is one fenced UPDATE of
// all its rows (the same CASE expressions as RecordOutcomesRowByRow, the outcomes' values
// unnested from arrays) and one INSERT of the attempts of the rows it changed.
Status RecordOutcomesInBatches(Conn& c, std::string_view owner,
                               const std::vector<Outcome>& outcomes, std::vector<Applied>& result) {
  // One row is changed once per statement: a later outcome for the same row (and tenant) in the
  // batch is stale, as it is row by row (the first one cleared the lease, or was stale itself).
  std::vector<std::size_t> members;
  members.reserve(outcomes.size());
  {
    std::set<std::pair<std::int64_t, std::int64_t>> seen;
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      result[i] = Applied::kStale;
      if (seen.emplace(outcomes[i].delivery.value, outcomes[i].tenant.value).second) {
        members.push_back(i);
      }
    }
  }
  std::map<std::pair<std::int64_t, std::int64_t>, std::size_t> by_row;  // in one chunk
  for (std::size_t start = 0; start < members.size(); start += kOutcomeChunk) {
    const std::size_t end = std::min(members.size(), start + kOutcomeChunk);
    {
      ArrayLiteral ids;
      ArrayLiteral tenants;
      ArrayLiteral statuses;
      ArrayLiteral attempts;
      ArrayLiteral next;
      by_row.clear();
      for (std::size_t m = start; m < end; ++m) {
        const Outcome& o = outcomes[members[m]];
        ids.Add(o.delivery.value);
        tenants.Add(o.tenant.value);
        statuses.Add(ToString(o.new_status));
        attempts.Add(std::int64_t{o.attempt.attempt});
        next.Add(NextAttemptAt(o));
        by_row.emplace(std::make_pair(o.delivery.value, o.tenant.value), members[m]);
      }
      // The UPDATE finds its rows by primary key, one probe per outcome, so that a batch costs
      // its own rows (PostgresStore.OutcomesOfABatchReadOnlyTheirOwnRows: a table of 20,500
      // rows never analyzed; and 210,000 analyzed, by hand). Three plans read more:
      // - with the fence `lease_owner = $6`, a bitmap scan of deliveries_leased (every row
      //   leased to the process, expected to be a few by statistics taken with none leased, or
      //   none at all) hash-joined to the batch: 47 ms on average over the batches of K=10 that
      //   auto_explain logged, those above 30 ms (issue 8). So the fence is one no index serves:
      //   `IS NOT DISTINCT FROM` (the bound owner is never NULL, so it means `=`);
      // - with the join to unnest alone, a sequential scan of the table hash-joined to the batch,
      //   cheaper in the planner's eyes than 500 probes until the table holds about 100,000
      //   rows. So the rows are also named by `d.id = ANY($1)`, which the primary key serves and
      //   which a scan would test against the whole array for each row;
      // - a plan kept from runs on a small table (a sequential scan, nested with the batch). So
      //   the statement is planned at each run, for the table and the batch as they are
      //   (plan_cache_mode, as the claim). The setting goes with the statement's round trip
      //   (alone, the first time a connection prepares the statement), its end with the next.
      OB_ASSIGN_OR_RETURN(Stmt set, c.Prepare("SELECT set_config('plan_cache_mode', "
                                              "'force_custom_plan', true)"));
      OB_RETURN_IF_ERROR(set.RunLater());
      OB_ASSIGN_OR_RETURN(
          Stmt s,
          c.Prepare("UPDATE deliveries AS d SET status = CASE WHEN d.status = 'cancelled' AND "
                    "o.status <> 'succeeded' THEN 'cancelled' WHEN d.test = 1 AND o.status <> "
                    "'succeeded' THEN 'dead' ELSE o.status END, next_attempt_at = CASE WHEN "
                    "(d.status = 'cancelled' OR d.test = 1) AND o.status <> 'succeeded' THEN "
                    "NULL ELSE o.next END, attempts = o.attempts, cycle_attempts = "
                    "d.cycle_attempts + 1, last_delivery_id = NULL, lease_owner = NULL, "
                    "lease_until = NULL FROM unnest(?1::bigint[], ?2::bigint[], ?3::text[], "
                    "?4::bigint[], ?5::bigint[]) AS o(id, tenant, status, attempts, next) WHERE "
                    "d.id = ANY(?1::bigint[]) AND d.id = o.id AND d.tenant_id = o.tenant AND "
                    "d.lease_owner IS NOT DISTINCT FROM ?6 RETURNING d.id, d.tenant_id, d.test, "
                    "(d.target_id IS NOT NULL)::int"));
      const std::string ids_text = ids.Take();
      const std::string tenants_text = tenants.Take();
      const std::string statuses_text = statuses.Take();
      const std::string attempts_text = attempts.Take();
      const std::string next_text = next.Take();
      s.Bind(1, ids_text)
          .Bind(2, tenants_text)
          .Bind(3, statuses_text)
          .Bind(4, attempts_text)
          .Bind(5, next_text)
          .Bind(6, owner);
      for (;;) {
        OB_ASSIGN_OR_RETURN(const bool row, s.Step());
        if (!row) break;
        auto it = by_row.find({s.Int(0), s.Int(1)});
        if (it == by_row.end())
          return Fail(core::Error::Internal("an updated delivery is unknown"));
        result[it->second] = s.Int(2) != 0   ? Applied::kAppliedTest
                             : s.Int(3) != 0 ? Applied::kAppliedInOrder
                                             : Applied::kApplied;
      }
      OB_ASSIGN_OR_RETURN(Stmt reset, c.Prepare("SET LOCAL plan_cache_mode TO DEFAULT"));
      OB_RETURN_IF_ERROR(reset.RunLater());
    }
    // The attempts of the rows changed, in the batch's order (their ids in that order).
    ArrayLiteral tenants;
    ArrayLiteral rows;
    ArrayLiteral subs;
    ArrayLiteral delivery_ids;
    ArrayLiteral numbers;
    ArrayLiteral times;
    ArrayLiteral http;
    ArrayLiteral durations;
    ArrayLiteral errors;
    ArrayLiteral snippets;
    ArrayLiteral tests;
    std::size_t inserting = 0;
    for (std::size_t m = start; m < end; ++m) {
      const std::size_t i = members[m];
      if (result[i] == Applied::kStale) continue;
      const Outcome& o = outcomes[i];
      const AttemptRecord& a = o.attempt;
      tenants.Add(o.tenant.value);
      rows.Add(o.delivery.value);
      subs.Add(o.subscription.value);
      delivery_ids.Add(std::string_view(a.delivery_id));
      numbers.Add(std::int64_t{a.attempt});
      times.Add(a.attempted_at);
      http.Add(a.http_status ? std::optional<std::int64_t>(*a.http_status) : std::nullopt);
      durations.Add(a.duration_ms);
      errors.Add(a.error);
      snippets.Add(a.response_snippet);
      tests.Add(std::int64_t{result[i] == Applied::kAppliedTest ? 1 : 0});
      ++inserting;
    }
    if (inserting == 0) continue;
    OB_ASSIGN_OR_RETURN(
        Stmt s,
        c.Prepare("INSERT INTO attempts(tenant_id, delivery_row_id, subscription_id, event_id, "
                  "delivery_id, attempt, attempted_at, http_status, duration_ms, error, "
                  "response_snippet, test) SELECT a.tenant, a.row_id, a.sub, '', a.delivery_id, "
                  "a.attempt, a.at, a.http, a.duration, a.error, a.snippet, a.test FROM "
                  "unnest(?1::bigint[], ?2::bigint[], ?3::bigint[], ?4::text[], ?5::bigint[], "
                  "?6::bigint[], ?7::bigint[], ?8::bigint[], ?9::text[], ?10::text[], "
                  "?11::bigint[]) WITH ORDINALITY AS a(tenant, row_id, sub, delivery_id, "
                  "attempt, at, http, duration, error, snippet, test, n) ORDER BY a.n"));
    const std::string texts[] = {tenants.Take(), rows.Take(),     subs.Take(), delivery_ids.Take(),
                                 numbers.Take(), times.Take(),    http.Take(), durations.Take(),
                                 errors.Take(),  snippets.Take(), tests.Take()};
    for (int k = 0; k < 11; ++k) s.Bind(k + 1, texts[k]);
    // With the next round trip (the task's flush, when nothing else follows). It inserts a row
    // per element of the arrays, built together above, or fails.
    OB_RETURN_IF_ERROR(s.RunLater());
  }
  return {};
}

}  // namespace

Result<std::vector<std::size_t>> SqlTxn::RecordOutcomes(std::string_view owner,
                                                        const std::vector<Outcome>& outcomes) {
  // Each outcome's row, fenced by the owner, and its attempt: row by row on SQLite, a few
  // statements per batch on PostgreSQL (a round trip each).
  std::vector<Applied> result(outcomes.size(), Applied::kStale);
  if (c_.dialect() == Dialect::kSqlite) {
    OB_RETURN_IF_ERROR(RecordOutcomesRowByRow(c_, owner, outcomes, result));
  } else {
    OB_RETURN_IF_ERROR(RecordOutcomesInBatches(c_, owner, outcomes, result));
  }
  std::vector<std::size_t> stale;
  std::vector<const Outcome*> applied;
  std::vector<std::int64_t> closed_in_order;  // PostgreSQL: ReleaseNextInOrder
  applied.reserve(outcomes.size());
  for (std::size_t index = 0; index < outcomes.size(); ++index) {
    if (result[index] == Applied::kStale) {
      stale.push_back(index);
      continue;
    }
    const Outcome& o = outcomes[index];
    if (result[index] == Applied::kAppliedInOrder && o.new_status != DeliveryStatus::kFailed) {
      closed_in_order.push_back(o.delivery.value);
    }
    const bool test = result[index] == Applied::kAppliedTest;
    // Test attempts stay out of the failure streak and the last success.
    if (!test) applied.push_back(&o);
    // outbound_deliveries_total and outbound_attempt_duration_seconds; test deliveries are never
    // counted (CONTRACT §13). A `dead` outcome of a delivery cancelled while its attempt was in
    // flight leaves it cancelled: not counted as dead (one read by key per dead outcome, which
    // are rare; the operational webhook's delivery.dead asks the same).
    if (!test && o.new_status == DeliveryStatus::kSucceeded) {
      tally_.succeeded_ms.push_back(o.attempt.duration_ms);
    } else if (!test) {
      tally_.failed_ms.push_back(o.attempt.duration_ms);
      if (o.new_status == DeliveryStatus::kDead) {
        OB_ASSIGN_OR_RETURN(const std::optional<DeliveryStatus> now_is,
                            GetDeliveryStatus(o.delivery));
        if (now_is == DeliveryStatus::kDead) ++tally_.dead;
      }
    }
  }
  if (!stale.empty()) Counters::StaleLeaseWrites(static_cast<std::uint64_t>(stale.size()));
  // A test delivery has no target, so it holds nothing back.
  OB_RETURN_IF_ERROR(ReleaseNextInOrder(applied, closed_in_order));

  // One subscription update per subscription of the batch, not per outcome: replay its outcomes
  // in time order and keep the last success, the first failure after it, and the failures
  // counted since (the streak that automatic disabling reads in O(1)).
  struct Agg {
    std::optional<UnixMs> last_success;
    std::optional<UnixMs> failing_since;
    std::int64_t failures = 0;  // since last_success (or in the batch, without one)
  };
  std::stable_sort(applied.begin(), applied.end(), [](const Outcome* a, const Outcome* b) {
    return a->attempt.attempted_at < b->attempt.attempted_at;
  });
  std::map<std::int64_t, Agg> by_sub;
  for (const Outcome* o : applied) {
    Agg& agg = by_sub[o->subscription.value];
    if (o->new_status == DeliveryStatus::kSucceeded) {
      agg.last_success = o->attempt.attempted_at;
      agg.failing_since.reset();
      agg.failures = 0;
    } else {
      if (!agg.failing_since) agg.failing_since = o->attempt.attempted_at;
      ++agg.failures;
    }
  }
  // These updates change only a subscription's health columns, which fan-out never reads: they
  // keep the writer's fan-out lists (issue 8: every batch of successes used to drop them, so
  // the publishes after it in the same transaction, and the next one, read them again).
  const FlagWhile neutral(fanout_cache_ ? &fanout_cache_->neutral : nullptr);
  for (const auto& [sub, agg] : by_sub) {
    if (agg.last_success) {
      OB_ASSIGN_OR_RETURN(
          Stmt s, c_.Prepare("UPDATE subscriptions SET last_success_at = CASE WHEN "
                             "COALESCE(last_success_at, 0) > ?2 THEN last_success_at ELSE ?2 END, "
                             "failing_since = ?3, failing_attempts = ?4 WHERE id = ?1"));
      s.Bind(1, sub).Bind(2, *agg.last_success).Bind(3, agg.failing_since).Bind(4, agg.failures);
      OB_RETURN_IF_ERROR(s.RunLater());  // PostgreSQL: with the next round trip
    } else if (agg.failing_since) {
      OB_ASSIGN_OR_RETURN(
          Stmt s, c_.Prepare("UPDATE subscriptions SET failing_since = COALESCE(failing_since, "
                             "?2), failing_attempts = CASE WHEN failing_since IS NULL THEN ?3 ELSE "
                             "failing_attempts + ?3 END WHERE id = ?1"));
      s.Bind(1, sub).Bind(2, *agg.failing_since).Bind(3, agg.failures);
      OB_RETURN_IF_ERROR(s.RunLater());
    }
  }
  return stale;
}

Result<std::optional<UnixMs>> SqlTxn::NextDueAt() {
  // The first unheld due row, or a held row of a subscription that is not paused (held back by
  // ordering, or, on SQLite, let go of by the next claim; ReleaseHeldRows). The held rows are read
  // one by one: the dispatcher no longer asks this (its claims are paced; ClaimPacer), only the
  // tests do.
  static const std::string kSql[2] = {
      "SELECT MIN(at) FROM (SELECT * FROM (SELECT d.next_attempt_at AS at FROM deliveries d "
      "CROSS JOIN subscriptions s ON s.id = d.subscription_id WHERE d.status IN ('pending', "
      "'failed') AND d.lease_owner IS NULL AND d.held = 0 AND d.next_attempt_at IS NOT NULL AND "
      "s.enabled = 1 AND s.deleted = 0 AND s.paused = 0 ORDER BY d.next_attempt_at LIMIT 1) "
      "UNION ALL SELECT MIN(d.next_attempt_at) FROM deliveries d CROSS JOIN subscriptions s ON "
      "s.id = d.subscription_id WHERE d." OB_HELD_INDEX
      " AND d.status IN ('pending', 'failed') "
      "AND d.lease_owner IS NULL AND s.enabled = 1 AND s.deleted = 0 AND s.paused = 0)",
      "SELECT MIN(at) FROM (SELECT * FROM (SELECT d.next_attempt_at AS at FROM deliveries d " +
          JoinDialect(Dialect::kPostgres) +
          " subscriptions s ON s.id = d.subscription_id WHERE d.status IN ('pending', 'failed') "
          "AND d.lease_owner IS NULL AND d.held = 0 AND d.next_attempt_at IS NOT NULL AND "
          "s.enabled = 1 AND s.deleted = 0 AND s.paused = 0 ORDER BY d.next_attempt_at LIMIT 1) "
          "first UNION ALL SELECT MIN(d.next_attempt_at) FROM deliveries d JOIN subscriptions s "
          "ON s.id = d.subscription_id WHERE d." OB_HELD_INDEX
          " AND d.status IN ('pending', 'failed') AND d.lease_owner IS NULL AND s.enabled = 1 AND "
          "s.deleted = 0 AND s.paused = 0) due"};
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(kSql[c_.dialect() == Dialect::kSqlite ? 0 : 1]));
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<UnixMs>();
  return s.OptInt(0);  // SQLite's MIN is NULL when nothing is due
}

Result<ConfigChanges> SqlTxn::ChangedTenants(std::int64_t since) {
  ConfigChanges out;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT version FROM config_version WHERE id = 1"));
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) out.version = s.Int(0);
  }
  if (since <= 0) return out;
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT id, config_version FROM tenants WHERE "
                                         "config_version > ?1 ORDER BY id"));
  s.Bind(1, since);
  for (;;) {
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.tenants.emplace_back(s.Int(0));
    out.version = std::max(out.version, s.Int(1));
  }
  return out;
}

Result<std::optional<DeliveryStatus>> SqlTxn::GetDeliveryStatus(DeliveryRowId id) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT status FROM deliveries WHERE id = ?1"));
  s.Bind(1, id.value);
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<DeliveryStatus>();
  return ParseDeliveryStatus(s.Text(0));
}

Result<std::vector<DeliveryView>> SqlTxn::GetDeliveries(TenantId tenant, std::string_view event_id,
                                                        std::optional<ClientId> client) {
  std::vector<DeliveryView> views;
  {
    Params p;
    std::string sql =
        "SELECT d.id, d.subscription_id, s.client_id, d.status, d.next_attempt_at, "
        "COALESCE(p.data_json, d.data_json), d.last_delivery_id FROM deliveries d JOIN "
        "subscriptions s ON s.id = d.subscription_id LEFT JOIN payloads p ON p.id = d.payload_id "
        "WHERE d.event_id = ";
    sql += p.Add(std::string(event_id));
    sql += " AND d.tenant_id = " + p.Add(tenant.value);
    if (client) sql += " AND s.client_id = " + p.Add(client->value);
    sql += " ORDER BY d.id";
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
    p.BindTo(s);
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      DeliveryView v;
      v.id = DeliveryRowId(s.Int(0));
      v.subscription = SubscriptionId(s.Int(1));
      v.client = ClientId(s.Int(2));
      v.status = StatusFromText(s.Text(3));
      v.next_attempt_at = s.OptInt(4);
      v.data_json = s.Text(5);
      OB_RETURN_IF_ERROR(UnpackRendering(v.data_json));
      v.last_delivery_id = s.OptText(6);
      views.push_back(std::move(v));
    }
  }
  for (DeliveryView& v : views) {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT " OB_ATTEMPT_COLS " FROM attempts a WHERE "
                                           "a.delivery_row_id = ?1 ORDER BY a.id"));
    s.Bind(1, v.id.value);
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      v.attempts.push_back(ReadAttempt(s, 0));
    }
    // Rows attempted since SQLite migration 8 / PostgreSQL 6 keep no copy of their last
    // attempt's deliveryId (RecordOutcomes): it is that of the newest attempt.
    if (!v.last_delivery_id && !v.attempts.empty()) {
      v.last_delivery_id = v.attempts.back().delivery_id;
    }
  }
  return views;
}

Result<PageResult<AttemptRow>> SqlTxn::ListAttempts(TenantId tenant, SubscriptionId sub,
                                                    const AttemptFilter& filter, const Page& page) {
  OB_ASSIGN_OR_RETURN(auto before, IdCursor(page));
  int limit = Limit(page);
  Params p;
  std::string sql =
      "SELECT a.id, d.event_id, e.event_type, d.status, a.test, " OB_ATTEMPT_COLS
      " FROM attempts a JOIN deliveries d ON d.id = a.delivery_row_id JOIN events e ON "
      "e.event_id = d.event_id WHERE a.subscription_id = ";
  sql += p.Add(sub.value);
  sql += " AND a.tenant_id = " + p.Add(tenant.value);
  if (filter.status) sql += " AND d.status = " + p.Add(std::string(ToString(*filter.status)));
  if (filter.since) sql += " AND a.attempted_at >= " + p.Add(*filter.since);
  if (filter.until) sql += " AND a.attempted_at < " + p.Add(*filter.until);
  if (before) sql += " AND a.id < " + p.Add(*before);
  sql += " ORDER BY a.id DESC LIMIT " + p.Add(limit + 1);
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
  p.BindTo(s);
  std::vector<AttemptRow> rows;
  for (;;) {
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    AttemptRow r;
    r.row_id = s.Int(0);
    r.event_id = s.Text(1);
    r.event_type = s.Text(2);
    r.status = StatusFromText(s.Text(3));
    r.test = s.Int(4) != 0;
    r.attempt = ReadAttempt(s, 5);
    rows.push_back(std::move(r));
  }
  return Paginate(std::move(rows), limit,
                  [](const AttemptRow& r) { return std::to_string(r.row_id); });
}

Result<Txn::Redelivered> SqlTxn::Redeliver(TenantId tenant, std::string_view event_id,
                                           std::optional<SubscriptionId> sub,
                                           std::optional<ClientId> client, UnixMs now) {
  // The rows asked for, with their parameters added to `p`.
  auto match = [&](Params& p) {
    std::string where = " WHERE event_id = " + p.Add(std::string(event_id));
    const std::string t = p.Add(tenant.value);
    where += " AND tenant_id = " + t;
    if (sub) where += " AND subscription_id = " + p.Add(sub->value);
    where += " AND test = 0";  // a test webhook is sent once (CONTRACT §13): send a new one
    where += " AND subscription_id IN (SELECT id FROM subscriptions WHERE tenant_id = " + t +
             " AND deleted = 0";
    if (client) where += " AND client_id = " + p.Add(client->value);
    return where + ")";
  };
  // Held by a process: queued in its memory or in flight. SQLite: one process, whose start let
  // go of every lease left in the file. PostgreSQL: held by a process whose lease is live; a
  // dead process's rows (its lease run out, not yet taken back by a claim) are reopened, as
  // they were before.
  const bool pg = c_.dialect() == Dialect::kPostgres;
  auto held = [&](Params& p) {
    std::string sql = "lease_owner IS NOT NULL";
    if (pg) {
      sql +=
          " AND lease_owner IN (SELECT owner FROM lease_owners WHERE reaped = 0 AND "
          "lease_until >= " +
          p.Add(now) + ")";
    }
    return sql;
  };
  Redelivered result;
  Params p;
  std::string sql =
      "UPDATE deliveries SET status = 'pending', cycle_attempts = 0, next_attempt_at = ";
  sql += p.Add(now);
  sql += ", lease_owner = NULL, lease_until = NULL";
  // SQLite: a row reopened while its subscription is disabled waits until it is enabled again,
  // held (3), out of deliveries_due: not read by every claim meanwhile (ReleaseHeldRows lets go
  // of it once the subscription is enabled).
  // PostgreSQL: 0, for a row a process of the release before closed still held (the next claim
  // holds it again if it is held back).
  sql += c_.dialect() == Dialect::kSqlite ? ", held = " OB_HELD_IF_DISABLED("held") : ", held = 0";
  sql += match(p) + " AND NOT (" + held(p) + ")";
  if (pg) {
    // One statement, one snapshot: the update and the count of the held rows agree (as two
    // statements, an outcome committing between them left a row neither reopened nor counted).
    std::string both = "WITH reopened AS (" + sql +
                       " RETURNING 1) SELECT (SELECT count(*) FROM "
                       "reopened), (SELECT count(*) FROM deliveries" +
                       match(p) + " AND " + held(p) + ")";
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(both));
    p.BindTo(s);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) {
      result.reopened = static_cast<int>(s.Int(0));
      result.in_flight = static_cast<int>(s.Int(1));
    }
  } else {
    // SQLite: one writer; nothing commits between the two.
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
    p.BindTo(s);
    OB_RETURN_IF_ERROR(s.Run());
    result.reopened = static_cast<int>(c_.Changes());
    Params q;
    OB_ASSIGN_OR_RETURN(
        Stmt c, c_.Prepare("SELECT count(*) FROM deliveries" + match(q) + " AND " + held(q)));
    q.BindTo(c);
    OB_ASSIGN_OR_RETURN(bool row, c.Step());
    if (row) result.in_flight = static_cast<int>(c.Int(0));
  }
  const int changed = result.reopened;
  if (changed > 0) {
    tally_.due_rows_added = true;
    // A row reopened for an ordered subscription takes its place in its target's order: a row
    // closed before the subscription became ordered (or before SQLite migration 11 /
    // PostgreSQL 9) has no order yet (OB_NOT_BLOCKED).
    OB_ASSIGN_OR_RETURN(Stmt f, c_.Prepare(OB_FILL_EVENT_ORDER
                                           " AND deliveries.event_id = ?1 AND "
                                           "deliveries.subscription_id IN (SELECT id FROM "
                                           "subscriptions WHERE tenant_id = ?2 AND ordered = 1)"));
    f.Bind(1, event_id).Bind(2, tenant.value);
    OB_RETURN_IF_ERROR(f.Run());
  }
  return result;
}

Result<int> SqlTxn::RecoverDeliveries(TenantId tenant, SubscriptionId sub, UnixMs since,
                                      UnixMs now) {
  // All of it in this one transaction (RecoverInChunks gives each step its own).
  int total = 0;
  RecoverCursor cursor;
  while (!cursor.done) {
    OB_ASSIGN_OR_RETURN(RecoverStep step,
                        RecoverDeliveriesStep(tenant, sub, since, now, cursor, kRecoverChunkRows));
    total += step.recovered;
    cursor = step.next;
  }
  return total;
}

Result<RecoverStep> SqlTxn::RecoverDeliveriesStep(TenantId tenant, SubscriptionId sub, UnixMs since,
                                                  UnixMs now, RecoverCursor cursor, int limit) {
  RecoverStep step;
  step.next = cursor;
  if (cursor.done) return step;
  // The window: the next `limit` rows of one status in id order, read from the index
  // deliveries_subscription (subscription_id, status, next_attempt_at, then the id: SQLite's
  // rowid, PostgreSQL's fourth column). A dead or cancelled row has no due time (RecordOutcomes,
  // CancelOpenDeliveries), so `next_attempt_at IS NULL` pins the third column and the range is
  // in id order: no sort, however many rows the subscription has.
  std::optional<std::int64_t> last;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT MAX(w.id) FROM (SELECT id FROM deliveries "
                                           "WHERE subscription_id = ?1 AND status = ?2 AND "
                                           "status <> 'succeeded' AND next_attempt_at IS NULL "
                                           "AND id > ?3 ORDER BY next_attempt_at, id LIMIT ?4) "
                                           "w"));
    s.Bind(1, sub.value).Bind(2, ToString(cursor.status)).Bind(3, cursor.after).Bind(4, limit);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) last = s.OptInt(0);
  }
  if (!last) {
    // This status is walked to its end: cancelled rows next, or done.
    if (cursor.status == DeliveryStatus::kDead) {
      step.next = RecoverCursor{DeliveryStatus::kCancelled, 0, false};
    } else {
      step.next.done = true;
    }
    return step;
  }
  // Within the window, the rows of the tenant's live subscription created since `since`. SQLite:
  // those of a disabled subscription come back held (3), as in Redeliver.
#define OB_RECOVER_SQL(held)                                                                      \
  "UPDATE deliveries SET status = 'pending', cycle_attempts = 0, next_attempt_at = ?5, "          \
  "lease_owner = NULL, lease_until = NULL" held                                                   \
  " WHERE subscription_id = ?1 AND status = ?2 AND status <> 'succeeded' AND next_attempt_at IS " \
  "NULL AND id > ?3 AND id <= ?4 AND tenant_id = ?6 AND created_at >= ?7 AND test = 0 AND "       \
  "EXISTS (SELECT 1 FROM subscriptions s WHERE s.id = ?1 AND s.tenant_id = ?6 AND s.deleted = 0)"
  static const std::string kRecoverSql[2] = {OB_RECOVER_SQL(", held = " OB_HELD_IF_DISABLED("0")),
                                             OB_RECOVER_SQL(", held = 0")};
#undef OB_RECOVER_SQL
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(kRecoverSql[c_.dialect() == Dialect::kSqlite ? 0 : 1]));
  s.Bind(1, sub.value)
      .Bind(2, ToString(cursor.status))
      .Bind(3, cursor.after)
      .Bind(4, *last)
      .Bind(5, now)
      .Bind(6, tenant.value)
      .Bind(7, since);
  OB_RETURN_IF_ERROR(s.Run());
  step.recovered = static_cast<int>(c_.Changes());
  step.next.after = *last;
  if (step.recovered > 0) {
    tally_.due_rows_added = true;
    // The window's reopened rows of an ordered subscription take their place in their target's
    // order, as in Redeliver: those closed before it became ordered have none yet.
    OB_ASSIGN_OR_RETURN(
        Stmt f, c_.Prepare(OB_FILL_EVENT_ORDER
                           " AND deliveries.subscription_id = ?1 AND deliveries.status = "
                           "'pending' AND deliveries.next_attempt_at = ?2 AND deliveries.id > ?3 "
                           "AND deliveries.id <= ?4 AND EXISTS (SELECT 1 FROM subscriptions s "
                           "WHERE s.id = ?1 AND s.ordered = 1)"));
    f.Bind(1, sub.value).Bind(2, now).Bind(3, cursor.after).Bind(4, *last);
    OB_RETURN_IF_ERROR(f.Run());
  }
  return step;
}

}  // namespace outbound::store::sql

namespace outbound::store {

Status UnpackRendering(std::string& data) {
  if (!sql::IsPackedPayload(data)) return {};
  std::optional<std::string> text = sql::UnpackPayload(data);
  if (!text) return core::Fail(core::Error::Internal("a stored payload does not unpack (damaged)"));
  data = std::move(*text);
  return {};
}

}  // namespace outbound::store
