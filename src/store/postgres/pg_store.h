// The PostgreSQL store (CONTRACT §12): any number of outbound processes share one database.
// libpq, a pool of writer connections (each groups queued tasks into one transaction, a
// savepoint per task, and runs a task again when it loses a race), a pool of reader connections,
// numbered migrations applied under an advisory lock. Leases live in the database (store.h).
// Losing the database is not fatal: calls fail with kUnavailable "store_unavailable" while it is
// away and connections are re-established when it is back.
//
// Errors of OpenPostgres / MigratePostgres: "invalid_setting" (no secrets key, bad URL),
// "store_unavailable" (cannot connect), "schema_too_new" (a newer outbound migrated this
// database), kInternal for anything else PostgreSQL refuses (message says what).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "store/store.h"

namespace outbound::store {

struct PostgresOptions {
  std::string dsn;  // a libpq URI: postgres://USER@HOST:PORT/DB?...
  // --secrets-key: base64 of 32 bytes each; seal with the first, open with any (rotation).
  // Required: processes on one database share it, and there is no file beside the database.
  std::vector<std::string> secrets_keys;
  int writer_connections = 4;
  int reader_connections = 4;
  std::size_t max_queue = 100000;  // pending write tasks before Submit answers kUnavailable
  std::size_t max_batch = 256;     // tasks per transaction
};

core::Result<std::unique_ptr<Store>> OpenPostgres(const PostgresOptions& options);

// What is wrong with a libpq connection URI, if anything, as libpq parses it (percent-encoding,
// known query parameters and their values). Never quotes the URI or libpq's message, which may
// repeat the password.
std::optional<std::string> PostgresUrlProblem(const std::string& dsn);

// Applies the schema migrations and returns (`outbound migrate`). Safe to run from several
// processes at once.
core::Status MigratePostgres(const std::string& dsn);

}  // namespace outbound::store
