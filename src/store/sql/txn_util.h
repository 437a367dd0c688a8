// Internal to store/sql: what the area files of SqlTxn share (sql_txn.h): early-return macros,
// column lists and row readers, paging. Included only by store/sql/*.cpp.
#pragma once

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>

#include "core/catalog.h"
#include "store/counters.h"
#include "store/sql/sql_txn.h"

// Early returns on error, in the manner of absl's ASSIGN_OR_RETURN. Local to store/sql.
#define OB_CONCAT_INNER(a, b) a##b
#define OB_CONCAT(a, b) OB_CONCAT_INNER(a, b)
#define OB_ASSIGN_OR_RETURN(lhs, expr) \
  OB_ASSIGN_OR_RETURN_IMPL(OB_CONCAT(res_, __LINE__), lhs, expr)
// `tmp` and `lhs` name or declare variables: they cannot be parenthesised.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define OB_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)                   \
  auto tmp = (expr);                                               \
  if (!tmp) return ::outbound::core::Fail(std::move(tmp).error()); \
  lhs = std::move(*tmp)
// NOLINTEND(bugprone-macro-parentheses)
#define OB_RETURN_IF_ERROR(expr)                                                   \
  do {                                                                             \
    auto ob_status_ = (expr);                                                      \
    if (!ob_status_) return ::outbound::core::Fail(std::move(ob_status_).error()); \
  } while (0)

namespace outbound::store::sql::util {

using core::Fail;

inline constexpr int kMaxLimit = 10000;
// Rows per multi-row INSERT (7 parameters each; SQLite allows 32,766, PostgreSQL 65,535).
// How long after a take-back the owner's rows are given back again at every claim (ReapExpired
// Owners).
inline constexpr UnixMs kRecentTakeBackMs = 10LL * 60 * 1000;
inline constexpr std::size_t kDeliveryInsertChunk = 100;

// The id of the row an `INSERT ... RETURNING id` statement inserted.
inline Result<std::int64_t> InsertedId(Stmt& s) {
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Fail(core::Error::Internal("an insert returned no id"));
  const std::int64_t id = s.Int(0);
  OB_RETURN_IF_ERROR(s.Run());
  return id;
}

// SQLite: the first of `n` ids for rows of `table` that the writer inserts with their ids named
// (deliveries, payloads and events: row id tables without AUTOINCREMENT), MAX(id) + 1, the id
// SQLite would choose itself (one descent to the table's last leaf). Only the writer inserts,
// so they are free until its transaction ends. An error when they would pass the largest row id
// (SQLite then picks free ids at random; a file gets there only by hand).
inline Result<std::int64_t> NextRowId(Conn& c, std::string_view table, std::size_t n) {
  OB_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT MAX(id) FROM " + std::string(table)));
  OB_ASSIGN_OR_RETURN(const bool row, s.Step());
  const std::int64_t max = row ? s.OptInt(0).value_or(0) : 0;
  if (max < 0 || static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() - max) <= n) {
    return Fail(core::Error::Internal("the row ids of " + std::string(table) + " are used up"));
  }
  return max + 1;
}

inline int Limit(const Page& page) { return std::clamp(page.limit, 1, kMaxLimit); }

inline core::Error BadCursor() {
  return core::Error::Invalid("cursor", "invalid_cursor", "cursor is not one this list gave out");
}

// Cursors of id-ordered lists: the last row's id in decimal.
inline Result<std::optional<std::int64_t>> IdCursor(const Page& page) {
  if (!page.after || page.after->empty()) return std::optional<std::int64_t>();
  std::int64_t v = 0;
  const std::string& s = *page.after;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0) return Fail(BadCursor());
  return std::optional<std::int64_t>(v);
}

// Positional parameters of a statement assembled from optional filters.
class Params {
 public:
  std::string Add(std::int64_t v) {
    values_.emplace_back(v);
    return "?" + std::to_string(values_.size());
  }
  std::string Add(std::string v) {
    values_.emplace_back(std::move(v));
    return "?" + std::to_string(values_.size());
  }
  void BindTo(Stmt& s) const {
    for (std::size_t i = 0; i < values_.size(); ++i) {
      const auto& v = values_[i];
      int idx = static_cast<int>(i + 1);
      if (std::holds_alternative<std::int64_t>(v)) {
        s.Bind(idx, std::get<std::int64_t>(v));
      } else {
        s.Bind(idx, std::string_view(std::get<std::string>(v)));
      }
    }
  }

 private:
  std::vector<std::variant<std::int64_t, std::string>> values_;
};

inline int KindCode(EntityKind kind) {
  switch (kind) {
    case EntityKind::kCustomer:
      return 0;
    case EntityKind::kLocation:
      return 1;
    case EntityKind::kContact:
      return 2;
    case EntityKind::kTarget:
      return 3;
  }
  return 0;
}

