#include "store/sql/sql_txn.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <map>
#include <unordered_map>
#include <utility>
#include <variant>

#include "core/catalog.h"
#include "store/counters.h"

// Early returns on error, in the manner of absl's ASSIGN_OR_RETURN. Local to this file.
#define OB_CONCAT_INNER(a, b) a##b
#define OB_CONCAT(a, b) OB_CONCAT_INNER(a, b)
#define OB_ASSIGN_OR_RETURN(lhs, expr) \
  OB_ASSIGN_OR_RETURN_IMPL(OB_CONCAT(res_, __LINE__), lhs, expr)
#define OB_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)                   \
  auto tmp = (expr);                                               \
  if (!tmp) return ::outbound::core::Fail(std::move(tmp).error()); \
  lhs = std::move(*tmp)
#define OB_RETURN_IF_ERROR(expr)                                                   \
  do {                                                                             \
    auto ob_status_ = (expr);                                                      \
    if (!ob_status_) return ::outbound::core::Fail(std::move(ob_status_).error()); \
  } while (0)

namespace outbound::store::sql {
namespace {

using core::Fail;

constexpr int kMaxLimit = 10000;
// Rows per multi-row INSERT (7 parameters each; SQLite allows 32,766, PostgreSQL 65,535).
constexpr std::size_t kDeliveryInsertChunk = 100;

// The id of the row an `INSERT ... RETURNING id` statement inserted.
Result<std::int64_t> InsertedId(Stmt& s) {
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Fail(core::Error::Internal("an insert returned no id"));
  const std::int64_t id = s.Int(0);
  OB_RETURN_IF_ERROR(s.Run());
  return id;
}

int Limit(const Page& page) { return std::clamp(page.limit, 1, kMaxLimit); }

core::Error BadCursor() {
  return core::Error::Invalid("cursor", "invalid_cursor", "cursor is not one this list gave out");
}

// Cursors of id-ordered lists: the last row's id in decimal.
Result<std::optional<std::int64_t>> IdCursor(const Page& page) {
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

int KindCode(EntityKind kind) {
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

std::string_view KindName(EntityKind kind) {
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

DeliveryStatus StatusFromText(const std::string& s) {
  return ParseDeliveryStatus(s).value_or(DeliveryStatus::kPending);
}

// --- row readers (column order as in the SELECT lists below) ---

constexpr const char* kKeyCols =
    "id, tenant_id, kind, client_id, token_hash, prefix, created_at, revoked_at";

ApiKey ReadKey(const Stmt& s) {
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

Client ReadClient(const Stmt& s, int c0) {
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

Target ReadTarget(const Stmt& s) {
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
  "e.origin_client_id, e.data"

Result<StoredEvent> ReadEvent(const Stmt& s) {
  StoredEvent e;
  e.record.event_id = s.Text(0);
  e.record.tenant = TenantId(s.Int(1));
  std::string type = s.Text(2);
  auto parsed = core::ParseEventType(type);
  if (!parsed) return Fail(core::Error::Internal("stored event has unknown type " + type));
  e.record.type = *parsed;
  e.record.target_id = s.OptInt(3);
  e.record.occurred_at = s.Int(4);
  e.record.accepted_at = s.Int(5);
  if (auto c = s.OptInt(6)) e.origin_client = ClientId(*c);
  boost::system::error_code ec;
  boost::json::value data = boost::json::parse(s.Text(7), ec);
  if (ec || !data.is_object()) {
    return Fail(core::Error::Internal("stored event " + e.record.event_id + " has corrupt data"));
  }
  e.record.data = std::move(data.as_object());
  return e;
}

#define OB_SUB_COLS                                                                              \
  "s.id, s.tenant_id, s.client_id, s.url, s.event_types, s.include_customer_context, "           \
  "s.include_contact_details, s.include_summary_preview, s.include_billing_details, s.ordered, " \
  "s.enabled, s.description, s.rate_limit_per_second, s.max_concurrency, s.headers, s.secret, "  \
  "s.previous_secret, s.previous_secret_expires_at, s.disabled_reason, s.disabled_at, "          \
  "s.last_success_at, s.failing_since, s.created_at, s.updated_at, s.kind"
constexpr int kSubColCount = 25;

std::string EventTypesJson(const std::vector<std::string>& types) {
  boost::json::array a;
  for (const auto& t : types) a.emplace_back(t);
  return boost::json::serialize(a);
}

std::string HeadersJson(const std::vector<std::pair<std::string, std::string>>& headers) {
  boost::json::array a;
  for (const auto& [name, value] : headers) a.push_back(boost::json::array{name, value});
  return boost::json::serialize(a);
}

#define OB_ATTEMPT_COLS                                                               \
  "a.delivery_id, a.attempt, a.attempted_at, a.http_status, a.duration_ms, a.error, " \
  "a.response_snippet"

AttemptRecord ReadAttempt(const Stmt& s, int c0) {
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
PageResult<T> Paginate(std::vector<T> rows, int limit, Cursor cursor_of) {
  PageResult<T> page;
  if (static_cast<int>(rows.size()) > limit) {
    rows.resize(static_cast<std::size_t>(limit));
    page.next = cursor_of(rows.back());
  }
  page.rows = std::move(rows);
  return page;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Tenants and keys

Result<Tenant> SqlTxn::CreateTenant(std::string_view name, UnixMs now) {
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare("INSERT INTO tenants(name, created_at) VALUES (?1, ?2) RETURNING id"));
  s.Bind(1, name).Bind(2, now);
  OB_ASSIGN_OR_RETURN(const std::int64_t new_id, InsertedId(s));
  return Tenant{TenantId(new_id), std::string(name), now};
}

Result<std::optional<Tenant>> SqlTxn::GetTenant(TenantId tenant) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT id, name, created_at FROM tenants WHERE id = ?1"));
  s.Bind(1, tenant.value);
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<Tenant>();
  return std::optional<Tenant>(Tenant{TenantId(s.Int(0)), s.Text(1), s.Int(2)});
}

Result<ApiKey> SqlTxn::CreateApiKey(const ApiKey& key) {
  OB_ASSIGN_OR_RETURN(
      Stmt s,
      c_.Prepare("INSERT INTO api_keys(tenant_id, kind, client_id, token_hash, prefix, "
                 "created_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id"));
  s.Bind(1, key.tenant.value)
      .Bind(2, key.kind == KeyKind::kClient ? 1 : 0)
      .Bind(4, key.token_hash)
      .Bind(5, key.prefix)
      .Bind(6, key.created_at)
      .Bind(7, key.revoked_at);
  if (key.client) s.Bind(3, key.client->value);
  OB_ASSIGN_OR_RETURN(const std::int64_t new_id, InsertedId(s));
  ApiKey out = key;
  out.id = KeyId(new_id);
  return out;
}

Result<std::optional<ApiKey>> SqlTxn::FindApiKeyByHash(std::string_view token_hash) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(std::string("SELECT ") + kKeyCols +
                                         " FROM api_keys WHERE token_hash = ?1 AND "
                                         "revoked_at IS NULL"));
  s.Bind(1, token_hash);
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<ApiKey>();
  return std::optional<ApiKey>(ReadKey(s));
}

Result<PageResult<ApiKey>> SqlTxn::ListApiKeys(TenantId tenant, const Page& page) {
  OB_ASSIGN_OR_RETURN(auto after, IdCursor(page));
  int limit = Limit(page);
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(std::string("SELECT ") + kKeyCols +
                                         " FROM api_keys WHERE tenant_id = ?1 AND id > ?2 "
                                         "ORDER BY id LIMIT ?3"));
  s.Bind(1, tenant.value).Bind(2, after.value_or(0)).Bind(3, limit + 1);
  std::vector<ApiKey> rows;
  for (;;) {
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    rows.push_back(ReadKey(s));
  }
  return Paginate(std::move(rows), limit,
                  [](const ApiKey& k) { return std::to_string(k.id.value); });
}

Result<bool> SqlTxn::RevokeApiKey(TenantId tenant, KeyId key, UnixMs now) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE api_keys SET revoked_at = ?3 WHERE id = ?1 AND "
                                         "tenant_id = ?2 AND revoked_at IS NULL"));
  s.Bind(1, key.value).Bind(2, tenant.value).Bind(3, now);
  OB_RETURN_IF_ERROR(s.Run());
  return c_.Changes() > 0;
}

// ---------------------------------------------------------------------------------------------
// Clients

Result<Client> SqlTxn::CreateClient(const Client& client) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("INSERT INTO clients(tenant_id, name, source_system, "
                                         "billing_details_allowed, created_at) VALUES "
                                         "(?1, ?2, ?3, ?4, ?5) RETURNING id"));
  s.Bind(1, client.tenant.value)
      .Bind(2, client.name)
      .Bind(3, client.source_system)
      .Bind(4, client.billing_details_allowed)
      .Bind(5, client.created_at);
  OB_ASSIGN_OR_RETURN(const std::int64_t new_id, InsertedId(s));
  Client out = client;
  out.id = ClientId(new_id);
  return out;
}

