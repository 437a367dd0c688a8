#include "app/config.h"

#include <toml++/toml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <map>

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
};

constexpr Setting kSettings[] = {
    {"listen", "OUTBOUND_LISTEN", "address of the API, host:port"},
    {"db", "OUTBOUND_DB", "sqlite:PATH or a postgres:// URL"},
    {"operator-token", "OUTBOUND_OPERATOR_TOKEN", "the operator's token (off when unset)"},
    {"allow-private-networks", "OUTBOUND_ALLOW_PRIVATE_NETWORKS",
     "allow subscription URLs on loopback/private addresses and plain http", true},
    {"retry-schedule", "OUTBOUND_RETRY_SCHEDULE", "delays of attempts 1..n, e.g. 0s,5s,5m"},
    {"disable-after", "OUTBOUND_DISABLE_AFTER", "failing this long disables a subscription"},
    {"retry-jitter", "OUTBOUND_RETRY_JITTER", "± fraction of each retry delay"},
    {"secret-grace", "OUTBOUND_SECRET_GRACE", "how long a rotated-out secret keeps signing"},
    {"ca-file", "OUTBOUND_CA_FILE", "extra CA certificates trusted for receivers"},
    {"secrets-key", "OUTBOUND_SECRETS_KEY", "base64 of 32 bytes; encrypts secrets at rest"},
    {"connect-timeout", "OUTBOUND_CONNECT_TIMEOUT", "connect timeout per attempt"},
    {"request-timeout", "OUTBOUND_REQUEST_TIMEOUT", "whole-request timeout per attempt"},
    {"max-body", "OUTBOUND_MAX_BODY", "largest API request body in bytes"},
    {"max-write-queue", "OUTBOUND_MAX_WRITE_QUEUE",
     "store writes waiting before the API answers 503 (backpressure)"},
    {"log-level", "OUTBOUND_LOG_LEVEL", "trace, debug, info, warn, error or off"},
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

core::Status Apply(Config& c, const std::string& name, const std::string& v, std::string& schedule,
                   std::string& jitter) {
  if (name == "listen") {
    c.listen = v;
  } else if (name == "db") {
    c.db = v;
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
  } else if (name == "connect-timeout") {
    auto d = Duration(name, v);
    if (!d) return Fail(d.error());
    c.connect_timeout_ms = *d;
  } else if (name == "request-timeout") {
    auto d = Duration(name, v);
    if (!d) return Fail(d.error());
    c.request_timeout_ms = *d;
  } else if (name == "ca-file") {
    c.ca_file = v;
  } else if (name == "secrets-key") {
    c.secrets_key = v;
  } else if (name == "max-body") {
    auto n = PositiveCount(name, v, "bytes");
    if (!n) return Fail(n.error());
    c.max_body_bytes = *n;
  } else if (name == "max-write-queue") {
    auto n = PositiveCount(name, v, "writes");
    if (!n) return Fail(n.error());
    c.max_write_queue = *n;
  } else if (name == "log-level") {
    c.log_level = v;
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

}  // namespace

core::Result<Config> ParseConfig(
    const std::vector<std::string>& args,
    const std::function<std::optional<std::string>(const char*)>& env) {
  CLI::App cli{"outbound serve: the Outbound webhook service"};
  std::map<std::string, std::string> flags;
  std::map<std::string, bool> bool_flags;
  std::string config_file;
  cli.add_option("--config", config_file, "optional TOML file of the same settings");
  for (const auto& s : kSettings) {
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
  return c;
}

}  // namespace outbound::app
