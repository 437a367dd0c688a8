// Outbound's settings (CONTRACT.md §7, §12): flags, then OUTBOUND_* environment variables, then
// an optional TOML file (--config), then defaults; the first that gives a value wins.
// Errors are kInvalid "invalid_setting" (or "help", whose message is the help text) and name the
// setting; they never contain a secret (keys, tokens, proxy credentials).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "core/retry.h"

namespace outbound::app {

// What one process does (--role, CONTRACT §12). With SQLite only kAll.
enum class Role {
  kAll,     // answers the API and sends deliveries
  kApi,     // answers the API and accepts events; sends nothing (no dispatcher)
  kWorker,  // sends; its API answers only /healthz, /readyz and /metrics
};
std::string_view RoleName(Role role);

// True for `postgres://` and `postgresql://` URLs (otherwise the database is `sqlite:PATH`).
bool IsPostgresUrl(std::string_view db);

// How log lines are written (--log-format).
enum class LogFormat {
  kText,  // "2026-01-02T03:04:05.678Z info message"
  kJson,  // one JSON object per line: ts, level, msg and the call's fields
};

struct Config {
  // Default: 127.0.0.1:8780. Address of the API (port 0 picks a free one; the log says which).
  std::string listen = "127.0.0.1:8780";
  // Default: sqlite:./outbound.db. `sqlite:PATH` or a `postgres://` / `postgresql://` URL (a
  // libpq URI; may carry a password, so it is never logged).
  std::string db = "sqlite:./outbound.db";
  // Default: all. With SQLite anything else is refused.
  Role role = Role::kAll;
  // Default: 30s. How long a claimed delivery stays with a process that stops renewing it.
  core::UnixMs lease_ms = 30000;
  // Default: none (direct). Egress proxy for every delivery: an http://, https://, socks5:// or
  // socks5h:// URL (it may carry user:password@, so it is never logged).
  std::string proxy;
  // Default: none (operator API off).
  std::optional<std::string> operator_token;
  // Default: off. Allow subscription URLs on loopback/private addresses and plain http.
  bool allow_private_networks = false;
  // Default: 0s,5s,5m,30m,2h,5h,10h,10h with ±0.2 jitter.
  core::RetryPolicy retry = core::RetryPolicy::Default();
  // Default: 5d.
  core::UnixMs disable_after_ms = 5LL * 24 * 3600 * 1000;
  // Default: 24h.
  core::UnixMs secret_grace_ms = 24LL * 3600 * 1000;
  // Default: system store only.
  std::string ca_file;
  // Default: none (SQLite: a key file beside the database; PostgreSQL: required).
  // --secrets-key is `NEW,OLD,...` while rotating: seal with the first, open with any.
  // secrets_keys holds them all in that order; secrets_key is the first (what SQLite uses).
  std::optional<std::string> secrets_key;
  std::vector<std::string> secrets_keys;
  // Default: 5s / 15s.
  core::UnixMs connect_timeout_ms = 5000;
  core::UnixMs request_timeout_ms = 15000;
  // Default: 1 MiB.
  std::size_t max_body_bytes = std::size_t{1024} * 1024;
  // Default: 100000 (store::SqliteOptions::max_queue). Store writes waiting for the next
  // transaction; when that many wait, further writes are refused and publishing answers 503
  // with Retry-After (CONTRACT §6 backpressure).
  std::size_t max_write_queue = 100000;
  // Default: info. trace|debug|info|warn|error|off.
  std::string log_level = "info";
  // Default: none (portal links use the request's Host header over http://). The URL users reach
  // this API at (http:// or https://, optional path prefix), the base of portal links.
  std::string public_url;
  // Default: 'none'. The CSP frame-ancestors sources allowed to embed the portal page.
  std::string portal_frame_ancestors = "'none'";

  // Default: text.
  LogFormat log_format = LogFormat::kText;
  // Default: 30d. Events accepted longer ago than this are deleted with their deliveries and
  // attempts once none of those is pending or failed (CONTRACT §13).
  core::UnixMs retention_ms = 30LL * 24 * 3600 * 1000;
  // TESTS ONLY, hidden from --help: "host:port:address[,host:port:address...]" pins names to
  // addresses for the dispatcher (curl's CURLOPT_RESOLVE), so that end-to-end tests can reach
  // the connect-time SSRF check. Never set in production.
  std::vector<std::string> debug_resolve;
};

using EnvLookup = std::function<std::optional<std::string>(const char*)>;

// Parses `serve`'s arguments (argv without the program name and the "serve" word) with the
// given environment lookup (injected for tests). Besides each value it checks the combination:
// the database URL, a role other than `all` only with PostgreSQL, a secrets key required with
// PostgreSQL.
core::Result<Config> ParseConfig(const std::vector<std::string>& args, const EnvLookup& env);

// Parses `migrate`'s arguments: --db, --secrets-key (SQLite: the key file is created as by
// `serve` unless given), --log-level and --config (a `serve` TOML file is accepted; its other
// settings are ignored), each also from its OUTBOUND_* variable. Only the database URL is
// checked beyond each value.
core::Result<Config> ParseMigrateConfig(const std::vector<std::string>& args, const EnvLookup& env);

}  // namespace outbound::app
