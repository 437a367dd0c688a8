// Internal to store/sqlite: the numbered schema migrations (PRAGMA user_version holds the number
// applied). Migration N is applied in its own transaction; a database newer than this build is
// refused.
#pragma once

#include "core/result.h"
#include "store/sqlite/connection.h"

namespace outbound::store::sqlite {

// The number of the newest migration this build knows.
int SchemaVersion();

// Brings the database on `conn` up to SchemaVersion().
core::Status Migrate(Connection& conn);

}  // namespace outbound::store::sqlite