Result<std::optional<Client>> SqlTxn::GetClient(TenantId tenant, ClientId id) {
  OB_ASSIGN_OR_RETURN(
      Stmt s,
      c_.Prepare("SELECT " OB_CLIENT_COLS("") " FROM clients WHERE id = "
                                              "?1 AND tenant_id = ?2 AND deleted_at IS NULL"));
  s.Bind(1, id.value).Bind(2, tenant.value);
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<Client>();
  return std::optional<Client>(ReadClient(s, 0));
}

Result<PageResult<Client>> SqlTxn::ListClients(TenantId tenant, const Page& page) {
  OB_ASSIGN_OR_RETURN(auto after, IdCursor(page));
  int limit = Limit(page);
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT " OB_CLIENT_COLS(
                                  "") " FROM clients WHERE tenant_id = ?1 AND deleted_at IS NULL "
                                      "AND id > ?2 ORDER BY id LIMIT ?3"));
  s.Bind(1, tenant.value).Bind(2, after.value_or(0)).Bind(3, limit + 1);
  std::vector<Client> rows;
  for (;;) {
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    rows.push_back(ReadClient(s, 0));
  }
  return Paginate(std::move(rows), limit,
                  [](const Client& c) { return std::to_string(c.id.value); });
}

Result<bool> SqlTxn::UpdateClient(const Client& client) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE clients SET name = ?3, source_system = ?4, "
                                         "billing_details_allowed = ?5 WHERE id = ?1 AND "
                                         "tenant_id = ?2 AND deleted_at IS NULL"));
  s.Bind(1, client.id.value)
      .Bind(2, client.tenant.value)
      .Bind(3, client.name)
      .Bind(4, client.source_system)
      .Bind(5, client.billing_details_allowed);
  OB_RETURN_IF_ERROR(s.Run());
  return c_.Changes() > 0;
}

Result<bool> SqlTxn::DeleteClient(TenantId tenant, ClientId id, UnixMs now) {
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE clients SET deleted_at = ?3 WHERE id = ?1 AND "
                                           "tenant_id = ?2 AND deleted_at IS NULL"));
    s.Bind(1, id.value).Bind(2, tenant.value).Bind(3, now);
    OB_RETURN_IF_ERROR(s.Run());
    if (c_.Changes() == 0) return false;
  }
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE api_keys SET revoked_at = ?2 WHERE client_id "
                                           "= ?1 AND revoked_at IS NULL"));
    s.Bind(1, id.value).Bind(2, now);
    OB_RETURN_IF_ERROR(s.Run());
  }
  std::vector<SubscriptionId> subs;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT id FROM subscriptions WHERE tenant_id = ?1 AND "
                                           "client_id = ?2 AND deleted = 0"));
    s.Bind(1, tenant.value).Bind(2, id.value);
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      subs.emplace_back(s.Int(0));
    }
  }
  for (SubscriptionId sub : subs) {
    OB_RETURN_IF_ERROR(MarkSubscriptionDeleted(sub));
    OB_RETURN_IF_ERROR(CancelOpenDeliveries(sub));
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Directory

Status SqlTxn::CheckExternalIds(TenantId tenant, EntityKind kind, std::int64_t entity,
                                const ExternalIds& ids) {
  for (const auto& [system, external] : ids) {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT entity_id FROM external_ids WHERE tenant_id = "
                                           "?1 AND kind = ?2 AND source_system = ?3 AND "
                                           "external_id = ?4"));
    s.Bind(1, tenant.value).Bind(2, KindCode(kind)).Bind(3, system).Bind(4, external);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row && s.Int(0) != entity) {
      core::Error e = core::Error::Conflict(
          "external_id_conflict", "external id \"" + external + "\" in source system \"" + system +
                                      "\" is already used by " + std::string(KindName(kind)) + " " +
                                      std::to_string(s.Int(0)));
      e.field = "externalIds." + system;
      return Fail(std::move(e));
    }
  }
  return {};
}

Status SqlTxn::ReplaceExternalIds(TenantId tenant, EntityKind kind, std::int64_t entity,
                                  const ExternalIds& ids) {
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("DELETE FROM external_ids WHERE tenant_id = ?1 AND "
                                           "kind = ?2 AND entity_id = ?3"));
    s.Bind(1, tenant.value).Bind(2, KindCode(kind)).Bind(3, entity);
    OB_RETURN_IF_ERROR(s.Run());
  }
  for (const auto& [system, external] : ids) {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("INSERT INTO external_ids(tenant_id, kind, entity_id, "
                                           "source_system, external_id) VALUES "
                                           "(?1, ?2, ?3, ?4, ?5)"));
    s.Bind(1, tenant.value)
        .Bind(2, KindCode(kind))
        .Bind(3, entity)
        .Bind(4, system)
        .Bind(5, external);
    OB_RETURN_IF_ERROR(s.Run());
  }
  return {};
}

Result<ExternalIds> SqlTxn::LoadExternalIds(TenantId tenant, EntityKind kind, std::int64_t entity) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT source_system, external_id FROM external_ids "
                                         "WHERE tenant_id = ?1 AND kind = ?2 AND entity_id = ?3"));
  s.Bind(1, tenant.value).Bind(2, KindCode(kind)).Bind(3, entity);
  ExternalIds ids;
  for (;;) {
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    ids.emplace(s.Text(0), s.Text(1));
  }
  return ids;
}

Status SqlTxn::UpsertCustomer(const Customer& c) {
  OB_RETURN_IF_ERROR(CheckExternalIds(c.tenant, EntityKind::kCustomer, c.id, c.external_ids));
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare("INSERT INTO customers(tenant_id, id, customer_number, name, "
                         "internal_notes) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(tenant_id, id) "
                         "DO UPDATE SET customer_number = excluded.customer_number, name = "
                         "excluded.name, internal_notes = excluded.internal_notes"));
  s.Bind(1, c.tenant.value)
      .Bind(2, c.id)
      .Bind(3, c.customer_number)
      .Bind(4, c.name)
      .Bind(5, c.internal_notes);
  OB_RETURN_IF_ERROR(s.Run());
  return ReplaceExternalIds(c.tenant, EntityKind::kCustomer, c.id, c.external_ids);
}

Status SqlTxn::UpsertLocation(const Location& l) {
  OB_RETURN_IF_ERROR(CheckExternalIds(l.tenant, EntityKind::kLocation, l.id, l.external_ids));
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare("INSERT INTO locations(tenant_id, id, customer_id, name, address, "
                         "access_secret, internal_notes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON "
                         "CONFLICT(tenant_id, id) DO UPDATE SET customer_id = "
                         "excluded.customer_id, name = excluded.name, address = "
                         "excluded.address, access_secret = excluded.access_secret, "
                         "internal_notes = excluded.internal_notes"));
  s.Bind(1, l.tenant.value)
      .Bind(2, l.id)
      .Bind(3, l.customer_id)
      .Bind(4, l.name)
      .Bind(5, l.address)
      .Bind(6, l.access_secret)
      .Bind(7, l.internal_notes);
  OB_RETURN_IF_ERROR(s.Run());
  return ReplaceExternalIds(l.tenant, EntityKind::kLocation, l.id, l.external_ids);
}

Status SqlTxn::UpsertContact(const Contact& c) {
  OB_RETURN_IF_ERROR(CheckExternalIds(c.tenant, EntityKind::kContact, c.id, c.external_ids));
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare("INSERT INTO contacts(tenant_id, id, customer_id, display_name, phone, "
                         "email, internal_notes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON "
                         "CONFLICT(tenant_id, id) DO UPDATE SET customer_id = "
                         "excluded.customer_id, display_name = excluded.display_name, phone = "
                         "excluded.phone, email = excluded.email, internal_notes = "
                         "excluded.internal_notes"));
  s.Bind(1, c.tenant.value)
      .Bind(2, c.id)
      .Bind(3, c.customer_id)
      .Bind(4, c.display_name)
      .Bind(5, c.phone)
      .Bind(6, c.email)
      .Bind(7, c.internal_notes);
  OB_RETURN_IF_ERROR(s.Run());
  return ReplaceExternalIds(c.tenant, EntityKind::kContact, c.id, c.external_ids);
}