inline std::string_view KindName(EntityKind kind) {
  switch (kind) {
    case EntityKind::kCustomer:
      return "customer";
    case EntityKind::kLocation:
      return "location";
    case EntityKind::kContact:
      return "contact";
    case EntityKind::kTarget:
      return "target";
  }
  return "record";
}

inline DeliveryStatus StatusFromText(const std::string& s) {
  return ParseDeliveryStatus(s).value_or(DeliveryStatus::kPending);
}

// --- row readers (column order as in the SELECT lists below) ---

inline constexpr const char* kKeyCols =
    "id, tenant_id, kind, client_id, token_hash, prefix, created_at, revoked_at";

inline ApiKey ReadKey(const Stmt& s) {
  ApiKey k;
  k.id = KeyId(s.Int(0));
  k.tenant = TenantId(s.Int(1));
  k.kind = s.Int(2) == 1 ? KeyKind::kClient : KeyKind::kTenant;
  if (auto c = s.OptInt(3)) k.client = ClientId(*c);
  k.token_hash = s.Text(4);
  k.prefix = s.Text(5);
  k.created_at = s.Int(6);
  k.revoked_at = s.OptInt(7);
  return k;
}

#define OB_CLIENT_COLS(p)                                                                 \
  p "id, " p "tenant_id, " p "name, " p "source_system, " p "billing_details_allowed, " p \
    "created_at"

inline Client ReadClient(const Stmt& s, int c0) {
  Client c;
  c.id = ClientId(s.Int(c0));
  c.tenant = TenantId(s.Int(c0 + 1));
  c.name = s.Text(c0 + 2);
  c.source_system = s.Text(c0 + 3);
  c.billing_details_allowed = s.Int(c0 + 4) != 0;
  c.created_at = s.Int(c0 + 5);
  return c;
}

#define OB_TARGET_COLS                                                                     \
  "t.id, t.tenant_id, t.import_client_id, t.source_system, t.external_id, t.customer_id, " \
  "t.location_id, t.contact_id, t.title, t.description, t.earliest_start, t.latest_end, "  \
  "t.duration_minutes, t.internal_notes, t.status, t.cancel_reason, t.created_at, t.updated_at"

inline constexpr int kTargetColCount = 18;  // OB_TARGET_COLS

inline Target ReadTarget(const Stmt& s) {
  Target t;
  t.id = TargetId(s.Int(0));
  t.tenant = TenantId(s.Int(1));
  t.import_client = ClientId(s.Int(2));
  t.source_system = s.Text(3);
  t.external_id = s.Text(4);
  t.customer_id = s.Int(5);
  t.location_id = s.OptInt(6);
  t.contact_id = s.OptInt(7);
  t.title = s.Text(8);
  t.description = s.OptText(9);
  t.earliest_start = s.OptInt(10);
  t.latest_end = s.OptInt(11);
  t.duration_minutes = s.OptInt(12);
  t.internal_notes = s.OptText(13);
  t.status = s.Text(14);
  t.cancel_reason = s.OptText(15);
  t.created_at = s.Int(16);
  t.updated_at = s.Int(17);
  return t;
}

#define OB_EVENT_COLS                                                                  \
  "e.event_id, e.tenant_id, e.event_type, e.target_id, e.occurred_at, e.accepted_at, " \
  "e.origin_client_id, e.data, e.test"

inline Result<StoredEvent> ReadEvent(const Stmt& s) {
  StoredEvent e;
  e.record.event_id = s.Text(0);
  e.record.tenant = TenantId(s.Int(1));
  std::string type = s.Text(2);
  auto parsed = core::ParseEventType(type);
  if (s.Int(8) != 0) {
    // A test event (CONTRACT §13): "ordinavo.test" is no catalog type; test_type names it.
    e.test_type = type;
  } else if (!parsed) {
    return Fail(core::Error::Internal("stored event has unknown type " + type));
  }
  if (parsed) e.record.type = *parsed;
  e.record.target_id = s.OptInt(3);
  e.record.occurred_at = s.Int(4);
  e.record.accepted_at = s.Int(5);
  if (auto c = s.OptInt(6)) e.origin_client = ClientId(*c);
  auto data = core::ParseEventData(s.Text(7));
  if (!data) {
    return Fail(core::Error::Internal("stored event " + e.record.event_id + " has corrupt data"));
  }
  e.record.data = std::move(*data);
  return e;
}

#define OB_SUB_COLS                                                                              \
  "s.id, s.tenant_id, s.client_id, s.url, s.event_types, s.include_customer_context, "           \
  "s.include_contact_details, s.include_summary_preview, s.include_billing_details, s.ordered, " \
  "s.enabled, s.description, s.rate_limit_per_second, s.max_concurrency, s.headers, s.secret, "  \
  "s.previous_secret, s.previous_secret_expires_at, s.disabled_reason, s.disabled_at, "          \
  "s.last_success_at, s.failing_since, s.created_at, s.updated_at, s.kind, s.paused"
