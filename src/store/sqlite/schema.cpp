#include "store/sqlite/schema.h"

#include <string>

namespace outbound::store::sqlite {
namespace {

// Never edit a migration that has shipped: add the next one.
//
// Notes on the choices:
// - Clients and subscriptions are soft-deleted (deleted_at / deleted) so that the delivery log
//   of an event keeps naming them; a deleted row's secrets are wiped.
// - Directory records are keyed (tenant_id, id): Ordinavo ids are given by the tenant.
// - external_ids holds the external ids of every kind (0 customer, 1 location, 2 contact,
//   3 target); UNIQUE(tenant_id, kind, source_system, external_id) makes a reused id a conflict.
// - deliveries_due indexes the rows a claim may take (pending/failed, unleased, and since
//   migration 15 not held for a paused subscription or held back by ordering), so claiming
//   never walks leased, held or finished rows, and fan-out rows (inserted leased) cost no entry
//   there.
// - The hot tables (deliveries, attempts) carry no foreign keys: every check is an extra index
//   probe per row, and the writer is the only code that writes them.
constexpr const char* kMigrations[] = {
    // 1: the whole schema.
    R"sql(
CREATE TABLE tenants (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE clients (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id INTEGER NOT NULL REFERENCES tenants(id),
  name TEXT NOT NULL,
  source_system TEXT NOT NULL,
  billing_details_allowed INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  deleted_at INTEGER
);
CREATE INDEX clients_tenant ON clients(tenant_id, id);

CREATE TABLE api_keys (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id INTEGER NOT NULL REFERENCES tenants(id),
  kind INTEGER NOT NULL,
  client_id INTEGER REFERENCES clients(id),
  token_hash TEXT NOT NULL UNIQUE,
  prefix TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id, id);
CREATE INDEX api_keys_client ON api_keys(client_id);

CREATE TABLE customers (
  tenant_id INTEGER NOT NULL REFERENCES tenants(id),
  id INTEGER NOT NULL,
  customer_number TEXT NOT NULL,
  name TEXT NOT NULL,
  internal_notes TEXT,
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE locations (
  tenant_id INTEGER NOT NULL REFERENCES tenants(id),
  id INTEGER NOT NULL,
  customer_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  address TEXT,
  access_secret TEXT,
  internal_notes TEXT,
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE contacts (
  tenant_id INTEGER NOT NULL REFERENCES tenants(id),
  id INTEGER NOT NULL,
  customer_id INTEGER NOT NULL,
  display_name TEXT NOT NULL,
  phone TEXT,
  email TEXT,
  internal_notes TEXT,
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE external_ids (
  tenant_id INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  entity_id INTEGER NOT NULL,
  source_system TEXT NOT NULL,
  external_id TEXT NOT NULL,
  PRIMARY KEY (tenant_id, kind, entity_id, source_system),
  UNIQUE (tenant_id, kind, source_system, external_id)
) WITHOUT ROWID;

CREATE TABLE targets (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id INTEGER NOT NULL REFERENCES tenants(id),
  import_client_id INTEGER NOT NULL,
  source_system TEXT NOT NULL,
  external_id TEXT NOT NULL,
  customer_id INTEGER NOT NULL,
  location_id INTEGER,
  contact_id INTEGER,
  title TEXT NOT NULL,
  description TEXT,
  earliest_start INTEGER,
  latest_end INTEGER,
  duration_minutes INTEGER,
  internal_notes TEXT,
  status TEXT NOT NULL,
  cancel_reason TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX targets_tenant ON targets(tenant_id, id);

CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  event_id TEXT NOT NULL UNIQUE,
  tenant_id INTEGER NOT NULL,
  event_type TEXT NOT NULL,
  target_id INTEGER,
  occurred_at INTEGER NOT NULL,
  accepted_at INTEGER NOT NULL,
  origin_client_id INTEGER,
  data TEXT NOT NULL
);
CREATE INDEX events_tenant ON events(tenant_id, event_id);
CREATE INDEX events_target ON events(tenant_id, target_id, event_id);

CREATE TABLE idempotency (
  tenant_id INTEGER NOT NULL,
  key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  status INTEGER NOT NULL,
  body TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, key)
);

CREATE TABLE subscriptions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id INTEGER NOT NULL REFERENCES tenants(id),
  client_id INTEGER NOT NULL REFERENCES clients(id),
  url TEXT NOT NULL,
  event_types TEXT NOT NULL,
  include_customer_context INTEGER NOT NULL,
  include_contact_details INTEGER NOT NULL,
  include_summary_preview INTEGER NOT NULL,
  include_billing_details INTEGER NOT NULL,
  ordered INTEGER NOT NULL,
  enabled INTEGER NOT NULL,
  description TEXT NOT NULL,
  rate_limit_per_second REAL,
  max_concurrency INTEGER,
  headers TEXT NOT NULL,
  secret TEXT NOT NULL,
  previous_secret TEXT,
  previous_secret_expires_at INTEGER,
  disabled_reason TEXT,
  disabled_at INTEGER,
  last_success_at INTEGER,
  failing_since INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX subscriptions_tenant ON subscriptions(tenant_id, client_id, id);

CREATE TABLE deliveries (
  id INTEGER PRIMARY KEY,
  tenant_id INTEGER NOT NULL,
  event_id TEXT NOT NULL,
  subscription_id INTEGER NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  cycle_attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER,
  lease_owner TEXT,
  lease_until INTEGER,
  data_json TEXT NOT NULL,
  last_delivery_id TEXT,
  created_at INTEGER NOT NULL,
  UNIQUE (event_id, subscription_id)
);
CREATE INDEX deliveries_due ON deliveries(next_attempt_at)
  WHERE status IN ('pending', 'failed') AND lease_owner IS NULL;
CREATE INDEX deliveries_subscription ON deliveries(subscription_id, status);

CREATE TABLE attempts (
  id INTEGER PRIMARY KEY,
  tenant_id INTEGER NOT NULL,
  delivery_row_id INTEGER NOT NULL,
  subscription_id INTEGER NOT NULL,
  event_id TEXT NOT NULL,
  delivery_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  attempted_at INTEGER NOT NULL,
  http_status INTEGER,
  duration_ms INTEGER NOT NULL,
  error TEXT,
  response_snippet TEXT
);
CREATE INDEX attempts_subscription ON attempts(subscription_id, id);
CREATE INDEX attempts_delivery ON attempts(delivery_row_id, id);
)sql",
    // 2: operational webhooks (CONTRACT §11) and ordered claiming (§6). The operations endpoint
    // is a hidden subscription (kind 1) whose client row is created deleted, so no client list
    // shows it; operational events are kept out of the tenant's event list.
    R"sql(
ALTER TABLE subscriptions ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;
CREATE INDEX subscriptions_operations ON subscriptions(tenant_id) WHERE kind = 1 AND deleted = 0;
ALTER TABLE events ADD COLUMN operational INTEGER NOT NULL DEFAULT 0;
)sql",
    // 3: the store contract for concurrent writers (store.h): fenced leases that expire with
    // their owner, subscription owners, the failure streak as a counter, and change versions
    // (tenants whose subscriptions, clients or keys changed, for other processes' caches).
    R"sql(
CREATE TABLE lease_owners (
  owner TEXT PRIMARY KEY,
  lease_until INTEGER NOT NULL,
  reaped INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE subscription_owners (
  subscription_id INTEGER PRIMARY KEY,
  owner TEXT NOT NULL
);
CREATE INDEX subscription_owners_owner ON subscription_owners(owner);
CREATE INDEX deliveries_leased ON deliveries(lease_owner) WHERE lease_owner IS NOT NULL;
ALTER TABLE subscriptions ADD COLUMN failing_attempts INTEGER NOT NULL DEFAULT 0;
UPDATE subscriptions SET failing_attempts = (SELECT COUNT(*) FROM attempts a WHERE
  a.subscription_id = subscriptions.id AND a.attempted_at >= subscriptions.failing_since)
  WHERE failing_since IS NOT NULL;

CREATE TABLE config_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
INSERT INTO config_version(id, version) VALUES (1, 1);
ALTER TABLE tenants ADD COLUMN config_version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tenants_config_version ON tenants(config_version);
CREATE TRIGGER subscriptions_changed AFTER UPDATE OF url, event_types, include_customer_context,
  include_contact_details, include_summary_preview, include_billing_details, ordered, enabled,
  rate_limit_per_second, max_concurrency, headers, secret, previous_secret,
  previous_secret_expires_at, deleted, client_id ON subscriptions
BEGIN
  UPDATE config_version SET version = version + 1 WHERE id = 1;
  UPDATE tenants SET config_version = (SELECT version FROM config_version WHERE id = 1)
    WHERE id = NEW.tenant_id;
END;
CREATE TRIGGER subscriptions_added AFTER INSERT ON subscriptions
BEGIN
  UPDATE config_version SET version = version + 1 WHERE id = 1;
  UPDATE tenants SET config_version = (SELECT version FROM config_version WHERE id = 1)
    WHERE id = NEW.tenant_id;
END;
CREATE TRIGGER clients_changed AFTER UPDATE OF name, source_system, billing_details_allowed,
  deleted_at ON clients
BEGIN
  UPDATE config_version SET version = version + 1 WHERE id = 1;
  UPDATE tenants SET config_version = (SELECT version FROM config_version WHERE id = 1)
    WHERE id = NEW.tenant_id;
END;
CREATE TRIGGER api_keys_changed AFTER UPDATE OF revoked_at ON api_keys
BEGIN
  UPDATE config_version SET version = version + 1 WHERE id = 1;
  UPDATE tenants SET config_version = (SELECT version FROM config_version WHERE id = 1)
    WHERE id = NEW.tenant_id;
END;
)sql",
    // 4: the portal (CONTRACT §13): one-time links a tenant makes for a client and the sessions
    // they are exchanged for; only hashes of their tokens. Expired rows are deleted when the
    // tenant makes its next link (Txn::CreatePortalLink).
    R"sql(
CREATE TABLE portal_links (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id INTEGER NOT NULL REFERENCES tenants(id),
  client_id INTEGER NOT NULL REFERENCES clients(id),
  token_hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER
);
CREATE INDEX portal_links_tenant ON portal_links(tenant_id, expires_at);
CREATE TABLE portal_sessions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id INTEGER NOT NULL REFERENCES tenants(id),
  client_id INTEGER NOT NULL REFERENCES clients(id),
  token_hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX portal_sessions_tenant ON portal_sessions(tenant_id, expires_at);
)sql",
    // 5 (retention and gauges, CONTRACT §13): idempotency keys are purged by age after 24 h,
    // and GET /metrics counts the disabled subscriptions, each with an index so that neither
    // walks the whole table. (The events to purge are found through their eventId, a ULID
    // that sorts by acceptance: the existing unique index.)
    R"sql(
CREATE INDEX idempotency_created ON idempotency(created_at);
CREATE INDEX subscriptions_disabled ON subscriptions(id) WHERE enabled = 0 AND deleted = 0;
)sql",
    // 6 (surfaces, CONTRACT §13): `paused` subscriptions (deliveries held, not cancelled; a
    // change of it is a configuration change like `enabled`), the backlog index (open rows of
    // one subscription with their due time: counted and their minimum read from the index
    // alone), and indexes that find what refers to a directory record (409 in_use on delete).
    R"sql(
ALTER TABLE subscriptions ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER subscriptions_paused_changed AFTER UPDATE OF paused ON subscriptions
BEGIN
  UPDATE config_version SET version = version + 1 WHERE id = 1;
  UPDATE tenants SET config_version = (SELECT version FROM config_version WHERE id = 1)
    WHERE id = NEW.tenant_id;
END;
DROP INDEX deliveries_subscription;
CREATE INDEX deliveries_subscription ON deliveries(subscription_id, status, next_attempt_at);
CREATE INDEX targets_customer ON targets(tenant_id, customer_id);
CREATE INDEX targets_location ON targets(tenant_id, location_id) WHERE location_id IS NOT NULL;
CREATE INDEX targets_contact ON targets(tenant_id, contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX locations_customer ON locations(tenant_id, customer_id);
CREATE INDEX contacts_customer ON contacts(tenant_id, customer_id);
)sql",
    // 7 (test webhooks and delivery stats
    // (CONTRACT §13). `test` marks a test event, its delivery and its attempt: kept out of the
    // event list, of retries and of every count. attempts_stats serves GET
    // /v1/subscriptions/{id}/stats: one range scan per (subscription, time window), covering
    // (no table lookups), test attempts not even in it.
    R"sql(
ALTER TABLE events ADD COLUMN test INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN test INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN test INTEGER NOT NULL DEFAULT 0;
CREATE INDEX attempts_stats ON attempts(subscription_id, attempted_at, http_status, duration_ms)
  WHERE test = 0;
)sql",
    // 8 (issue 8, bytes per waiting delivery): the rendered data is stored once per event and
    // render variant in `payloads`; a delivery refers to it by payload_id and stores '' in
    // data_json (an empty text costs its row one header byte). Rows written before keep their
    // data_json and no payload_id: readers take COALESCE(payload, data_json). The migration
    // moves no row, so it is instant on any table size (copying the old rows' data into
    // payloads would rewrite the whole table and its WAL in one transaction, at startup, for
    // rows that retention removes anyway). Retention deletes a payload with the last delivery
    // that refers to it (PurgeEvents: by the ids its DELETE of deliveries returns), so payloads
    // need no index but their primary key.
    // Two copies are no longer written either (no schema change; old rows keep theirs): an
    // attempt's event_id is '' (its delivery's is read), a delivery's last_delivery_id stays NULL
    // (its newest attempt's deliveryId is read).
    R"sql(
CREATE TABLE payloads (
  id INTEGER PRIMARY KEY,
  event_id TEXT NOT NULL,
  data_json TEXT NOT NULL
);
ALTER TABLE deliveries ADD COLUMN payload_id INTEGER;
)sql",
    // 9 (issue 8, bytes per waiting delivery): no change of tables. A rendering in payloads may
    // now be a zlib stream (store/sql/payload_codec.h), which a build that knows only 8 migrations
    // would send as it is: the version number makes such a build refuse the file ("newer than
    // this outbound build knows") instead.
    R"sql(
