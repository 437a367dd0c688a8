// SqlTxn: subscriptions, the fan-out list, disabling and the operations webhook.
#include "store/sql/txn_util.h"

namespace outbound::store::sql {

using namespace util;  // NOLINT(google-build-using-namespace): the shared helpers of store/sql

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
  sub.paused = s.Int(c0 + 25) != 0;
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
  FanoutTablesChanged();  // no update hook on PostgreSQL (EnableFanoutCache)
  OB_ASSIGN_OR_RETURN(
      Stmt s,
      c_.Prepare("INSERT INTO subscriptions(tenant_id, client_id, url, event_types, "
                 "include_customer_context, include_contact_details, include_summary_preview, "
                 "include_billing_details, ordered, enabled, description, rate_limit_per_second, "
                 "max_concurrency, headers, secret, previous_secret, previous_secret_expires_at, "
                 "disabled_reason, disabled_at, last_success_at, failing_since, created_at, "
                 "updated_at, kind, paused) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                 "?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25) "
                 "RETURNING id"));
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
      .Bind(24, sub.operations ? 1 : 0)
      .Bind(25, sub.paused);
  OB_ASSIGN_OR_RETURN(const std::int64_t new_id, InsertedId(s));
  Subscription out = sub;
  out.id = SubscriptionId(new_id);
  return out;
}

Result<std::optional<Subscription>> SqlTxn::GetSubscription(TenantId tenant, SubscriptionId id) {
  // In a write transaction on a shared database the row is locked (ForUpdate): a PATCH reads,
  // changes and writes the whole row back, and must not undo another process's change made in
  // between (an automatic disable, a rotated secret).
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare(ForUpdate("SELECT " OB_SUB_COLS " FROM subscriptions s WHERE s.id = ?1 "
                                   "AND s.tenant_id = ?2 AND s.deleted = 0 AND s.kind = 0")));
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
  FanoutTablesChanged();  // no update hook on PostgreSQL (EnableFanoutCache)
  bool was_enabled = false;
  bool was_ordered = false;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT enabled, ordered FROM subscriptions WHERE id = "
                                           "?1 AND tenant_id = ?2 AND deleted = 0 AND kind = 0"));
    s.Bind(1, sub.id.value).Bind(2, sub.tenant.value);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return Fail(core::Error::NotFound("subscription"));
    was_enabled = s.Int(0) != 0;
    was_ordered = s.Int(1) != 0;
  }
  // last_success_at and failing_since belong to RecordOutcomes (the caller's copy may be stale);
  // re-enabling a disabled subscription, or unpausing a paused one (the time paused made no
  // attempts), starts its failing period afresh.
  {
    OB_ASSIGN_OR_RETURN(
        Stmt s,
        c_.Prepare("UPDATE subscriptions SET url = ?3, event_types = ?4, include_customer_context "
                   "= ?5, include_contact_details = ?6, include_summary_preview = ?7, "
                   "include_billing_details = ?8, ordered = ?9, failing_since = CASE WHEN (?10 = "
                   "1 AND enabled = 0) OR (?21 = 0 AND paused = 1) THEN NULL ELSE failing_since "
                   "END, enabled = ?10, "
                   "description = ?11, rate_limit_per_second = ?12, max_concurrency = ?13, "
                   "headers = ?14, secret = ?15, previous_secret = ?16, "
                   "previous_secret_expires_at = ?17, disabled_reason = ?18, disabled_at = ?19, "
                   "updated_at = ?20, paused = ?21 WHERE id = ?1 AND tenant_id = ?2"));
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
        .Bind(20, sub.updated_at)
        .Bind(21, sub.paused);
    OB_RETURN_IF_ERROR(s.Run());
  }
  if (sub.ordered && !was_ordered) {
    // Made ordered: its open rows made while it was not get their event's order, in this
    // transaction, so that the claim's check sees them (OB_NOT_BLOCKED; bounded by the
    // subscription's backlog). Made unordered: the rows keep theirs, which the claim no longer
    // reads (`ordered = 0 OR ...`) and which stay right (an event's order never changes) should
    // it become ordered again; rows made meanwhile have none and are filled then.
    OB_ASSIGN_OR_RETURN(Stmt s,
                        c_.Prepare(OB_FILL_EVENT_ORDER " AND deliveries.subscription_id = ?1"));
    s.Bind(1, sub.id.value);
    OB_RETURN_IF_ERROR(s.Run());
  }
  if (was_enabled && !sub.enabled) return CancelOpenDeliveries(sub.id);
  return {};
}

