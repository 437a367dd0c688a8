#include "app/config.h"

#include <toml++/toml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <iterator>
#include <map>
#include <string_view>

#include "delivery/dispatcher.h"
#include "store/postgres/pg_store.h"

namespace outbound::app {
namespace {

using core::Error;
using core::Fail;

// One setting: its flag (without "--"), environment variable and TOML key share a name.
struct Setting {
  const char* name;
  const char* env;
  const char* help;
  bool is_flag = false;
  bool migrate = false;  // also a setting of `outbound migrate`
};

constexpr Setting kSettings[] = {
    {"listen", "OUTBOUND_LISTEN", "address of the API, host:port"},
    {"db", "OUTBOUND_DB", "sqlite:PATH or a postgres:// URL", false, true},
    {"role", "OUTBOUND_ROLE",
     "all, api (API only, sends nothing) or worker (sends; API answers only health and metrics)"},
    {"lease", "OUTBOUND_LEASE",
     "how long a claimed delivery stays with a process that stops renewing it"},
    {"operator-token", "OUTBOUND_OPERATOR_TOKEN", "the operator's token (off when unset)"},
    {"allow-private-networks", "OUTBOUND_ALLOW_PRIVATE_NETWORKS",
     "allow subscription URLs on loopback/private addresses and plain http", true},
    {"retry-schedule", "OUTBOUND_RETRY_SCHEDULE", "delays of attempts 1..n, e.g. 0s,5s,5m"},
    {"disable-after", "OUTBOUND_DISABLE_AFTER", "failing this long disables a subscription"},
    {"retry-jitter", "OUTBOUND_RETRY_JITTER", "± fraction of each retry delay"},
    {"secret-grace", "OUTBOUND_SECRET_GRACE", "how long a rotated-out secret keeps signing"},
    {"ca-file", "OUTBOUND_CA_FILE", "extra CA certificates trusted for receivers"},
    {"proxy", "OUTBOUND_PROXY", "egress proxy for deliveries: http(s):// or socks5(h):// URL"},
    {"secrets-key", "OUTBOUND_SECRETS_KEY",
     "base64 of 32 bytes; encrypts secrets at rest; NEW,OLD,... while rotating", false, true},
    {"connect-timeout", "OUTBOUND_CONNECT_TIMEOUT", "connect timeout per attempt"},
    {"request-timeout", "OUTBOUND_REQUEST_TIMEOUT", "whole-request timeout per attempt"},
    {"max-body", "OUTBOUND_MAX_BODY", "largest API request body in bytes"},
    {"max-write-queue", "OUTBOUND_MAX_WRITE_QUEUE",
     "store writes waiting before the API answers 503 (backpressure)"},
    {"log-level", "OUTBOUND_LOG_LEVEL", "trace, debug, info, warn, error, critical or off", false,
     true},
    {"public-url", "OUTBOUND_PUBLIC_URL",
     "the URL users reach the API at (base of portal links); default: the request's Host"},
    {"portal-frame-ancestors", "OUTBOUND_PORTAL_FRAME_ANCESTORS",
     "CSP frame-ancestors of the portal page (who may embed it); default 'none'"},
    {"retention", "OUTBOUND_RETENTION",
     "how long finished events, their deliveries and attempts are kept (e.g. 30d)"},
    {"log-format", "OUTBOUND_LOG_FORMAT", "text or json (one JSON object per line)", false, true},
    // Tests only (hidden from --help): see Config::debug_resolve.
    {"debug-resolve", "OUTBOUND_DEBUG_RESOLVE", ""},
};

Error Bad(const std::string& name, const std::string& message) {
  return Error{core::ErrorKind::kInvalid, "invalid_setting", name + ": " + message, name, {}};
}

core::Result<core::UnixMs> Duration(const std::string& name, const std::string& v) {
  auto d = core::ParseDuration(v);
  if (!d) return Fail(Bad(name, "not a duration (e.g. 250ms, 5s, 5m, 2h, 5d): " + v));
  return *d;
}

core::Result<std::size_t> PositiveCount(const std::string& name, const std::string& v,
                                        const char* unit) {
  std::size_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || n == 0) {
    return Fail(Bad(name, std::string("not a positive number of ") + unit + ": " + v));
  }
  return n;
}

bool Truthy(const std::string& v) { return v == "1" || v == "true" || v == "yes" || v == "on"; }

std::optional<Role> ParseRole(const std::string& v) {
  if (v == "all") return Role::kAll;
  if (v == "api") return Role::kApi;
  if (v == "worker") return Role::kWorker;
  return std::nullopt;
}

// What is wrong with a --proxy URL, if anything. Never quotes the URL: it may carry a password.
std::optional<std::string> ProxyProblem(const std::string& url) {
  constexpr const char* kExpected = "expected an http://, https://, socks5:// or socks5h:// URL";
  auto sep = url.find("://");
  if (sep == std::string::npos) return std::string(kExpected);
  std::string scheme = url.substr(0, sep);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  bool known = scheme == "http" || scheme == "https" || scheme == "socks5" || scheme == "socks5h";
  if (!known) {
    bool printable = scheme.size() <= 16 && std::all_of(scheme.begin(), scheme.end(), [](char ch) {
                       return std::isalnum(static_cast<unsigned char>(ch)) || ch == '+' ||
                              ch == '-' || ch == '.';
                     });
    return std::string(kExpected) + (printable ? ", not " + scheme + "://" : "");
  }
  std::string rest = url.substr(sep + 3);
  if (rest.empty() || rest.front() == '/' || rest.front() == ':' || rest.back() == '@') {
    return std::string(kExpected) + " with a host";
  }
  for (unsigned char ch : rest) {
    if (ch <= ' ' || ch == 0x7f) {
      return std::string(kExpected) + " without spaces or control characters";
    }
  }
  return std::nullopt;
}

// What is wrong with a --public-url, if anything: it becomes the start of portal links.
std::optional<std::string> PublicUrlProblem(const std::string& url) {
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    return std::string("expected an http:// or https:// URL");
  }
  if (url.size() > 512) return std::string("longer than 512 characters");
  auto host_start = url.find("://") + 3;
  if (host_start >= url.size() || url[host_start] == '/') return std::string("the URL has no host");
  for (unsigned char ch : url) {
    if (ch <= ' ' || ch >= 0x7f || ch == '#' || ch == '?' || ch == '"' || ch == '<' || ch == '>') {
      return std::string("expected a plain URL without spaces, query or fragment");
    }
  }
  return std::nullopt;
}

