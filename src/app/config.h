// Outbound's settings (CONTRACT.md §7): flags, then OUTBOUND_* environment variables, then an
// optional TOML file (--config), then defaults; the first that gives a value wins.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "core/retry.h"

namespace outbound::app {

struct Config {
  // Default: 127.0.0.1:8780. Address of the API (port 0 picks a free one; the log says which).
  std::string listen = "127.0.0.1:8780";
  // Default: sqlite:./outbound.db. `sqlite:PATH` or a `postgres://` URL.
  std::string db = "sqlite:./outbound.db";
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
  // Default: none (SQLite: a key file beside the database).
  std::optional<std::string> secrets_key;
  // Default: 5s / 15s.
  core::UnixMs connect_timeout_ms = 5000;
  core::UnixMs request_timeout_ms = 15000;
  // Default: 1 MiB.
  std::size_t max_body_bytes = 1024 * 1024;
  // Default: 100000 (store::SqliteOptions::max_queue). Store writes waiting for the next
  // transaction; when that many wait, further writes are refused and publishing answers 503
  // with Retry-After (CONTRACT §6 backpressure).
  std::size_t max_write_queue = 100000;
  // Default: info. trace|debug|info|warn|error|off.
  std::string log_level = "info";
  // TESTS ONLY, hidden from --help: "host:port:address[,host:port:address...]" pins names to
  // addresses for the dispatcher (curl's CURLOPT_RESOLVE), so that end-to-end tests can reach
  // the connect-time SSRF check. Never set in production.
  std::vector<std::string> debug_resolve;
};

// Parses `serve`'s arguments (argv without the program name and the "serve" word) with the
// given environment lookup (injected for tests). Errors name the setting.
core::Result<Config> ParseConfig(const std::vector<std::string>& args,
                                 const std::function<std::optional<std::string>(const char*)>& env);

}  // namespace outbound::app