inline constexpr int kSubColCount = 26;

inline std::string EventTypesJson(const std::vector<std::string>& types) {
  boost::json::array a;
  for (const auto& t : types) a.emplace_back(t);
  return boost::json::serialize(a);
}

inline std::string HeadersJson(const std::vector<std::pair<std::string, std::string>>& headers) {
  boost::json::array a;
  for (const auto& [name, value] : headers) a.push_back(boost::json::array{name, value});
  return boost::json::serialize(a);
}

#define OB_ATTEMPT_COLS                                                               \
  "a.delivery_id, a.attempt, a.attempted_at, a.http_status, a.duration_ms, a.error, " \
  "a.response_snippet"

// deliveries_subscription (subscription_id, status, next_attempt_at) holds every row but the
// succeeded ones (SQLite migration 12, PostgreSQL 10): no statement reads a subscription's
// succeeded rows through it, and they are nearly all of the table, so a delivery that succeeds
// leaves the index instead of moving within it (issue 8: an index entry fewer per delivered row,
// a page fewer per commit). A statement meant to use the index has the index's term
// `status <> 'succeeded'` in its WHERE as it is, however redundant: SQLite uses a partial index
// only for a WHERE that contains the index's terms (`status IN ('pending', 'failed')` is not seen
// to imply it), and a plan made without the parameters' values cannot tell from `status = ?2`.
// The tests SqliteStore.SubscriptionStatementsUseTheirIndex and
// PostgresStore.SubscriptionPlansDoNotScanBigTables check recover's, the backlog's, cancelling's
// and ordering's statements (not ShedSubscriptions', which deliveries_leased serves as well).

// The start of an UPDATE that gives deliveries of ordered subscriptions their event's order
// (deliveries.target_id, occurred_at, event_row: OB_NOT_BLOCKED in deliveries.cpp): rows to
// events without a target are left as they are. The caller adds " AND " and which rows (open
// ones, of ordered subscriptions, `deliveries.target_id IS NULL`). Same text on both backends
// (UPDATE ... FROM: SQLite 3.33 and later).
#define OB_FILL_EVENT_ORDER                                                                  \
  "UPDATE deliveries SET target_id = e.target_id, occurred_at = e.occurred_at, event_row = " \
  "e.id FROM events e WHERE e.event_id = deliveries.event_id AND e.target_id IS NOT NULL "   \
  "AND deliveries.target_id IS NULL AND deliveries.status IN ('pending', 'failed') AND "     \
  "deliveries.status <> 'succeeded'"

inline AttemptRecord ReadAttempt(const Stmt& s, int c0) {
  AttemptRecord a;
  a.delivery_id = s.Text(c0);
  a.attempt = static_cast<int>(s.Int(c0 + 1));
  a.attempted_at = s.Int(c0 + 2);
  if (auto h = s.OptInt(c0 + 3)) a.http_status = static_cast<int>(*h);
  a.duration_ms = s.Int(c0 + 4);
  a.error = s.OptText(c0 + 5);
  a.response_snippet = s.OptText(c0 + 6);
  return a;
}

template <class T, class Cursor>
inline PageResult<T> Paginate(std::vector<T> rows, int limit, Cursor cursor_of) {
  PageResult<T> page;
  if (static_cast<int>(rows.size()) > limit) {
    rows.resize(static_cast<std::size_t>(limit));
    page.next = cursor_of(rows.back());
  }
  page.rows = std::move(rows);
  return page;
}

// The text form of a one-dimensional PostgreSQL array (array_in), bound as one text parameter
// and cast in the statement (`?1::bigint[]`): every element double-quoted with `"` and `\`
// escaped by a backslash, NULL unquoted. (A NUL byte in a text element becomes U+FFFD, as in
// any text parameter: PgStmt::BindText.)
class ArrayLiteral {
 public:
  ArrayLiteral() : text_("{") {}
  void Add(std::int64_t v) {
    Next();
    text_ += std::to_string(v);
  }
  void Add(std::optional<std::int64_t> v) {
    if (v) {
      Add(*v);
    } else {
      AddNull();
    }
  }
  void Add(std::string_view v) {
    Next();
    text_ += '"';
    for (char ch : v) {
      if (ch == '"' || ch == '\\') text_ += '\\';
      text_ += ch;
    }
    text_ += '"';
  }
  void Add(const std::optional<std::string>& v) {
    if (v) {
      Add(std::string_view(*v));
    } else {
      AddNull();
    }
  }
  void AddNull() {
    Next();
    text_ += "NULL";
  }
  // The literal; the builder is spent.
  std::string Take() {
    text_ += '}';
    return std::move(text_);
  }

 private:
  void Next() {
    if (text_.size() > 1) text_ += ',';
  }
  std::string text_;
};

}  // namespace outbound::store::sql::util
