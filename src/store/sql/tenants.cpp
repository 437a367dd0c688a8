// SqlTxn: tenants, API keys and integration clients.
#include "store/sql/txn_util.h"

namespace outbound::store::sql {

using namespace util;  // NOLINT(google-build-using-namespace): the shared helpers of store/sql

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
  // A client is named by its source system (CONTRACT §1): targets are found by their external
  // id in it, so two live clients of one system would import, update and cancel each other's
  // targets. Checked in the transaction, the tenant's row locked first on PostgreSQL, so that two
  // processes creating one at once take turns (SQLite's writer runs one at a time).
  {
    OB_ASSIGN_OR_RETURN(Stmt lock, c_.Prepare(ForUpdate("SELECT id FROM tenants WHERE id = ?1")));
    lock.Bind(1, client.tenant.value);
    OB_RETURN_IF_ERROR(lock.Run());
    OB_ASSIGN_OR_RETURN(Stmt q, c_.Prepare("SELECT id FROM clients WHERE tenant_id = ?1 AND "
                                           "source_system = ?2 AND deleted_at IS NULL LIMIT 1"));
    q.Bind(1, client.tenant.value).Bind(2, client.source_system);
    OB_ASSIGN_OR_RETURN(const bool taken, q.Step());
    if (taken) {
      core::Error e = core::Error::Conflict(
          "conflict", "client " + std::to_string(q.Int(0)) + " already has sourceSystem " +
                          client.source_system +
                          ": a tenant has one client per source system (give this one its own)");
      e.field = "sourceSystem";
      return Fail(std::move(e));
    }
  }
  FanoutTablesChanged();  // no update hook on PostgreSQL (EnableFanoutCache)
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
  FanoutTablesChanged();  // no update hook on PostgreSQL (EnableFanoutCache)
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
  FanoutTablesChanged();  // no update hook on PostgreSQL (EnableFanoutCache)
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

}  // namespace outbound::store::sql