// What is wrong with --portal-frame-ancestors: it is written into a CSP header as one
// directive's source list, so it may not end the directive or the header.
std::optional<std::string> FrameAncestorsProblem(const std::string& v) {
  if (v.empty() || v.size() > 1024) return std::string("expected 1 to 1024 characters");
  for (unsigned char ch : v) {
    if (ch < ' ' || ch >= 0x7f || ch == ';' || ch == ',') {
      return std::string(
          "expected CSP sources separated by spaces ('none', 'self', https://host), without ; "
          "or ,");
    }
  }
  return std::nullopt;
}

core::Status Apply(Config& c, const std::string& name, const std::string& v, std::string& schedule,
                   std::string& jitter) {
  if (name == "listen") {
    c.listen = v;
  } else if (name == "db") {
    // Never quoted in errors: a postgres:// URL may carry a password.
    if (v.rfind("sqlite:", 0) == 0) {
      if (v.size() == 7) return Fail(Bad(name, "sqlite: needs a path (sqlite:PATH)"));
    } else if (!IsPostgresUrl(v)) {
      return Fail(Bad(name, "expected sqlite:PATH or a postgres:// (postgresql://) URL"));
    } else if (auto problem = store::PostgresUrlProblem(v)) {
      return Fail(Bad(name, "the PostgreSQL URL does not parse: " + *problem));
    }
    c.db = v;
  } else if (name == "role") {
    auto role = ParseRole(v);
    if (!role) return Fail(Bad(name, "expected all, api or worker, not " + v.substr(0, 32)));
    c.role = *role;
  } else if (name == "lease") {
    auto d = Duration(name, v);
    if (!d) return Fail(d.error());
    if (*d <= 0) return Fail(Bad(name, "must be above 0"));
    c.lease_ms = *d;
  } else if (name == "proxy") {
    if (!v.empty()) {
      if (auto problem = ProxyProblem(v)) return Fail(Bad(name, *problem));
    }
    c.proxy = v;
  } else if (name == "operator-token") {
    if (v.size() < 16) return Fail(Bad(name, "must be at least 16 characters"));
    c.operator_token = v;
  } else if (name == "allow-private-networks") {
    c.allow_private_networks = Truthy(v);
  } else if (name == "retry-schedule") {
    schedule = v;
  } else if (name == "retry-jitter") {
    jitter = v;
  } else if (name == "disable-after") {
    auto d = Duration(name, v);
    if (!d) return Fail(d.error());
    c.disable_after_ms = *d;
  } else if (name == "secret-grace") {
    auto d = Duration(name, v);
    if (!d) return Fail(d.error());
    c.secret_grace_ms = *d;
  } else if (name == "connect-timeout" || name == "request-timeout") {
    // Above 0: libcurl reads 0 as its own default (300 s to connect) or as no limit at all (a
    // request that never ends, and no grace for in-flight attempts at SIGTERM).
    auto d = Duration(name, v);
    if (!d) return Fail(d.error());
    if (*d <= 0) return Fail(Bad(name, "must be above 0, e.g. 5s"));
    (name == "connect-timeout" ? c.connect_timeout_ms : c.request_timeout_ms) = *d;
  } else if (name == "ca-file") {
    if (auto problem = delivery::CaFileProblem(v)) return Fail(Bad(name, *problem));
    c.ca_file = v;
  } else if (name == "secrets-key") {
    // NEW,OLD,...: base64 has no commas. Never quoted in errors.
    std::vector<std::string> keys;
    std::size_t start = 0;
    while (start <= v.size()) {
      std::size_t end = v.find(',', start);
      if (end == std::string::npos) end = v.size();
      std::string key = v.substr(start, end - start);
      auto first = key.find_first_not_of(" \t");
      if (first == std::string::npos) {
        return Fail(Bad(name, "an empty key in the list (expected KEY or NEW,OLD,...)"));
      }
      key = key.substr(first, key.find_last_not_of(" \t") - first + 1);
      keys.push_back(std::move(key));
      start = end + 1;
    }
    c.secrets_key = keys.front();
    c.secrets_keys = std::move(keys);
  } else if (name == "max-body") {
    auto n = PositiveCount(name, v, "bytes");
    if (!n) return Fail(n.error());
    c.max_body_bytes = *n;
  } else if (name == "max-write-queue") {
    auto n = PositiveCount(name, v, "writes");
    if (!n) return Fail(n.error());
    c.max_write_queue = *n;
  } else if (name == "log-level") {
    // Checked here: spdlog reads a name it does not know as `off`, which would silence even the
    // errors that stop the process. Any case; stored as spdlog spells it.
    std::string level = v;
    for (char& ch : level) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    static constexpr std::string_view kLevels[] = {"trace", "debug", "info",     "warn", "warning",
                                                   "error", "err",   "critical", "off"};
    if (std::find(std::begin(kLevels), std::end(kLevels), level) == std::end(kLevels)) {
      return Fail(Bad(name,
                      "expected trace, debug, info, warn (warning), error (err), critical or off, "
                      "not " +
                          v.substr(0, 32)));
    }
    c.log_level = level;
  } else if (name == "public-url") {
    if (auto problem = PublicUrlProblem(v)) return Fail(Bad(name, *problem));
    c.public_url = v;
    while (!c.public_url.empty() && c.public_url.back() == '/') c.public_url.pop_back();
  } else if (name == "portal-frame-ancestors") {
    if (auto problem = FrameAncestorsProblem(v)) return Fail(Bad(name, *problem));
    c.portal_frame_ancestors = v;
  } else if (name == "retention") {
    auto d = Duration(name, v);
    if (!d) return Fail(d.error());
    if (*d <= 0) return Fail(Bad(name, "must be above 0"));
    c.retention_ms = *d;
  } else if (name == "log-format") {
    if (v == "text") {
      c.log_format = LogFormat::kText;
    } else if (v == "json") {
      c.log_format = LogFormat::kJson;
    } else {
      return Fail(Bad(name, "expected text or json, not " + v.substr(0, 32)));
    }
  } else if (name == "debug-resolve") {
    std::size_t start = 0;
    while (start <= v.size()) {
      std::size_t end = v.find(',', start);
      if (end == std::string::npos) end = v.size();
      std::string entry = v.substr(start, end - start);
      if (std::count(entry.begin(), entry.end(), ':') < 2) {
        return Fail(Bad(name, "entries are host:port:address, not " + entry));
      }
      c.debug_resolve.push_back(std::move(entry));
      start = end + 1;
    }
  }
  return {};
}