Result<std::optional<Customer>> SqlTxn::GetCustomer(TenantId tenant, std::int64_t id) {
  Customer c;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT customer_number, name, internal_notes FROM "
                                           "customers WHERE tenant_id = ?1 AND id = ?2"));
    s.Bind(1, tenant.value).Bind(2, id);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return std::optional<Customer>();
    c.tenant = tenant;
    c.id = id;
    c.customer_number = s.Text(0);
    c.name = s.Text(1);
    c.internal_notes = s.OptText(2);
  }
  OB_ASSIGN_OR_RETURN(c.external_ids, LoadExternalIds(tenant, EntityKind::kCustomer, id));
  return std::optional<Customer>(std::move(c));
}

Result<std::optional<Location>> SqlTxn::GetLocation(TenantId tenant, std::int64_t id) {
  Location l;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT customer_id, name, address, access_secret, "
                                           "internal_notes FROM locations WHERE tenant_id = ?1 "
                                           "AND id = ?2"));
    s.Bind(1, tenant.value).Bind(2, id);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return std::optional<Location>();
    l.tenant = tenant;
    l.id = id;
    l.customer_id = s.Int(0);
    l.name = s.Text(1);
    l.address = s.OptText(2);
    l.access_secret = s.OptText(3);
    l.internal_notes = s.OptText(4);
  }
  OB_ASSIGN_OR_RETURN(l.external_ids, LoadExternalIds(tenant, EntityKind::kLocation, id));
  return std::optional<Location>(std::move(l));
}

Result<std::optional<Contact>> SqlTxn::GetContact(TenantId tenant, std::int64_t id) {
  Contact c;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT customer_id, display_name, phone, email, "
                                           "internal_notes FROM contacts WHERE tenant_id = ?1 "
                                           "AND id = ?2"));
    s.Bind(1, tenant.value).Bind(2, id);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return std::optional<Contact>();
    c.tenant = tenant;
    c.id = id;
    c.customer_id = s.Int(0);
    c.display_name = s.Text(1);
    c.phone = s.OptText(2);
    c.email = s.OptText(3);
    c.internal_notes = s.OptText(4);
  }
  OB_ASSIGN_OR_RETURN(c.external_ids, LoadExternalIds(tenant, EntityKind::kContact, id));
  return std::optional<Contact>(std::move(c));
}

Result<bool> SqlTxn::DeleteEntity(TenantId tenant, EntityKind kind, std::int64_t id) {
  const char* sql = nullptr;
  switch (kind) {
    case EntityKind::kCustomer:
      sql = "DELETE FROM customers WHERE tenant_id = ?1 AND id = ?2";
      break;
    case EntityKind::kLocation:
      sql = "DELETE FROM locations WHERE tenant_id = ?1 AND id = ?2";
      break;
    case EntityKind::kContact:
      sql = "DELETE FROM contacts WHERE tenant_id = ?1 AND id = ?2";
      break;
    case EntityKind::kTarget:
      sql = "DELETE FROM targets WHERE tenant_id = ?1 AND id = ?2";
      break;
  }
  std::int64_t changed = 0;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
    s.Bind(1, tenant.value).Bind(2, id);
    OB_RETURN_IF_ERROR(s.Run());
    changed = c_.Changes();
  }
  if (changed == 0) return false;
  OB_RETURN_IF_ERROR(ReplaceExternalIds(tenant, kind, id, {}));
  return true;
}

Result<std::optional<std::int64_t>> SqlTxn::FindByExternalId(TenantId tenant, EntityKind kind,
                                                             std::string_view source_system,
                                                             std::string_view external_id) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT entity_id FROM external_ids WHERE tenant_id = "
                                         "?1 AND kind = ?2 AND source_system = ?3 AND "
                                         "external_id = ?4"));
  s.Bind(1, tenant.value).Bind(2, KindCode(kind)).Bind(3, source_system).Bind(4, external_id);
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(s.Int(0));
}

// ---------------------------------------------------------------------------------------------
// Targets

namespace {
ExternalIds TargetIds(const Target& t) {
  ExternalIds ids = t.external_ids;
  if (!t.source_system.empty()) ids[t.source_system] = t.external_id;
  return ids;
}
}  // namespace

Result<Target> SqlTxn::InsertTarget(const Target& t) {
  ExternalIds ids = TargetIds(t);
  OB_RETURN_IF_ERROR(CheckExternalIds(t.tenant, EntityKind::kTarget, -1, ids));
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare("INSERT INTO targets(tenant_id, import_client_id, source_system, "
                         "external_id, customer_id, location_id, contact_id, title, description, "
                         "earliest_start, latest_end, duration_minutes, internal_notes, status, "
                         "cancel_reason, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                         "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) RETURNING id"));
  s.Bind(1, t.tenant.value)
      .Bind(2, t.import_client.value)
      .Bind(3, t.source_system)
      .Bind(4, t.external_id)
      .Bind(5, t.customer_id)
      .Bind(6, t.location_id)
      .Bind(7, t.contact_id)
      .Bind(8, t.title)
      .Bind(9, t.description)
      .Bind(10, t.earliest_start)
      .Bind(11, t.latest_end)
      .Bind(12, t.duration_minutes)
      .Bind(13, t.internal_notes)
      .Bind(14, t.status)
      .Bind(15, t.cancel_reason)
      .Bind(16, t.created_at)
      .Bind(17, t.updated_at);
  OB_ASSIGN_OR_RETURN(const std::int64_t new_id, InsertedId(s));
  Target out = t;
  out.id = TargetId(new_id);
  out.external_ids = std::move(ids);
  OB_RETURN_IF_ERROR(
      ReplaceExternalIds(t.tenant, EntityKind::kTarget, out.id.value, out.external_ids));
  return out;
}

Status SqlTxn::UpdateTarget(const Target& t) {
  ExternalIds ids = TargetIds(t);
  OB_RETURN_IF_ERROR(CheckExternalIds(t.tenant, EntityKind::kTarget, t.id.value, ids));
  {
    OB_ASSIGN_OR_RETURN(
        Stmt s, c_.Prepare("UPDATE targets SET import_client_id = ?3, source_system = ?4, "
                           "external_id = ?5, customer_id = ?6, location_id = ?7, contact_id = ?8, "
                           "title = ?9, description = ?10, earliest_start = ?11, latest_end = "
                           "?12, duration_minutes = ?13, internal_notes = ?14, status = ?15, "
                           "cancel_reason = ?16, updated_at = ?17 WHERE id = ?1 AND tenant_id = "
                           "?2"));
    s.Bind(1, t.id.value)
        .Bind(2, t.tenant.value)
        .Bind(3, t.import_client.value)
        .Bind(4, t.source_system)
        .Bind(5, t.external_id)
        .Bind(6, t.customer_id)
        .Bind(7, t.location_id)
        .Bind(8, t.contact_id)
        .Bind(9, t.title)
        .Bind(10, t.description)
        .Bind(11, t.earliest_start)
        .Bind(12, t.latest_end)
        .Bind(13, t.duration_minutes)
        .Bind(14, t.internal_notes)
        .Bind(15, t.status)
        .Bind(16, t.cancel_reason)
        .Bind(17, t.updated_at);
    OB_RETURN_IF_ERROR(s.Run());
    if (c_.Changes() == 0) return Fail(core::Error::NotFound("target"));
  }
  return ReplaceExternalIds(t.tenant, EntityKind::kTarget, t.id.value, ids);
}

Result<std::optional<Target>> SqlTxn::GetTarget(TenantId tenant, TargetId id) {
  Target t;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT " OB_TARGET_COLS
                                           " FROM targets t WHERE t.id = ?1 AND t.tenant_id = ?2"));
    s.Bind(1, id.value).Bind(2, tenant.value);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return std::optional<Target>();
    t = ReadTarget(s);
  }
  OB_ASSIGN_OR_RETURN(t.external_ids, LoadExternalIds(tenant, EntityKind::kTarget, id.value));
  return std::optional<Target>(std::move(t));
}

Result<std::optional<Target>> SqlTxn::FindTargetByExternalId(TenantId tenant,
                                                             std::string_view source_system,
                                                             std::string_view external_id) {
  OB_ASSIGN_OR_RETURN(auto id,
                      FindByExternalId(tenant, EntityKind::kTarget, source_system, external_id));
  if (!id) return std::optional<Target>();
  return GetTarget(tenant, TargetId(*id));
}