Status SqlTxn::MarkSubscriptionDeleted(SubscriptionId sub) {
  FanoutTablesChanged();  // no update hook on PostgreSQL (EnableFanoutCache)
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
  // A cancelled row is held for nothing (SQLite's migration 15, PostgreSQL's 11; store/sql/
  // deliveries.cpp, HoldWaitingRows, HoldBlockedRows): so no row that Redeliver or recover
  // reopens comes back held.
  // Test rows, never counted (CONTRACT §13; they wait on a paused subscription), with the next
  // round trip on PostgreSQL; then the ordinary rows, counted in
  // outbound_deliveries_total{result="cancelled"}.
  for (const std::int64_t test : {1, 0}) {
    OB_ASSIGN_OR_RETURN(
        Stmt s, c_.Prepare("UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, "
                           "held = 0 WHERE subscription_id = ?1 AND status IN ('pending', "
                           "'failed') AND status <> 'succeeded' AND test = ?2"));
    s.Bind(1, sub.value).Bind(2, test);
    if (test == 1) {
      OB_RETURN_IF_ERROR(s.RunLater());
    } else {
      OB_RETURN_IF_ERROR(s.Run());
      tally_.cancelled += static_cast<std::uint64_t>(c_.Changes());
    }
  }
  return {};
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

Result<std::vector<Backlog>> SqlTxn::GetBacklogs(TenantId tenant,
                                                 const std::vector<SubscriptionId>& subs) {
  // Per subscription, from the index deliveries_subscription (subscription_id, status,
  // next_attempt_at) alone: the open rows counted up to kBacklogCountCap + 1 and the earliest
  // due time of each open status (a MIN over an index prefix is one probe).
  std::vector<Backlog> out(subs.size());
  for (std::size_t i = 0; i < subs.size(); ++i) {
    OB_ASSIGN_OR_RETURN(
        Stmt s,
        c_.Prepare("SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries d WHERE "
                   "d.subscription_id = ?1 AND d.status IN ('pending', 'failed') AND d.status <> "
                   "'succeeded' LIMIT ?3) open_rows), (SELECT MIN(d.next_attempt_at) FROM "
                   "deliveries d WHERE d.subscription_id = ?1 AND d.status = 'pending' AND "
                   "d.status <> 'succeeded'), (SELECT MIN(d.next_attempt_at) FROM deliveries d "
                   "WHERE d.subscription_id = ?1 AND d.status = 'failed' AND d.status <> "
                   "'succeeded') FROM subscriptions s WHERE s.id = ?1 AND s.tenant_id = ?2"));
    s.Bind(1, subs[i].value).Bind(2, tenant.value).Bind(3, kBacklogCountCap);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) continue;
    out[i].pending = s.Int(0);
    std::optional<UnixMs> a = s.OptInt(1);
    std::optional<UnixMs> b = s.OptInt(2);
    if (a && b) {
      out[i].oldest_due_at = std::min(*a, *b);
    } else {
      out[i].oldest_due_at = a ? a : b;
    }
  }
  return out;
}

void SqlTxn::EnableFanoutCache(bool per_transaction) {
  fanout_cache_.emplace();
  fanout_cache_->per_transaction = per_transaction;
}

void SqlTxn::FanoutTablesChanged() {
  // The claim's release pass hears of a subscription's change from SubscriptionChanged (SQLite's
  // update hook reports every one with its row id; PostgreSQL holds no rows).
  if (!fanout_cache_ || fanout_cache_->neutral) return;  // a subscription's health columns only
  fanout_cache_->by_tenant.clear();
  fanout_cache_->tainted = true;
}

void SqlTxn::SubscriptionChanged(std::int64_t rowid) {
  if (fanout_cache_ && fanout_cache_->neutral) return;  // a subscription's health columns only
  if (!release_wanted_) {
    release_subs_.insert(rowid);
    if (release_subs_.size() > kReleaseSubsAtMost) {  // then one whole pass
      release_wanted_ = true;
      release_subs_.clear();
    }
  }
  FanoutTablesChanged();
}