// TOML values of any scalar type, as the string a flag would carry. value_exact: value<bool>()
// would also accept an integer (7 became "1").
std::optional<std::string> TomlString(const toml::node& node) {
  if (auto s = node.value_exact<std::string>()) return *s;
  if (auto b = node.value_exact<bool>()) return *b ? "1" : "0";
  if (auto i = node.value_exact<std::int64_t>()) return std::to_string(*i);
  if (auto d = node.value_exact<double>()) return std::to_string(*d);
  return std::nullopt;
}

enum class Command { kServe, kMigrate };

bool Takes(Command command, const Setting& s) { return command == Command::kServe || s.migrate; }

// The combination of settings `serve` needs (each value was checked on its own already).
core::Status CheckServe(const Config& c) {
  if (IsPostgresUrl(c.db)) {
    if (c.secrets_keys.empty()) {
      return Fail(Error::Invalid("secrets-key", "invalid_setting",
                                 "--secrets-key is required with PostgreSQL: every process of one "
                                 "database must use the same key (e.g. openssl rand -base64 32)"));
    }
  } else if (c.role != Role::kAll) {
    return Fail(Error::Invalid("role", "invalid_setting",
                               "--role " + std::string(RoleName(c.role)) +
                                   " needs PostgreSQL (--db postgres://...): with SQLite one "
                                   "process owns the database, so only --role all is possible"));
  }
  return {};
}