SELECT 1;
)sql",
    // 10 (issue 8, the writer's CPU per rendering): no change of tables. A rendering in payloads
    // may now be a zstd frame with a built-in dictionary (store/sql/payload_codec.h), which a
    // build that knows only 9 migrations would send as it is (it reads only zlib streams): the
    // version number makes such a build refuse the file instead. zlib values still read.
    R"sql(
SELECT 1;
)sql",
    // 11 (ordered claims): a delivery of an ordered subscription to an event with a target
    // carries its event's order, target_id, occurred_at and event_row (the event's id, its
    // acceptance order), so that the claim's check (store/sql/deliveries.cpp, OB_NOT_BLOCKED)
    // is one probe of deliveries_ordered instead of a join over the subscription's whole open
    // backlog and its events for each candidate (O(n²) per claim). Rows of unordered
    // subscriptions keep them NULL: not in the index, so an ordinary delivery writes no entry.
    // The open rows of ordered subscriptions are filled here (bounded by their backlog); closed
    // rows are filled when reopened (Redeliver, RecoverDeliveriesStep).
    R"sql(
ALTER TABLE deliveries ADD COLUMN target_id INTEGER;
ALTER TABLE deliveries ADD COLUMN occurred_at INTEGER;
ALTER TABLE deliveries ADD COLUMN event_row INTEGER;
UPDATE deliveries SET target_id = e.target_id, occurred_at = e.occurred_at, event_row = e.id
  FROM events e
  WHERE e.event_id = deliveries.event_id AND e.target_id IS NOT NULL
    AND deliveries.status IN ('pending', 'failed')
    AND deliveries.subscription_id IN (SELECT id FROM subscriptions WHERE ordered = 1);