Result<PageResult<Target>> SqlTxn::ListTargets(TenantId tenant, const TargetFilter& filter,
                                               const Page& page) {
  OB_ASSIGN_OR_RETURN(auto after, IdCursor(page));
  int limit = Limit(page);
  Params p;
  std::string sql = "SELECT " OB_TARGET_COLS " FROM targets t WHERE t.tenant_id = ";
  sql += p.Add(tenant.value);
  if (filter.external_id) {
    sql +=
        " AND t.id IN (SELECT x.entity_id FROM external_ids x WHERE x.tenant_id = t.tenant_id "
        "AND x.kind = 3 AND x.external_id = " +
        p.Add(*filter.external_id);
    if (filter.source_system) sql += " AND x.source_system = " + p.Add(*filter.source_system);
    sql += ")";
  } else if (filter.source_system) {
    sql +=
        " AND t.id IN (SELECT x.entity_id FROM external_ids x WHERE x.tenant_id = t.tenant_id "
        "AND x.kind = 3 AND x.source_system = " +
        p.Add(*filter.source_system) + ")";
  }
  if (filter.status) sql += " AND t.status = " + p.Add(*filter.status);
  if (after) sql += " AND t.id > " + p.Add(*after);
  sql += " ORDER BY t.id LIMIT " + p.Add(limit + 1);
  std::vector<Target> rows;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
    p.BindTo(s);
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      rows.push_back(ReadTarget(s));
    }
  }
  auto result =
      Paginate(std::move(rows), limit, [](const Target& t) { return std::to_string(t.id.value); });
  for (auto& t : result.rows) {
    OB_ASSIGN_OR_RETURN(t.external_ids, LoadExternalIds(tenant, EntityKind::kTarget, t.id.value));
  }
  return result;
}

Result<core::TargetSnapshot> SqlTxn::LoadSnapshot(TenantId tenant, const Target& target) {
  core::TargetSnapshot snap;
  if (target.id.value != 0) snap.target_id = target.id.value;
  snap.external_ids = TargetIds(target);
  if (target.customer_id != 0) {
    OB_ASSIGN_OR_RETURN(auto c, GetCustomer(tenant, target.customer_id));
    if (c) {
      snap.customer = core::CustomerSnapshot{c->id, std::move(c->customer_number),
                                             std::move(c->name), std::move(c->external_ids)};
    }
  }
  if (target.location_id) {
    OB_ASSIGN_OR_RETURN(auto l, GetLocation(tenant, *target.location_id));
    if (l)
      snap.location = core::LocationSnapshot{l->id, std::move(l->name), std::move(l->external_ids)};
  }
  if (target.contact_id) {
    OB_ASSIGN_OR_RETURN(auto c, GetContact(tenant, *target.contact_id));
    if (c) {
      snap.contact = core::ContactSnapshot{c->id, std::move(c->display_name), std::move(c->phone),
                                           std::move(c->email), std::move(c->external_ids)};
    }
  }
  return snap;
}

// ---------------------------------------------------------------------------------------------
// Events and idempotency

Status SqlTxn::InsertEvent(const StoredEvent& e) {
  const auto& r = e.record;
  std::string data = boost::json::serialize(r.data);
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
  last_event_.reset();
  OB_RETURN_IF_ERROR(s.Run());
  last_event_ = EventFacts{r.event_id,    r.tenant.value, std::string(core::Info(r.type).name),
                           r.occurred_at, r.accepted_at,  r.target_id};
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

// ---------------------------------------------------------------------------------------------
// Subscriptions

Result<Subscription> SqlTxn::ReadSubscription(const Stmt& s, int c0) {
  Subscription sub;
  sub.id = SubscriptionId(s.Int(c0));
  sub.tenant = TenantId(s.Int(c0 + 1));
  sub.client = ClientId(s.Int(c0 + 2));
  sub.url = s.Text(c0 + 3);
  boost::system::error_code ec;
  boost::json::value types = boost::json::parse(s.Text(c0 + 4), ec);
  if (ec || !types.is_array()) {
    return Fail(core::Error::Internal("stored subscription has corrupt event types"));
  }
  for (const auto& t : types.as_array()) {
    if (t.is_string()) sub.event_types.emplace_back(t.as_string());
  }
  sub.options.include_customer_context = s.Int(c0 + 5) != 0;
  sub.options.include_contact_details = s.Int(c0 + 6) != 0;
  sub.options.include_summary_preview = s.Int(c0 + 7) != 0;
  sub.options.include_billing_details = s.Int(c0 + 8) != 0;
  sub.ordered = s.Int(c0 + 9) != 0;
  sub.enabled = s.Int(c0 + 10) != 0;
  sub.description = s.Text(c0 + 11);
  sub.rate_limit_per_second = s.OptDouble(c0 + 12);
  if (auto m = s.OptInt(c0 + 13)) sub.max_concurrency = static_cast<int>(*m);
  OB_ASSIGN_OR_RETURN(std::string headers, secrets_.Open(s.Text(c0 + 14)));
  boost::json::value h = boost::json::parse(headers, ec);
  if (ec || !h.is_array()) {
    return Fail(core::Error::Internal("stored subscription has corrupt headers"));
  }
  for (const auto& pair : h.as_array()) {
    if (!pair.is_array() || pair.as_array().size() != 2) continue;
    const auto& a = pair.as_array();
    if (!a[0].is_string() || !a[1].is_string()) continue;
    sub.headers.emplace_back(std::string(a[0].as_string()), std::string(a[1].as_string()));
  }
  OB_ASSIGN_OR_RETURN(sub.secret, secrets_.Open(s.Text(c0 + 15)));
  if (auto prev = s.OptText(c0 + 16)) {
    OB_ASSIGN_OR_RETURN(sub.previous_secret, secrets_.Open(*prev));
  }
  sub.previous_secret_expires_at = s.OptInt(c0 + 17);
  sub.disabled_reason = s.OptText(c0 + 18);
  sub.disabled_at = s.OptInt(c0 + 19);
  sub.last_success_at = s.OptInt(c0 + 20);
  sub.failing_since = s.OptInt(c0 + 21);
  sub.created_at = s.Int(c0 + 22);
  sub.updated_at = s.Int(c0 + 23);
  sub.operations = s.Int(c0 + 24) == 1;
  return sub;
}

namespace {
// Headers are sealed unless there are none (an empty list reveals nothing).
std::string SealHeaders(const internal::Sealer& box,
                        const std::vector<std::pair<std::string, std::string>>& headers) {
  if (headers.empty()) return "[]";
  return box.Seal(HeadersJson(headers));
}
}  // namespace

Result<Subscription> SqlTxn::CreateSubscription(const Subscription& sub) {
  OB_ASSIGN_OR_RETURN(
      Stmt s,
      c_.Prepare("INSERT INTO subscriptions(tenant_id, client_id, url, event_types, "
                 "include_customer_context, include_contact_details, include_summary_preview, "
                 "include_billing_details, ordered, enabled, description, rate_limit_per_second, "
                 "max_concurrency, headers, secret, previous_secret, previous_secret_expires_at, "
                 "disabled_reason, disabled_at, last_success_at, failing_since, created_at, "
                 "updated_at, kind) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                 "?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24) RETURNING id"));
  std::string types = EventTypesJson(sub.event_types);
  std::string headers = SealHeaders(secrets_, sub.headers);
  std::string secret = secrets_.Seal(sub.secret);
  std::optional<std::string> previous;
  if (sub.previous_secret) previous = secrets_.Seal(*sub.previous_secret);
  s.Bind(1, sub.tenant.value)
      .Bind(2, sub.client.value)
      .Bind(3, sub.url)
      .Bind(4, types)
      .Bind(5, sub.options.include_customer_context)
      .Bind(6, sub.options.include_contact_details)
      .Bind(7, sub.options.include_summary_preview)
      .Bind(8, sub.options.include_billing_details)
      .Bind(9, sub.ordered)
      .Bind(10, sub.enabled)
      .Bind(11, sub.description)
      .Bind(12, sub.rate_limit_per_second)
      .Bind(13, sub.max_concurrency)
      .Bind(14, headers)
      .Bind(15, secret)
      .Bind(16, previous)
      .Bind(17, sub.previous_secret_expires_at)
      .Bind(18, sub.disabled_reason)
      .Bind(19, sub.disabled_at)
      .Bind(20, sub.last_success_at)
      .Bind(21, sub.failing_since)
      .Bind(22, sub.created_at)
      .Bind(23, sub.updated_at)
      .Bind(24, sub.operations ? 1 : 0);
  OB_ASSIGN_OR_RETURN(const std::int64_t new_id, InsertedId(s));
  Subscription out = sub;
  out.id = SubscriptionId(new_id);
  return out;
}

Result<std::optional<Subscription>> SqlTxn::GetSubscription(TenantId tenant, SubscriptionId id) {
  OB_ASSIGN_OR_RETURN(Stmt s,
                      c_.Prepare("SELECT " OB_SUB_COLS " FROM subscriptions s WHERE s.id "
                                 "= ?1 AND s.tenant_id = ?2 AND s.deleted = 0 AND s.kind = 0"));
  s.Bind(1, id.value).Bind(2, tenant.value);
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<Subscription>();
  OB_ASSIGN_OR_RETURN(Subscription sub, ReadSubscription(s, 0));
  return std::optional<Subscription>(std::move(sub));
}

Result<PageResult<Subscription>> SqlTxn::ListSubscriptions(TenantId tenant,
                                                           std::optional<ClientId> client,
                                                           const Page& page) {
  OB_ASSIGN_OR_RETURN(auto after, IdCursor(page));
  int limit = Limit(page);
  Params p;
  std::string sql = "SELECT " OB_SUB_COLS " FROM subscriptions s WHERE s.tenant_id = ";
  sql += p.Add(tenant.value);
  sql += " AND s.deleted = 0 AND s.kind = 0";
  if (client) sql += " AND s.client_id = " + p.Add(client->value);
  if (after) sql += " AND s.id > " + p.Add(*after);
  sql += " ORDER BY s.id LIMIT " + p.Add(limit + 1);
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
  p.BindTo(s);
  std::vector<Subscription> rows;
  for (;;) {
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    OB_ASSIGN_OR_RETURN(Subscription sub, ReadSubscription(s, 0));
    rows.push_back(std::move(sub));
  }
  return Paginate(std::move(rows), limit,
                  [](const Subscription& s) { return std::to_string(s.id.value); });
}

Status SqlTxn::UpdateSubscription(const Subscription& sub) {
  bool was_enabled = false;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT enabled FROM subscriptions WHERE id = ?1 AND "
                                           "tenant_id = ?2 AND deleted = 0 AND kind = 0"));
    s.Bind(1, sub.id.value).Bind(2, sub.tenant.value);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return Fail(core::Error::NotFound("subscription"));
    was_enabled = s.Int(0) != 0;
  }
  // last_success_at and failing_since belong to RecordOutcomes (the caller's copy may be stale);
  // re-enabling a disabled subscription starts its failing period afresh.
  {
    OB_ASSIGN_OR_RETURN(
        Stmt s,
        c_.Prepare("UPDATE subscriptions SET url = ?3, event_types = ?4, include_customer_context "
                   "= ?5, include_contact_details = ?6, include_summary_preview = ?7, "
                   "include_billing_details = ?8, ordered = ?9, failing_since = CASE WHEN ?10 = 1 "
                   "AND enabled = 0 THEN NULL ELSE failing_since END, enabled = ?10, "
                   "description = ?11, rate_limit_per_second = ?12, max_concurrency = ?13, "
                   "headers = ?14, secret = ?15, previous_secret = ?16, "
                   "previous_secret_expires_at = ?17, disabled_reason = ?18, disabled_at = ?19, "
                   "updated_at = ?20 WHERE id = ?1 AND tenant_id = ?2"));
    std::string types = EventTypesJson(sub.event_types);
    std::string headers = SealHeaders(secrets_, sub.headers);
    std::string secret = secrets_.Seal(sub.secret);
    std::optional<std::string> previous;
    if (sub.previous_secret) previous = secrets_.Seal(*sub.previous_secret);
    s.Bind(1, sub.id.value)
        .Bind(2, sub.tenant.value)
        .Bind(3, sub.url)
        .Bind(4, types)
        .Bind(5, sub.options.include_customer_context)
        .Bind(6, sub.options.include_contact_details)
        .Bind(7, sub.options.include_summary_preview)
        .Bind(8, sub.options.include_billing_details)
        .Bind(9, sub.ordered)
        .Bind(10, sub.enabled)
        .Bind(11, sub.description)
        .Bind(12, sub.rate_limit_per_second)
        .Bind(13, sub.max_concurrency)
        .Bind(14, headers)
        .Bind(15, secret)
        .Bind(16, previous)
        .Bind(17, sub.previous_secret_expires_at)
        .Bind(18, sub.disabled_reason)
        .Bind(19, sub.disabled_at)
        .Bind(20, sub.updated_at);
    OB_RETURN_IF_ERROR(s.Run());
  }
  if (was_enabled && !sub.enabled) return CancelOpenDeliveries(sub.id);
  return {};
}

