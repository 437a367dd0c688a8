// SqlTxn: the portal's links and sessions (CONTRACT §13, store.h "the portal"). Tokens are never
// stored, only their SHA-256 hex.
#include "store/sql/txn_util.h"

namespace outbound::store::sql {

Status SqlTxn::CreatePortalLink(TenantId tenant, ClientId client, std::string_view link_hash,
                                UnixMs now, UnixMs expires_at) {
  // Expired rows of this tenant are dead weight: nothing reads them again (an expired link
  // answers like an unknown one once it is gone, which tells its holder nothing new).
  for (const char* sql : {"DELETE FROM portal_links WHERE tenant_id = ?1 AND expires_at < ?2",
                          "DELETE FROM portal_sessions WHERE tenant_id = ?1 AND expires_at < ?2"}) {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
    s.Bind(1, tenant.value).Bind(2, now);
    OB_RETURN_IF_ERROR(s.Run());
  }
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("INSERT INTO portal_links(tenant_id, client_id, "
                                         "token_hash, created_at, expires_at) VALUES "
                                         "(?1, ?2, ?3, ?4, ?5)"));
  s.Bind(1, tenant.value).Bind(2, client.value).Bind(3, link_hash).Bind(4, now).Bind(5, expires_at);
  return s.Run();
}

Result<PortalRedeemResult> SqlTxn::RedeemPortalLink(std::string_view link_hash,
                                                    std::string_view session_hash, UnixMs now,
                                                    UnixMs session_expires_at) {
  PortalRedeemResult out;
  std::optional<PortalSession> session;
  {
    // One conditional UPDATE: of two concurrent redeems (two processes on PostgreSQL) the
    // second waits for the first's row lock, then finds used_at set and changes nothing.
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE portal_links SET used_at = ?2 WHERE "
                                           "token_hash = ?1 AND used_at IS NULL AND expires_at "
                                           "> ?2 RETURNING tenant_id, client_id"));
    s.Bind(1, link_hash).Bind(2, now);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) {
      session = PortalSession{TenantId(s.Int(0)), ClientId(s.Int(1)), session_expires_at};
      OB_RETURN_IF_ERROR(s.Run());
    }
  }
  if (!session) {
    OB_ASSIGN_OR_RETURN(Stmt s,
                        c_.Prepare("SELECT used_at FROM portal_links WHERE token_hash = ?1"));
    s.Bind(1, link_hash);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) out.outcome = s.IsNull(0) ? PortalRedeem::kExpired : PortalRedeem::kUsed;
    return out;
  }
  {
    // A link of a client deleted since is used up but signs nobody in.
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT 1 FROM clients WHERE id = ?1 AND tenant_id = "
                                           "?2 AND deleted_at IS NULL"));
    s.Bind(1, session->client.value).Bind(2, session->tenant.value);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return out;
    OB_RETURN_IF_ERROR(s.Run());
  }
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("INSERT INTO portal_sessions(tenant_id, client_id, "
                                         "token_hash, created_at, expires_at) VALUES "
                                         "(?1, ?2, ?3, ?4, ?5)"));
  s.Bind(1, session->tenant.value)
      .Bind(2, session->client.value)
      .Bind(3, session_hash)
      .Bind(4, now)
      .Bind(5, session_expires_at);
  OB_RETURN_IF_ERROR(s.Run());
  out.outcome = PortalRedeem::kRedeemed;
  out.session = session;
  return out;
}

Result<std::optional<PortalSession>> SqlTxn::FindPortalSession(std::string_view session_hash,
                                                               UnixMs now) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT s.tenant_id, s.client_id, s.expires_at FROM "
                                         "portal_sessions s JOIN clients c ON c.id = s.client_id "
                                         "AND c.tenant_id = s.tenant_id WHERE s.token_hash = ?1 "
                                         "AND s.expires_at > ?2 AND c.deleted_at IS NULL"));
  s.Bind(1, session_hash).Bind(2, now);
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<PortalSession>();
  PortalSession found{TenantId(s.Int(0)), ClientId(s.Int(1)), s.Int(2)};
  OB_RETURN_IF_ERROR(s.Run());
  return std::optional<PortalSession>(found);
}

Result<bool> SqlTxn::DeletePortalSession(std::string_view session_hash) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("DELETE FROM portal_sessions WHERE token_hash = ?1"));
  s.Bind(1, session_hash);
  OB_RETURN_IF_ERROR(s.Run());
  return c_.Changes() > 0;
}

}  // namespace outbound::store::sql