CREATE INDEX deliveries_ordered ON deliveries(subscription_id, target_id, occurred_at, event_row)
  WHERE target_id IS NOT NULL AND status IN ('pending', 'failed');
)sql",
    // 12 (issue 8, the writer's CPU per delivery): deliveries_subscription without the succeeded
    // rows. Every statement that reads it asks for open, dead or cancelled rows (recover, the
    // backlog, cancelling, ordering); succeeded rows are nearly the whole table, and each
    // delivery that succeeded moved within the index (a delete and an insert, at K=10 a quarter
    // of the WAL's pages). Now it leaves the index. Such statements name the predicate as it is
    // (store/sql/txn_util.h). Building the index reads the table once, at the upgrade.
    R"sql(
DROP INDEX deliveries_subscription;
CREATE INDEX deliveries_subscription ON deliveries(subscription_id, status, next_attempt_at)
  WHERE status <> 'succeeded';
)sql",
    // 13 (issue 8, fewer b-trees per event): a target's events are a chain instead of an index.
    // events_target (tenant, target, event id) took an entry per event on the page of its
    // target: at K=1 a page written per event (42 % of the WAL's pages) and 12 % of the CPU. Now
    // the target row keeps its newest event (last_event_row, which a publish updates with the
    // row's status anyway) and each event the row id of the event before it of its target
    // (prev_target_row); GET /v1/events?targetId= follows the chain (store/sql/events.cpp,
    // ListTargetEvents). An event that links to nothing (the first of its target, one whose
    // target has no row, every event stored before this migration) is "unlinked": only those are
    // indexed, by events_target_start, and the list merges the two. When retention deletes an
    // event that links to a kept one, it unlinks the kept ones below (PurgeEvents), so none is
    // left out of the list. No row is rewritten: the old rows are all unlinked, so the new index
    // holds what the old one held.
    R"sql(