Status SqlTxn::MarkSubscriptionDeleted(SubscriptionId sub) {
  // The row stays so the delivery log keeps its client; its secrets go.
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE subscriptions SET deleted = 1, enabled = 0, "
                                         "secret = '', previous_secret = NULL, headers = '[]' "
                                         "WHERE id = ?1"));
  s.Bind(1, sub.value);
  return s.Run();
}

Status SqlTxn::CancelOpenDeliveries(SubscriptionId sub) {
  // Leased rows are cancelled too; their in-flight outcome keeps them cancelled unless it
  // succeeded (see RecordOutcomes).
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE deliveries SET status = 'cancelled', "
                                         "next_attempt_at = NULL WHERE subscription_id = ?1 AND "
                                         "status IN ('pending', 'failed')"));
  s.Bind(1, sub.value);
  return s.Run();
}

Result<bool> SqlTxn::DeleteSubscription(TenantId tenant, SubscriptionId id) {
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT 1 FROM subscriptions WHERE id = ?1 AND "
                                           "tenant_id = ?2 AND deleted = 0 AND kind = 0"));
    s.Bind(1, id.value).Bind(2, tenant.value);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return false;
  }
  OB_RETURN_IF_ERROR(MarkSubscriptionDeleted(id));
  OB_RETURN_IF_ERROR(CancelOpenDeliveries(id));
  return true;
}

void SqlTxn::EnableFanoutCache() { fanout_cache_.emplace(); }

void SqlTxn::FanoutTablesChanged() {
  if (!fanout_cache_) return;
  fanout_cache_->by_tenant.clear();
  fanout_cache_->tainted = true;
}

void SqlTxn::TransactionEnded(bool committed) {
  if (!fanout_cache_) return;
  fanout_cache_->tainted = false;
  if (!committed) fanout_cache_->by_tenant.clear();  // not needed (see tainted); cheap insurance
}