void SqlTxn::TransactionEnded(bool committed) {
  pack_ahead_.reset();  // renderings prepared for a task that did not store them (it failed)
  // Looked at again whether the transaction committed or not (it costs a probe each); and what
  // it looked at again, unless its COMMIT succeeded (Committed).
  RecheckUndone();
  recheck_pending_.insert(recheck_pending_.end(), recheck_next_.begin(), recheck_next_.end());
  recheck_next_.clear();
  recheck_targets_pending_.insert(recheck_targets_next_.begin(), recheck_targets_next_.end());
  recheck_targets_next_.clear();
  lease_facts_ = {};
  marked_.reset();
  rows_held_back_.clear();
  if (!committed && release_passes_ != release_passes_at_transaction_) ReleaseUndone();
  release_passes_at_transaction_ = release_passes_;
  release_passes_at_task_ = release_passes_;
  if (directory_cache_) {
    directory_cache_->tainted = false;
    if (!committed) directory_cache_->Clear();
  }
  if (!fanout_cache_) return;
  fanout_cache_->tainted = false;
  // Not needed after a rollback (see tainted); cheap insurance.
  if (!committed || fanout_cache_->per_transaction) fanout_cache_->by_tenant.clear();
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
                                        "s.client_id WHERE s.tenant_id = ?1 "
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
// Disabling and operational webhooks

Result<bool> SqlTxn::DisableSubscription(TenantId tenant, SubscriptionId id,
                                         std::string_view reason, UnixMs now) {
  FanoutTablesChanged();  // no update hook on PostgreSQL (EnableFanoutCache)
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE subscriptions SET enabled = 0, disabled_reason = "
                                         "?3, disabled_at = ?4, updated_at = ?4 WHERE id = ?1 AND "
                                         "tenant_id = ?2 AND enabled = 1 AND deleted = 0"));
  s.Bind(1, id.value).Bind(2, tenant.value).Bind(3, reason).Bind(4, now);
  OB_RETURN_IF_ERROR(s.Run());
  if (c_.Changes() == 0) return false;
  OB_RETURN_IF_ERROR(CancelOpenDeliveries(id));
  return true;
}

Result<std::optional<std::int64_t>> SqlTxn::ResealSecrets(std::int64_t after, int limit) {
  struct Row {
    std::int64_t id = 0;
    std::string secret;
    std::optional<std::string> previous;
    std::string headers;
  };
  std::vector<Row> rows;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(ForUpdate("SELECT id, secret, previous_secret, headers "
                                                     "FROM subscriptions WHERE id > ?1 ORDER "
                                                     "BY id LIMIT ?2")));
    s.Bind(1, after).Bind(2, std::max(limit, 1));
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      rows.push_back(Row{s.Int(0), s.Text(1), s.OptText(2), s.Text(3)});
    }
  }
  if (rows.empty()) return std::optional<std::int64_t>();
  auto reseal = [&](const std::string& v) -> Result<std::string> {
    if (!secrets_.NeedsReseal(v)) return v;
    OB_ASSIGN_OR_RETURN(std::string plain, secrets_.Open(v));
    return secrets_.Seal(plain);
  };
  for (const Row& r : rows) {
    const bool stale = secrets_.NeedsReseal(r.secret) || secrets_.NeedsReseal(r.headers) ||
                       (r.previous && secrets_.NeedsReseal(*r.previous));
    if (!stale) continue;
    OB_ASSIGN_OR_RETURN(std::string secret, reseal(r.secret));
    OB_ASSIGN_OR_RETURN(std::string headers, reseal(r.headers));
    std::optional<std::string> previous;
    if (r.previous) {
      OB_ASSIGN_OR_RETURN(previous, reseal(*r.previous));
    }
    OB_ASSIGN_OR_RETURN(Stmt u, c_.Prepare("UPDATE subscriptions SET secret = ?2, headers = ?3, "
                                           "previous_secret = ?4 WHERE id = ?1"));
    u.Bind(1, r.id).Bind(2, secret).Bind(3, headers).Bind(4, previous);
    OB_RETURN_IF_ERROR(u.Run());
  }
  return std::optional<std::int64_t>(rows.back().id);
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
  FanoutTablesChanged();  // no update hook on PostgreSQL (EnableFanoutCache)
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
  OB_RETURN_IF_ERROR(InsertUnlistedEvent(tenant, event_id, event_type, data_json, now,
                                         UnlistedEvent::kOperational));
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