ALTER TABLE events ADD COLUMN prev_target_row INTEGER;
ALTER TABLE targets ADD COLUMN last_event_row INTEGER;
DROP INDEX events_target;
CREATE INDEX events_target_start ON events(tenant_id, target_id, event_id)
  WHERE prev_target_row IS NULL AND target_id IS NOT NULL;
)sql",
    // 14 (issue 8, the writer's CPU per rendering): no change of tables. A rendering in payloads
    // may now be a zstd frame with built-in dictionary 2 (first byte 0x02; store/sql/
    // payload_codec.h), which a build that knows only 13 migrations cannot unpack: the version
    // number makes such a build refuse the file instead. Values of dictionary 1 still read.
    R"sql(
SELECT 1;
)sql",
    // 15 (issue 8, rows that wait): `held` marks a delivery of a paused subscription (1;
    // CONTRACT §13) or one that an ordered subscription holds back behind an earlier open row of
    // its target (2; §6), and deliveries_due leaves held rows out. Before, the claim walked
    // deliveries_due in due order and dropped such rows only at the join or the order's probe,
    // so every claim read all of them (the writer 19-21 % busy with 200,000 rows of a paused
    // subscription and nothing else to do; docs/PERFORMANCE.md). A row is held by the claim that
    // walks past it (and at once when fan-out inserts it for a paused subscription), and let go
    // by a claim once its subscription is no longer paused (or ordered), a bounded number per
    // claim, found through deliveries_held, or (held back by ordering) by the outcome that closes
    // the row before it (store/sql/deliveries.cpp, HoldWaitingRows, ReleaseHeldRows,
    // ReleaseNextInOrder); a claim looks for rows to hold only while subscriptions_holding has an
    // entry. A row written before this migration reads held = 0 and has no bytes for it; held
    // costs a row one byte of header, no data. PostgreSQL has no such column: its claim finds the
    // subscriptions with due rows first and skips the paused ones whole.
    R"sql(