Result<std::vector<std::pair<Subscription, Client>>> SqlTxn::ListFanoutTargets(TenantId tenant) {
  const bool use_cache = fanout_cache_ && !fanout_cache_->tainted;
  if (use_cache) {
    if (auto it = fanout_cache_->by_tenant.find(tenant.value);
        it != fanout_cache_->by_tenant.end()) {
      return it->second;
    }
  }
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT " OB_SUB_COLS ", " OB_CLIENT_COLS(
                                  "c.") " FROM subscriptions s JOIN clients c ON c.id = "
                                        "s.client_id WHERE s.tenant_id = ?1 AND s.enabled = 1 "
                                        "AND s.deleted = 0 AND s.kind = 0 AND c.deleted_at IS NULL "
                                        "ORDER BY "
                                        "s.id"));
  s.Bind(1, tenant.value);
  std::vector<std::pair<Subscription, Client>> out;
  for (;;) {
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    OB_ASSIGN_OR_RETURN(Subscription sub, ReadSubscription(s, 0));
    out.emplace_back(std::move(sub), ReadClient(s, kSubColCount));
  }
  if (use_cache) {
    if (fanout_cache_->by_tenant.size() >= kFanoutCacheTenants) fanout_cache_->by_tenant.clear();
    fanout_cache_->by_tenant.emplace(tenant.value, out);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Deliveries

namespace {

// A statement's text cached per dialect and shape (see ClaimSql, InsertDeliveriesSql).
std::string JoinDialect(Dialect d) { return d == Dialect::kSqlite ? "CROSS JOIN" : "JOIN"; }

// Multi-row INSERT of `n` deliveries: a publish costs one statement whatever its fan-out.
const std::string& InsertDeliveriesSql(std::size_t n) {
  static const std::vector<std::string> texts = [] {
    std::vector<std::string> t(kDeliveryInsertChunk + 1);
    for (std::size_t rows = 1; rows <= kDeliveryInsertChunk; ++rows) {
      std::string sql =
          "INSERT INTO deliveries(tenant_id, event_id, subscription_id, status, attempts, "
          "cycle_attempts, next_attempt_at, lease_owner, lease_until, data_json, created_at) "
          "VALUES ";
      for (std::size_t r = 0; r < rows; ++r) {
        const std::size_t b = r * 7;
        auto p = [&](std::size_t k) { return "?" + std::to_string(b + k); };
        if (r > 0) sql += ", ";
        sql += "(" + p(1) + ", " + p(2) + ", " + p(3) + ", 'pending', 0, 0, " + p(4) + ", " + p(5) +
               ", " + p(6) + ", " + p(7) + ", ?" + std::to_string(rows * 7 + 1) + ")";
      }
      sql += " RETURNING id, subscription_id, event_id";
      t[rows] = std::move(sql);
    }
    return t;
  }();
  return texts[n];
}

}  // namespace

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
    for (const NewDelivery& row : rows) subs.push_back(row.subscription.value);
    OB_ASSIGN_OR_RETURN(owned, OwnSubscriptions(owner, std::move(subs)));
  }
  auto leased_to_me = [&](SubscriptionId sub) {
    return leasing && (!shared_ || std::binary_search(owned.begin(), owned.end(), sub.value));
  };

  struct Facts {
    std::string event_type;
    UnixMs occurred_at = 0;
    UnixMs accepted_at = 0;
    std::optional<std::int64_t> target_id;
  };
  // Fan-out rows of one call usually share their event: look it up once per event.
  std::unordered_map<std::string, Facts> facts;
  for (const NewDelivery& row : rows) {
    if (facts.count(row.event_id) != 0) continue;
    if (last_event_ && last_event_->event_id == row.event_id &&
        last_event_->tenant == row.tenant.value) {
      facts.emplace(row.event_id, Facts{last_event_->event_type, last_event_->occurred_at,
                                        last_event_->accepted_at, last_event_->target_id});
      continue;
    }
    OB_ASSIGN_OR_RETURN(Stmt e, c_.Prepare("SELECT event_type, occurred_at, target_id, "
                                           "accepted_at FROM events WHERE event_id = ?1 AND "
                                           "tenant_id = ?2"));
    e.Bind(1, row.event_id).Bind(2, row.tenant.value);
    OB_ASSIGN_OR_RETURN(bool found, e.Step());
    if (!found) return Fail(core::Error::Internal("delivery for unknown event " + row.event_id));
    facts.emplace(row.event_id, Facts{e.Text(0), e.Int(1), e.Int(3), e.OptInt(2)});
  }

  // (subscription, event) → the row's index, to match RETURNING rows to their inputs.
  std::map<std::pair<std::int64_t, std::string_view>, std::size_t> index;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    index.emplace(std::make_pair(rows[i].subscription.value, std::string_view(rows[i].event_id)),
                  i);
  }
  jobs.reserve(rows.size());
  for (std::size_t start = 0; start < rows.size(); start += kDeliveryInsertChunk) {
    const std::size_t n = std::min(kDeliveryInsertChunk, rows.size() - start);
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(InsertDeliveriesSql(n)));
    for (std::size_t r = 0; r < n; ++r) {
      const NewDelivery& row = rows[start + r];
      const int b = static_cast<int>(r * 7);
      s.Bind(b + 1, row.tenant.value)
          .Bind(b + 2, row.event_id)
          .Bind(b + 3, row.subscription.value)
          .Bind(b + 4, row.next_attempt_at);
      if (leased_to_me(row.subscription)) {
        s.Bind(b + 5, owner).Bind(b + 6, lease_until);
      } else {
        s.BindNull(b + 5, NullType::kText).BindNull(b + 6, NullType::kInt);
      }
      s.Bind(b + 7, row.data_json);
    }
    s.Bind(static_cast<int>(n * 7 + 1), now);
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool more, s.Step());
      if (!more) break;
      const std::int64_t sub = s.Int(1);
      const std::string event_id = s.Text(2);
      auto it = index.find(std::make_pair(sub, std::string_view(event_id)));
      if (it == index.end()) return Fail(core::Error::Internal("an inserted delivery is unknown"));
      const NewDelivery& row = rows[it->second];
      if (!leased_to_me(row.subscription)) continue;
      const Facts& f = facts.at(row.event_id);
      DeliveryJob job;
      job.id = DeliveryRowId(s.Int(0));
      job.tenant = row.tenant;
      job.subscription = row.subscription;
      job.event_id = row.event_id;
      job.event_type = f.event_type;
      job.occurred_at = f.occurred_at;
      job.target_id = f.target_id;
      job.data_json = row.data_json;
      job.next_attempt_at = row.next_attempt_at;
      jobs.push_back(std::move(job));
    }
  }
  std::sort(jobs.begin(), jobs.end(),
            [](const DeliveryJob& a, const DeliveryJob& b) { return a.id < b.id; });
  return jobs;
}

// Ordered subscriptions (CONTRACT §6): a delivery is claimable only when no earlier event about
// the same target (occurred_at, then acceptance order) still has an open delivery to the same
// subscription. Fan-out hands rows over leased; the dispatcher gives ordered ones back so that
// they pass through this check.
#define OB_NOT_BLOCKED                                                                        \
  "NOT EXISTS (SELECT 1 FROM events e JOIN deliveries d2 ON d2.subscription_id = "            \
  "d.subscription_id AND d2.status IN ('pending', 'failed') JOIN events e2 ON e2.event_id = " \
  "d2.event_id WHERE e.event_id = d.event_id AND e.target_id IS NOT NULL AND e2.target_id = " \
  "e.target_id AND (e2.occurred_at < e.occurred_at OR (e2.occurred_at = e.occurred_at AND "   \
  "e2.id < e.id)))"

namespace {

// The claim: deliveries_due holds exactly the claimable rows. SQLite: CROSS JOIN keeps that
// index the outer loop. PostgreSQL: SKIP LOCKED lets processes claim side by side without
// waiting for each other, and only subscriptions that are unowned or the claimer's qualify.
std::string ClaimSql(Dialect d, bool shared) {
  std::string sql =
      "UPDATE deliveries SET lease_owner = ?1, lease_until = ?2 WHERE id IN (SELECT d.id FROM "
      "deliveries d " +
      JoinDialect(d) + " subscriptions s ON s.id = d.subscription_id ";
  if (shared) sql += "LEFT JOIN subscription_owners so ON so.subscription_id = d.subscription_id ";
  sql +=
      "WHERE d.status IN ('pending', 'failed') AND d.lease_owner IS NULL AND d.next_attempt_at "
      "<= ?3 AND s.enabled = 1 AND s.deleted = 0 ";
  if (shared) sql += "AND (so.owner IS NULL OR so.owner = ?1) ";
  sql += "AND (s.ordered = 0 OR " OB_NOT_BLOCKED ") ORDER BY d.next_attempt_at LIMIT ?4";
  if (d == Dialect::kPostgres) sql += " FOR UPDATE OF d SKIP LOCKED";
  sql +=
      ") RETURNING id, tenant_id, subscription_id, event_id, data_json, attempts, "
      "cycle_attempts, next_attempt_at";
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
  return c_.Changes() > 0;
}

Result<bool> SqlTxn::OwnerActive(std::string_view owner, UnixMs lease_until) {
  // Read, not written, on the hot path: concurrent fan-outs of one process must not queue on
  // their owner's row. FOR SHARE holds off a reaper until this transaction ends.
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(c_.dialect() == Dialect::kPostgres
                                               ? "SELECT reaped FROM lease_owners WHERE owner = "
                                                 "?1 FOR SHARE"
                                               : "SELECT reaped FROM lease_owners WHERE owner = "
                                                 "?1"));
    s.Bind(1, owner);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) return s.Int(0) == 0;
  }
  return ExtendOwner(owner, lease_until);
}

Status SqlTxn::ReapExpiredOwners(UnixMs now) {
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
  return {};
}

Status SqlTxn::ReleaseOwnerRows(std::string_view owner) {
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
  std::vector<std::int64_t> owned;
  for (std::size_t start = 0; start < subs.size(); start += kDeliveryInsertChunk) {
    const std::size_t n = std::min(kDeliveryInsertChunk, subs.size() - start);
    {
      std::string sql = "INSERT INTO subscription_owners(subscription_id, owner) VALUES ";
      for (std::size_t i = 0; i < n; ++i) {
        if (i > 0) sql += ", ";
        sql += "(?" + std::to_string(i + 2) + ", ?1)";
      }
      sql += " ON CONFLICT (subscription_id) DO NOTHING";
      OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
      s.Bind(1, owner);
      for (std::size_t i = 0; i < n; ++i) s.Bind(static_cast<int>(i + 2), subs[start + i]);
      OB_RETURN_IF_ERROR(s.Run());
    }
    std::string sql =
        "SELECT subscription_id FROM subscription_owners WHERE owner = ?1 AND subscription_id IN (";
    for (std::size_t i = 0; i < n; ++i) {
      if (i > 0) sql += ", ";
      sql += "?" + std::to_string(i + 2);
    }
    sql += ")";
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
    s.Bind(1, owner);
    for (std::size_t i = 0; i < n; ++i) s.Bind(static_cast<int>(i + 2), subs[start + i]);
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      owned.push_back(s.Int(0));
    }
  }
  std::sort(owned.begin(), owned.end());
  return owned;
}

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
  std::vector<DeliveryJob> jobs;
  // The caller's own lease first, so that a late claimer never takes back its own rows.
  OB_ASSIGN_OR_RETURN(bool leasing, ExtendOwner(owner, lease_until));
  OB_RETURN_IF_ERROR(ReapExpiredOwners(now));
  if (limit <= 0 || !leasing) return jobs;
  {
    static const std::string kSqlite = ClaimSql(Dialect::kSqlite, false);
    static const std::string kPgShared = ClaimSql(Dialect::kPostgres, true);
    static const std::string kPgExclusive = ClaimSql(Dialect::kPostgres, false);
    static const std::string kSqliteShared = ClaimSql(Dialect::kSqlite, true);
    const std::string& sql = c_.dialect() == Dialect::kSqlite
                                 ? (shared_ ? kSqliteShared : kSqlite)
                                 : (shared_ ? kPgShared : kPgExclusive);
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
    s.Bind(1, owner).Bind(2, lease_until).Bind(3, now).Bind(4, limit);
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
      jobs.push_back(std::move(job));
    }
  }
  if (shared_ && !jobs.empty()) {
    // Two processes may have claimed rows of one unowned subscription at once: the one that
    // owns it keeps them, the other gives them back.
    std::vector<std::int64_t> subs;
    for (const DeliveryJob& job : jobs) subs.push_back(job.subscription.value);
    OB_ASSIGN_OR_RETURN(std::vector<std::int64_t> owned, OwnSubscriptions(owner, std::move(subs)));
    std::vector<DeliveryRowId> give_back;
    std::vector<DeliveryJob> kept;
    for (DeliveryJob& job : jobs) {
      if (std::binary_search(owned.begin(), owned.end(), job.subscription.value)) {
        kept.push_back(std::move(job));
      } else {
        give_back.push_back(job.id);
      }
    }
    jobs = std::move(kept);
    if (!give_back.empty()) {
      OB_ASSIGN_OR_RETURN(int stale, ReleaseLeases(owner, give_back));
      (void)stale;
    }
  }
  std::sort(jobs.begin(), jobs.end(), [](const DeliveryJob& a, const DeliveryJob& b) {
    return a.next_attempt_at != b.next_attempt_at ? a.next_attempt_at < b.next_attempt_at
                                                  : a.id < b.id;
  });
  OB_RETURN_IF_ERROR(FillEventFacts(jobs));
  return jobs;
}

