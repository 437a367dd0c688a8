// Internal to store/postgres: the numbered schema migrations.
#pragma once

#include "core/result.h"
#include "store/postgres/pg_conn.h"

namespace outbound::store::postgres {

// The schema version this build writes.
int SchemaVersion();

// Applies the migrations that are missing, under a session advisory lock (processes that start
// together apply each migration once). A database migrated by a newer build is refused
// ("schema_too_new").
//
// The policy for rolling upgrades: migrations are additive (new tables, new nullable or
// defaulted columns, new indexes); a column or table is dropped only by a release after the one
// that stopped using it, so that versions N and N+1 run side by side on one schema. Version N
// refuses a schema of version N+1 only at start-up: a running N keeps working while N+1 rolls
// out.
core::Status Migrate(PgConn& conn);

}  // namespace outbound::store::postgres