ALTER TABLE deliveries ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries(next_attempt_at)
  WHERE status IN ('pending', 'failed') AND lease_owner IS NULL AND held = 0;
CREATE INDEX deliveries_held ON deliveries(held, subscription_id, next_attempt_at)
  WHERE held <> 0;
CREATE INDEX subscriptions_holding ON subscriptions(id)
  WHERE (paused = 1 OR ordered = 1) AND enabled = 1 AND deleted = 0;
)sql",
    // 16 (issue 8, rows that wait): `held` 3 marks a delivery reopened (redelivered or
    // recovered) while its subscription is disabled: it waits, out of deliveries_due, until the
    // subscription is enabled again, when a claim lets go of it (ReleaseHeldRows). Before, every
    // claim read such rows while they waited, as it did a paused subscription's before migration
    // 15. The rows that builds before reopened so are held here, found per disabled subscription
    // through deliveries_subscription (whose partial index a statement must name, `status <>
    // 'succeeded'`; CROSS JOIN keeps the subscriptions the outer loop: no scan of deliveries);
    // and a build before this one, which would never let go of them, refuses the file. A row
    // leased when the file was last closed is held too: opening the store clears every lease
    // right after the migrations (a held row is never leased; sqlite_store.cpp, Open).
    R"sql(
UPDATE deliveries SET held = 3 WHERE id IN (
  SELECT d.id FROM subscriptions s CROSS JOIN deliveries d ON d.subscription_id = s.id
  WHERE s.enabled = 0 AND s.deleted = 0 AND d.status IN ('pending', 'failed')
    AND d.status <> 'succeeded' AND d.held = 0);
)sql",
};

constexpr int kMigrationCount = static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));

}  // namespace

int SchemaVersion() { return kMigrationCount; }

Status Migrate(Connection& conn) {
  int version = 0;
  {
    auto stmt = conn.Prepare("PRAGMA user_version");
    if (!stmt) return core::Fail(stmt.error());
    auto row = stmt->Step();
    if (!row) return core::Fail(row.error());
    if (*row) version = static_cast<int>(stmt->Int(0));
  }
  if (version > kMigrationCount) {
    return core::Fail(core::Error::Internal("database schema version " + std::to_string(version) +
                                            " is newer than this outbound build knows (" +
                                            std::to_string(kMigrationCount) + ")"));
  }
  for (int next = version; next < kMigrationCount; ++next) {
    if (auto s = conn.Exec("BEGIN IMMEDIATE"); !s) return s;
    std::string sql = kMigrations[next];
    sql += "\nPRAGMA user_version = " + std::to_string(next + 1) + ";";
    if (auto s = conn.Exec(sql.c_str()); !s) {
      (void)conn.Exec("ROLLBACK");
      s.error().message = "migration " + std::to_string(next + 1) + ": " + s.error().message;
      return s;
    }
    if (auto s = conn.Exec("COMMIT"); !s) {
      (void)conn.Exec("ROLLBACK");
      return s;
    }
  }
  return {};
}

}  // namespace outbound::store::sqlite