Result<bool> SqlTxn::RenewLease(std::string_view owner, UnixMs now, UnixMs lease_until) {
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE lease_owners SET lease_until = ?2 WHERE owner "
                                           "= ?1 AND reaped = 0"));
    s.Bind(1, owner).Bind(2, lease_until);
    OB_RETURN_IF_ERROR(s.Run());
    if (c_.Changes() > 0) return true;
  }
  // Taken back (or never there): everything it held is gone (rows it leased after the take-back
  // are given back too); start a fresh lease.
  (void)now;
  OB_RETURN_IF_ERROR(ReleaseOwnerRows(owner));
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("INSERT INTO lease_owners(owner, lease_until, reaped) "
                                         "VALUES (?1, ?2, 0) ON CONFLICT (owner) DO UPDATE SET "
                                         "lease_until = excluded.lease_until, reaped = 0"));
  s.Bind(1, owner).Bind(2, lease_until);
  OB_RETURN_IF_ERROR(s.Run());
  return false;
}

Result<int> SqlTxn::ReleaseLeases(std::string_view owner, const std::vector<DeliveryRowId>& ids) {
  int stale = 0;
  for (DeliveryRowId id : ids) {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE deliveries SET lease_owner = NULL, "
                                           "lease_until = NULL WHERE id = ?1 AND lease_owner = "
                                           "?2"));
    s.Bind(1, id.value).Bind(2, owner);
    OB_RETURN_IF_ERROR(s.Run());
    if (c_.Changes() == 0) ++stale;
  }
  if (stale > 0) Counters::StaleLeaseWrites(static_cast<std::uint64_t>(stale));
  return stale;
}

Status SqlTxn::ReleaseOwner(std::string_view owner) {
  OB_RETURN_IF_ERROR(ReleaseOwnerRows(owner));
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("DELETE FROM lease_owners WHERE owner = ?1"));
  s.Bind(1, owner);
  return s.Run();
}

Result<int> SqlTxn::RecordOutcomes(std::string_view owner, const std::vector<Outcome>& outcomes) {
  int stale = 0;
  std::vector<const Outcome*> applied;
  applied.reserve(outcomes.size());
  for (const Outcome& o : outcomes) {
    {
      // Fenced: only a row still leased to the caller. A delivery cancelled while its attempt
      // was in flight stays cancelled unless the attempt succeeded. (Every expression sees the
      // row as it was before this UPDATE.)
      OB_ASSIGN_OR_RETURN(
          Stmt s, c_.Prepare("UPDATE deliveries SET status = CASE WHEN status = 'cancelled' AND "
                             "?1 <> 'succeeded' THEN 'cancelled' ELSE ?1 END, next_attempt_at = "
                             "CASE WHEN status = 'cancelled' AND ?1 <> 'succeeded' THEN NULL "
                             "ELSE ?3 END, attempts = ?2, cycle_attempts = cycle_attempts + 1, "
                             "last_delivery_id = ?4, lease_owner = NULL, lease_until = NULL "
                             "WHERE id = ?5 AND tenant_id = ?6 AND lease_owner = ?7"));
      std::optional<UnixMs> next;
      if (o.new_status == DeliveryStatus::kFailed || o.new_status == DeliveryStatus::kPending) {
        next = o.next_attempt_at.value_or(o.attempt.attempted_at);
      }
      s.Bind(1, ToString(o.new_status))
          .Bind(2, o.attempt.attempt)
          .Bind(3, next)
          .Bind(4, o.attempt.delivery_id)
          .Bind(5, o.delivery.value)
          .Bind(6, o.tenant.value)
          .Bind(7, owner);
      OB_RETURN_IF_ERROR(s.Run());
      if (c_.Changes() == 0) {
        ++stale;
        Counters::StaleLeaseWrites(1);
        continue;
      }
    }
    applied.push_back(&o);
    OB_ASSIGN_OR_RETURN(
        Stmt s, c_.Prepare("INSERT INTO attempts(tenant_id, delivery_row_id, subscription_id, "
                           "event_id, delivery_id, attempt, attempted_at, http_status, "
                           "duration_ms, error, response_snippet) VALUES (?1, ?2, ?3, ?4, ?5, "
                           "?6, ?7, ?8, ?9, ?10, ?11)"));
    const AttemptRecord& a = o.attempt;
    s.Bind(1, o.tenant.value)
        .Bind(2, o.delivery.value)
        .Bind(3, o.subscription.value)
        .Bind(4, o.event_id)
        .Bind(5, a.delivery_id)
        .Bind(6, a.attempt)
        .Bind(7, a.attempted_at)
        .Bind(8, a.http_status)
        .Bind(9, a.duration_ms)
        .Bind(10, a.error)
        .Bind(11, a.response_snippet);
    OB_RETURN_IF_ERROR(s.Run());
  }

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
  for (const auto& [sub, agg] : by_sub) {
    if (agg.last_success) {
      OB_ASSIGN_OR_RETURN(
          Stmt s, c_.Prepare("UPDATE subscriptions SET last_success_at = CASE WHEN "
                             "COALESCE(last_success_at, 0) > ?2 THEN last_success_at ELSE ?2 END, "
                             "failing_since = ?3, failing_attempts = ?4 WHERE id = ?1"));
      s.Bind(1, sub).Bind(2, *agg.last_success).Bind(3, agg.failing_since).Bind(4, agg.failures);
      OB_RETURN_IF_ERROR(s.Run());
    } else if (agg.failing_since) {
      OB_ASSIGN_OR_RETURN(
          Stmt s, c_.Prepare("UPDATE subscriptions SET failing_since = COALESCE(failing_since, "
                             "?2), failing_attempts = failing_attempts + ?3 WHERE id = ?1"));
      s.Bind(1, sub).Bind(2, *agg.failing_since).Bind(3, agg.failures);
      OB_RETURN_IF_ERROR(s.Run());
    }
  }
  return stale;
}

Result<std::optional<UnixMs>> SqlTxn::NextDueAt() {
  static const std::string kSql[2] = {
      "SELECT d.next_attempt_at FROM deliveries d " + JoinDialect(Dialect::kSqlite) +
          " subscriptions s ON s.id = d.subscription_id WHERE d.status IN ('pending', 'failed') "
          "AND d.lease_owner IS NULL AND d.next_attempt_at IS NOT NULL AND s.enabled = 1 AND "
          "s.deleted = 0 ORDER BY d.next_attempt_at LIMIT 1",
      "SELECT d.next_attempt_at FROM deliveries d " + JoinDialect(Dialect::kPostgres) +
          " subscriptions s ON s.id = d.subscription_id WHERE d.status IN ('pending', 'failed') "
          "AND d.lease_owner IS NULL AND d.next_attempt_at IS NOT NULL AND s.enabled = 1 AND "
          "s.deleted = 0 ORDER BY d.next_attempt_at LIMIT 1"};
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(kSql[c_.dialect() == Dialect::kSqlite ? 0 : 1]));
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<UnixMs>();
  return std::optional<UnixMs>(s.Int(0));
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