core::Result<Config> Parse(Command command, const std::vector<std::string>& args,
                           const EnvLookup& env) {
  CLI::App cli{command == Command::kServe
                   ? "outbound serve: the Outbound webhook service"
                   : "outbound migrate: applies the database schema migrations and exits"};
  std::map<std::string, std::string> flags;
  std::map<std::string, bool> bool_flags;
  std::string config_file;
  cli.add_option("--config", config_file, "optional TOML file of the same settings");
  for (const auto& s : kSettings) {
    if (!Takes(command, s)) continue;
    if (s.is_flag) {
      cli.add_flag(std::string("--") + s.name, bool_flags[s.name], s.help);
    } else {
      auto* opt = cli.add_option(std::string("--") + s.name, flags[s.name], s.help);
      if (*s.help == '\0') opt->group("");  // hidden (tests only)
    }
  }
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    cli.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    return Fail(Error{core::ErrorKind::kInvalid, "help", cli.help(), "", {}});
  } catch (const CLI::ParseError& e) {
    return Fail(Bad("command line", e.what()));
  }

  // Every setting of `serve` is known here, so that `migrate` reads the same file.
  std::map<std::string, std::string> from_toml;
  if (!config_file.empty()) {
    try {
      toml::table table = toml::parse_file(config_file);
      for (const auto& [key, node] : table) {
        std::string k(key.str());
        for (char& ch : k) {
          if (ch == '_') ch = '-';
        }
        bool known = false;
        for (const auto& s : kSettings) known = known || k == s.name;
        if (!known) return Fail(Bad(config_file, "unknown setting " + std::string(key.str())));
        auto v = TomlString(node);
        if (!v) return Fail(Bad(config_file, "setting " + k + " must be a scalar"));
        from_toml[k] = *v;
      }
    } catch (const toml::parse_error& e) {
      return Fail(Bad(config_file, std::string(e.description())));
    }
  }

  Config c;
  std::string schedule = "0s,5s,5m,30m,2h,5h,10h,10h";
  std::string jitter = "0.2";
  for (const auto& s : kSettings) {
    if (!Takes(command, s)) continue;
    std::optional<std::string> v;
    if (s.is_flag) {
      if (bool_flags[s.name]) v = "1";
    } else if (cli.get_option(std::string("--") + s.name)->count() > 0) {
      v = flags[s.name];
    }
    if (!v) v = env(s.env);
    if (!v) {
      auto it = from_toml.find(s.name);
      if (it != from_toml.end()) v = it->second;
    }
    if (!v) continue;
    if (auto st = Apply(c, s.name, *v, schedule, jitter); !st) return Fail(st.error());
  }
  if (command == Command::kMigrate) return c;

  double j = 0;
  try {
    std::size_t used = 0;
    j = std::stod(jitter, &used);
    if (used != jitter.size() || j < 0 || j >= 1) throw std::invalid_argument(jitter);
  } catch (const std::exception&) {
    return Fail(Bad("retry-jitter", "must be a fraction in [0, 1): " + jitter));
  }
  auto policy = core::RetryPolicy::Parse(schedule, j);
  if (!policy) return Fail(Bad("retry-schedule", policy.error().message));
  c.retry = *policy;
  if (auto st = CheckServe(c); !st) return Fail(st.error());
  return c;
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kAll:
      return "all";
    case Role::kApi:
      return "api";
    case Role::kWorker:
      return "worker";
  }
  return "all";
}

bool IsPostgresUrl(std::string_view db) {
  return db.rfind("postgres://", 0) == 0 || db.rfind("postgresql://", 0) == 0;
}

core::Result<Config> ParseConfig(const std::vector<std::string>& args, const EnvLookup& env) {
  return Parse(Command::kServe, args, env);
}

core::Result<Config> ParseMigrateConfig(const std::vector<std::string>& args,
                                        const EnvLookup& env) {
  return Parse(Command::kMigrate, args, env);
}

}  // namespace outbound::app