Result<std::vector<DeliveryView>> SqlTxn::GetDeliveries(TenantId tenant, std::string_view event_id,
                                                        std::optional<ClientId> client) {
  std::vector<DeliveryView> views;
  {
    Params p;
    std::string sql =
        "SELECT d.id, d.subscription_id, s.client_id, d.status, d.next_attempt_at, d.data_json, "
        "d.last_delivery_id FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id "
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
  }
  return views;
}

Result<PageResult<AttemptRow>> SqlTxn::ListAttempts(TenantId tenant, SubscriptionId sub,
                                                    const AttemptFilter& filter, const Page& page) {
  OB_ASSIGN_OR_RETURN(auto before, IdCursor(page));
  int limit = Limit(page);
  Params p;
  std::string sql =
      "SELECT a.id, a.event_id, e.event_type, d.status, " OB_ATTEMPT_COLS
      " FROM attempts a JOIN deliveries d ON d.id = a.delivery_row_id JOIN events e ON "
      "e.event_id = a.event_id WHERE a.subscription_id = ";
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
    r.attempt = ReadAttempt(s, 4);
    rows.push_back(std::move(r));
  }
  return Paginate(std::move(rows), limit,
                  [](const AttemptRow& r) { return std::to_string(r.row_id); });
}

Result<int> SqlTxn::Redeliver(TenantId tenant, std::string_view event_id,
                              std::optional<SubscriptionId> sub, std::optional<ClientId> client,
                              UnixMs now) {
  Params p;
  std::string sql =
      "UPDATE deliveries SET status = 'pending', cycle_attempts = 0, next_attempt_at = ";
  sql += p.Add(now);
  sql +=
      ", lease_owner = NULL, lease_until = NULL WHERE event_id = " + p.Add(std::string(event_id));
  std::string t = p.Add(tenant.value);
  sql += " AND tenant_id = " + t;
  if (sub) sql += " AND subscription_id = " + p.Add(sub->value);
  sql += " AND subscription_id IN (SELECT id FROM subscriptions WHERE tenant_id = " + t +
         " AND deleted = 0";
  if (client) sql += " AND client_id = " + p.Add(client->value);
  sql += ")";
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
  p.BindTo(s);
  OB_RETURN_IF_ERROR(s.Run());
  return static_cast<int>(c_.Changes());
}

Result<int> SqlTxn::RecoverDeliveries(TenantId tenant, SubscriptionId sub, UnixMs since,
                                      UnixMs now) {
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare("UPDATE deliveries SET status = 'pending', cycle_attempts = 0, "
                         "next_attempt_at = ?4, lease_owner = NULL, lease_until = NULL WHERE "
                         "subscription_id = ?1 AND tenant_id = ?2 AND status IN ('dead', "
                         "'cancelled') AND created_at >= ?3 AND EXISTS (SELECT 1 FROM "
                         "subscriptions s WHERE s.id = ?1 AND s.tenant_id = ?2 AND s.deleted = "
                         "0)"));
  s.Bind(1, sub.value).Bind(2, tenant.value).Bind(3, since).Bind(4, now);
  OB_RETURN_IF_ERROR(s.Run());
  return static_cast<int>(c_.Changes());
}

// ---------------------------------------------------------------------------------------------
// Disabling and operational webhooks

Result<bool> SqlTxn::DisableSubscription(TenantId tenant, SubscriptionId id,
                                         std::string_view reason, UnixMs now) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE subscriptions SET enabled = 0, disabled_reason = "
                                         "?3, disabled_at = ?4, updated_at = ?4 WHERE id = ?1 AND "
                                         "tenant_id = ?2 AND enabled = 1 AND deleted = 0"));
  s.Bind(1, id.value).Bind(2, tenant.value).Bind(3, reason).Bind(4, now);
  OB_RETURN_IF_ERROR(s.Run());
  if (c_.Changes() == 0) return false;
  OB_RETURN_IF_ERROR(CancelOpenDeliveries(id));
  return true;
}

Result<FailureStreak> SqlTxn::GetFailureStreak(TenantId tenant, SubscriptionId id) {
  FailureStreak streak;
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT enabled, failing_since, failing_attempts FROM "
                                         "subscriptions WHERE id = ?1 AND tenant_id = ?2 AND "
                                         "deleted = 0"));
  s.Bind(1, id.value).Bind(2, tenant.value);
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return streak;
  streak.enabled = s.Int(0) != 0;
  streak.failing_since = s.OptInt(1);
  if (streak.failing_since) streak.attempts = static_cast<int>(s.Int(2));
  return streak;
}

Result<std::optional<Subscription>> SqlTxn::GetOperationsWebhook(TenantId tenant) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT " OB_SUB_COLS " FROM subscriptions s WHERE "
                                         "s.tenant_id = ?1 AND s.kind = 1 AND s.deleted = 0"));
  s.Bind(1, tenant.value);
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<Subscription>();
  OB_ASSIGN_OR_RETURN(Subscription sub, ReadSubscription(s, 0));
  return std::optional<Subscription>(std::move(sub));
}

Result<std::pair<Subscription, bool>> SqlTxn::PutOperationsWebhook(TenantId tenant,
                                                                   std::string_view url,
                                                                   std::string_view secret,
                                                                   UnixMs now) {
  OB_ASSIGN_OR_RETURN(std::optional<Subscription> existing, GetOperationsWebhook(tenant));
  if (existing) {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE subscriptions SET url = ?2, updated_at = ?3 "
                                           "WHERE id = ?1"));
    s.Bind(1, existing->id.value).Bind(2, url).Bind(3, now);
    OB_RETURN_IF_ERROR(s.Run());
    existing->url = std::string(url);
    existing->updated_at = now;
    return std::make_pair(std::move(*existing), false);
  }
  // subscriptions.client_id must name a client: the operations webhook gets one of its own,
  // created deleted so that no client list or key ever reaches it.
  OB_ASSIGN_OR_RETURN(Stmt c,
                      c_.Prepare("INSERT INTO clients(tenant_id, name, source_system, "
                                 "billing_details_allowed, created_at, deleted_at) VALUES "
                                 "(?1, '(operations webhook)', '', 0, ?2, ?2) RETURNING id"));
  c.Bind(1, tenant.value).Bind(2, now);
  OB_ASSIGN_OR_RETURN(const std::int64_t new_id, InsertedId(c));
  Subscription sub;
  sub.tenant = tenant;
  sub.client = ClientId(new_id);
  sub.url = std::string(url);
  sub.options.include_customer_context = false;
  sub.options.include_contact_details = false;
  sub.description = "operations webhook";
  sub.secret = std::string(secret);
  sub.created_at = now;
  sub.updated_at = now;
  sub.operations = true;
  OB_ASSIGN_OR_RETURN(Subscription created, CreateSubscription(sub));
  return std::make_pair(std::move(created), true);
}

Result<bool> SqlTxn::DeleteOperationsWebhook(TenantId tenant) {
  OB_ASSIGN_OR_RETURN(std::optional<Subscription> existing, GetOperationsWebhook(tenant));
  if (!existing) return false;
  OB_RETURN_IF_ERROR(MarkSubscriptionDeleted(existing->id));
  OB_RETURN_IF_ERROR(CancelOpenDeliveries(existing->id));
  return true;
}

Result<std::optional<DeliveryJob>> SqlTxn::InsertOperationalEvent(
    TenantId tenant, std::string_view event_id, std::string_view event_type,
    std::string_view data_json, UnixMs now, std::string_view owner, UnixMs lease_until) {
  OB_ASSIGN_OR_RETURN(std::optional<Subscription> ops, GetOperationsWebhook(tenant));
  if (!ops || !ops->enabled) return std::optional<DeliveryJob>();
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("INSERT INTO events(event_id, tenant_id, event_type, "
                                           "target_id, occurred_at, accepted_at, "
                                           "origin_client_id, data, operational) VALUES (?1, ?2, "
                                           "?3, NULL, ?4, ?4, NULL, ?5, 1)"));
    s.Bind(1, event_id).Bind(2, tenant.value).Bind(3, event_type).Bind(4, now).Bind(5, data_json);
    OB_RETURN_IF_ERROR(s.Run());
  }
  NewDelivery row;
  row.tenant = tenant;
  row.event_id = std::string(event_id);
  row.subscription = ops->id;
  row.data_json = std::string(data_json);
  row.next_attempt_at = now;
  OB_ASSIGN_OR_RETURN(std::vector<DeliveryJob> jobs,
                      InsertDeliveries({row}, owner, now, lease_until));
  if (jobs.empty()) return std::optional<DeliveryJob>();
  return std::optional<DeliveryJob>(std::move(jobs.front()));
}

}  // namespace outbound::store::sql
