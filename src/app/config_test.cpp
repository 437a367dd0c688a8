#include "app/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

namespace outbound::app {
namespace {

auto Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ConfigTest, DefaultsFollowTheContract) {
  auto c = ParseConfig({}, Env({}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->listen, "127.0.0.1:8780");
  EXPECT_EQ(c->db, "sqlite:./outbound.db");
  EXPECT_FALSE(c->operator_token);
  EXPECT_FALSE(c->allow_private_networks);
  EXPECT_EQ(c->retry.MaxAttempts(), 8);
  EXPECT_DOUBLE_EQ(c->retry.jitter, 0.2);
  EXPECT_EQ(c->disable_after_ms, 5LL * 24 * 3600 * 1000);
  EXPECT_EQ(c->secret_grace_ms, 24LL * 3600 * 1000);
  EXPECT_EQ(c->max_write_queue, 100000u);
  EXPECT_EQ(c->role, Role::kAll);
  EXPECT_EQ(c->lease_ms, 30000);
  EXPECT_EQ(c->proxy, "");
  EXPECT_FALSE(c->secrets_key);
  EXPECT_TRUE(c->secrets_keys.empty());
}

TEST(ConfigTest, FlagsWinOverEnvironmentWhichWinsOverToml) {
  auto path = std::filesystem::temp_directory_path() / "outbound_config_test.toml";
  {
    std::ofstream f(path);
    f << "listen = \"127.0.0.1:1111\"\nretry_schedule = \"0s,1s\"\ndb = \"sqlite:/tmp/t.db\"\n"
         "allow_private_networks = true\n";
  }
  auto c = ParseConfig(
      {"--config", path.string(), "--listen", "127.0.0.1:3333"},
      Env({{"OUTBOUND_LISTEN", "127.0.0.1:2222"}, {"OUTBOUND_RETRY_SCHEDULE", "0s,2s,3s"}}));
  std::filesystem::remove(path);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->listen, "127.0.0.1:3333");
  EXPECT_EQ(c->retry.MaxAttempts(), 3);
  EXPECT_EQ(c->db, "sqlite:/tmp/t.db");
  EXPECT_TRUE(c->allow_private_networks);
}

TEST(ConfigTest, BadValuesNameTheSetting) {
  auto c = ParseConfig({"--retry-schedule", "0s,soon"}, Env({}));
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("retry-schedule"), std::string::npos);
  c = ParseConfig({}, Env({{"OUTBOUND_RETRY_JITTER", "2"}}));
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("retry-jitter"), std::string::npos);
  c = ParseConfig({"--no-such-flag"}, Env({}));
  ASSERT_FALSE(c);
}

TEST(ConfigTest, TomlNumbersKeepTheirValue) {
  auto path = std::filesystem::temp_directory_path() / "outbound_config_numbers_test.toml";
  {
    std::ofstream f(path);
    f << "max_body = 2048\nretry_jitter = 0.5\n";
  }
  auto c = ParseConfig({"--config", path.string()}, Env({}));
  std::filesystem::remove(path);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->max_body_bytes, 2048u);  // not 1 (an integer read as a boolean)
  EXPECT_DOUBLE_EQ(c->retry.jitter, 0.5);
}

TEST(ConfigTest, MaxWriteQueueFromFlagEnvironmentOrToml) {
  auto path = std::filesystem::temp_directory_path() / "outbound_config_queue_test.toml";
  {
    std::ofstream f(path);
    f << "max_write_queue = 7\n";
  }
  auto from_toml = ParseConfig({"--config", path.string()}, Env({}));
  auto from_env =
      ParseConfig({"--config", path.string()}, Env({{"OUTBOUND_MAX_WRITE_QUEUE", "5"}}));
  auto from_flag = ParseConfig({"--config", path.string(), "--max-write-queue", "1"},
                               Env({{"OUTBOUND_MAX_WRITE_QUEUE", "5"}}));
  std::filesystem::remove(path);
  ASSERT_TRUE(from_toml) << from_toml.error().message;
  EXPECT_EQ(from_toml->max_write_queue, 7u);
  ASSERT_TRUE(from_env) << from_env.error().message;
  EXPECT_EQ(from_env->max_write_queue, 5u);
  ASSERT_TRUE(from_flag) << from_flag.error().message;
  EXPECT_EQ(from_flag->max_write_queue, 1u);
  for (const char* bad : {"0", "-1", "ten", "10x", ""}) {
    auto c = ParseConfig({"--max-write-queue", bad}, Env({}));
    ASSERT_FALSE(c) << bad;
    EXPECT_NE(c.error().message.find("max-write-queue"), std::string::npos) << bad;
  }
}

constexpr const char* kKeyA = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
constexpr const char* kKeyB = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
constexpr const char* kPostgres = "postgres://outbound@127.0.0.1:5432/outbound";

TEST(ConfigTest, RoleFromFlagOrEnvironmentNeedsPostgres) {
  auto c = ParseConfig({"--db", kPostgres, "--secrets-key", kKeyA, "--role", "worker"}, Env({}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->role, Role::kWorker);
  c = ParseConfig({"--db", kPostgres, "--secrets-key", kKeyA}, Env({{"OUTBOUND_ROLE", "api"}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->role, Role::kApi);
  c = ParseConfig({"--role", "all"}, Env({}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->role, Role::kAll);

  for (const char* role : {"api", "worker"}) {
    auto sqlite = ParseConfig({"--db", "sqlite:/tmp/x.db", "--role", role}, Env({}));
    ASSERT_FALSE(sqlite) << role;
    EXPECT_EQ(sqlite.error().code, "invalid_setting");
    EXPECT_EQ(sqlite.error().field, "role");
    EXPECT_NE(sqlite.error().message.find("--role " + std::string(role)), std::string::npos);
    EXPECT_NE(sqlite.error().message.find("PostgreSQL"), std::string::npos);
  }
  for (const char* bad : {"both", "API", ""}) {
    auto b = ParseConfig({"--db", kPostgres, "--secrets-key", kKeyA, "--role", bad}, Env({}));
    ASSERT_FALSE(b) << bad;
    EXPECT_NE(b.error().message.find("role"), std::string::npos) << bad;
  }
}

TEST(ConfigTest, LeaseIsADuration) {
  auto c = ParseConfig({"--lease", "45s"}, Env({}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->lease_ms, 45000);
  c = ParseConfig({}, Env({{"OUTBOUND_LEASE", "1500ms"}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->lease_ms, 1500);
  for (const char* bad : {"30", "soon", "0s", "-5s"}) {
    auto b = ParseConfig({"--lease", bad}, Env({}));
    ASSERT_FALSE(b) << bad;
    EXPECT_NE(b.error().message.find("lease"), std::string::npos) << bad;
  }
}

TEST(ConfigTest, ProxyAcceptsHttpAndSocksUrlsOnly) {
  for (const char* good :
       {"http://proxy.internal:3128", "https://proxy.internal", "socks5://127.0.0.1:1080",
        "socks5h://user:pw@proxy:1080", "HTTP://proxy:8080"}) {
    auto c = ParseConfig({"--proxy", good}, Env({}));
    ASSERT_TRUE(c) << good << ": " << c.error().message;
    EXPECT_EQ(c->proxy, good);
  }
  auto from_env = ParseConfig({}, Env({{"OUTBOUND_PROXY", "socks5://127.0.0.1:1080"}}));
  ASSERT_TRUE(from_env) << from_env.error().message;
  EXPECT_EQ(from_env->proxy, "socks5://127.0.0.1:1080");

  for (const char* bad : {"proxy.internal:3128", "ftp://proxy", "socks4://proxy:1080", "http://",
                          "http:///path", "http://pro xy", "user:secret-pw@proxy:1080"}) {
    auto c = ParseConfig({"--proxy", bad}, Env({}));
    ASSERT_FALSE(c) << bad;
    EXPECT_EQ(c.error().code, "invalid_setting") << bad;
    EXPECT_NE(c.error().message.find("proxy"), std::string::npos) << bad;
    EXPECT_NE(c.error().message.find("socks5://"), std::string::npos) << bad;
  }
  // Credentials in a refused URL are not repeated.
  auto c = ParseConfig({"--proxy", "ftp://user:secret-pw@proxy"}, Env({}));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().message.find("secret-pw"), std::string::npos) << c.error().message;
}

TEST(ConfigTest, SecretsKeyIsAListNewestFirst) {
  auto one = ParseConfig({"--secrets-key", kKeyA}, Env({}));
  ASSERT_TRUE(one) << one.error().message;
  ASSERT_TRUE(one->secrets_key);
  EXPECT_EQ(*one->secrets_key, kKeyA);
  EXPECT_EQ(one->secrets_keys, std::vector<std::string>{kKeyA});

  auto two = ParseConfig({}, Env({{"OUTBOUND_SECRETS_KEY", std::string(kKeyB) + ", " + kKeyA}}));
  ASSERT_TRUE(two) << two.error().message;
  ASSERT_TRUE(two->secrets_key);
  EXPECT_EQ(*two->secrets_key, kKeyB);  // SQLite seals and opens with the first
  EXPECT_EQ(two->secrets_keys, (std::vector<std::string>{kKeyB, kKeyA}));

  for (std::string bad : {std::string(""), std::string(kKeyA) + ",", "," + std::string(kKeyA),
                          std::string(kKeyA) + ",,"}) {
    auto c = ParseConfig({"--secrets-key", bad}, Env({}));
    ASSERT_FALSE(c) << bad;
    EXPECT_NE(c.error().message.find("secrets-key"), std::string::npos) << bad;
    EXPECT_EQ(c.error().message.find(kKeyA), std::string::npos) << c.error().message;
  }
}

TEST(ConfigTest, PostgresUrlsNeedASecretsKey) {
  for (const char* url :
       {kPostgres, "postgresql://outbound@db.internal/outbound?sslmode=verify-full"}) {
    auto c = ParseConfig({"--db", url, "--secrets-key", std::string(kKeyA) + "," + kKeyB}, Env({}));
    ASSERT_TRUE(c) << url << ": " << c.error().message;
    EXPECT_EQ(c->db, url);
    EXPECT_TRUE(IsPostgresUrl(c->db));
    EXPECT_EQ(c->secrets_keys, (std::vector<std::string>{kKeyA, kKeyB}));

    auto keyless = ParseConfig({"--db", url}, Env({}));
    ASSERT_FALSE(keyless) << url;
    EXPECT_EQ(keyless.error().code, "invalid_setting");
    EXPECT_EQ(keyless.error().field, "secrets-key");
    EXPECT_NE(keyless.error().message.find("--secrets-key is required with PostgreSQL: every "
                                           "process of one database must use the same key"),
              std::string::npos)
        << keyless.error().message;
  }
  EXPECT_FALSE(IsPostgresUrl("sqlite:./outbound.db"));
}

TEST(ConfigTest, BadDatabaseUrlsAreRefusedWithoutRepeatingThem) {
  for (const char* bad : {"mysql://root:hunter2@db/outbound", "sqlite:", "outbound.db",
                          "POSTGRES://u:hunter2@db/x"}) {
    auto c = ParseConfig({"--db", bad}, Env({}));
    ASSERT_FALSE(c) << bad;
    EXPECT_EQ(c.error().code, "invalid_setting") << bad;
    EXPECT_NE(c.error().message.find("db"), std::string::npos) << bad;
    EXPECT_EQ(c.error().message.find("hunter2"), std::string::npos) << c.error().message;
  }
  // URLs libpq cannot parse: its own message would quote the password.
  for (const char* bad : {"postgres://u:Hunter%zz2@db/outbound", "postgres://u:hunter2@db/x?foo=1",
                          "postgresql://Hunter%2@db/x"}) {
    auto c = ParseConfig({"--db", bad, "--secrets-key", kKeyA}, Env({}));
    ASSERT_FALSE(c) << bad;
    EXPECT_EQ(c.error().field, "db") << bad;
    EXPECT_EQ(c.error().message.find("unter"), std::string::npos) << c.error().message;
    auto m = ParseMigrateConfig({}, Env({{"OUTBOUND_DB", bad}}));
    ASSERT_FALSE(m) << bad;
    EXPECT_EQ(m.error().field, "db") << bad;
  }
  auto pct =
      ParseConfig({"--db", "postgres://u:Hunter%zz2@db/outbound", "--secrets-key", kKeyA}, Env({}));
  ASSERT_FALSE(pct);
  EXPECT_NE(pct.error().message.find("%25"), std::string::npos) << pct.error().message;
}

TEST(ConfigTest, MigrateTakesTheDatabaseAndNoServeOnlyFlags) {
  auto c = ParseMigrateConfig({"--db", kPostgres}, Env({}));
  ASSERT_TRUE(c) << c.error().message;  // no secrets key needed to migrate
  EXPECT_EQ(c->db, kPostgres);
  c = ParseMigrateConfig({}, Env({{"OUTBOUND_DB", "sqlite:/tmp/m.db"},
                                  {"OUTBOUND_SECRETS_KEY", kKeyA},
                                  {"OUTBOUND_ROLE", "worker"}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->db, "sqlite:/tmp/m.db");
  EXPECT_EQ(c->secrets_key, std::optional<std::string>(kKeyA));
  EXPECT_EQ(c->role, Role::kAll);  // not read by migrate

  EXPECT_FALSE(ParseMigrateConfig({"--listen", "127.0.0.1:1"}, Env({})));
  EXPECT_FALSE(ParseMigrateConfig({"--db", "mysql://db"}, Env({})));

  // The TOML file of `serve` is accepted; its other settings are ignored.
  auto path = std::filesystem::temp_directory_path() / "outbound_config_migrate_test.toml";
  {
    std::ofstream f(path);
    f << "db = \"" << kPostgres << "\"\nrole = \"worker\"\nlisten = \"127.0.0.1:1\"\n";
  }
  auto from_toml = ParseMigrateConfig({"--config", path.string()}, Env({}));
  std::filesystem::remove(path);
  ASSERT_TRUE(from_toml) << from_toml.error().message;
  EXPECT_EQ(from_toml->db, kPostgres);
}

// The portal's settings (docs/CONFIGURATION.md): the base of portal links and who may frame it.
TEST(ConfigTest, PortalPublicUrlAndFrameAncestors) {
  auto d = ParseConfig({}, Env({}));
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->public_url, "");
  EXPECT_EQ(d->portal_frame_ancestors, "'none'");

  auto c =
      ParseConfig({"--public-url", "https://hooks.example.com/outbound/"},
                  Env({{"OUTBOUND_PORTAL_FRAME_ANCESTORS", "'self' https://app.example.com"}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->public_url, "https://hooks.example.com/outbound");  // no trailing slash
  EXPECT_EQ(c->portal_frame_ancestors, "'self' https://app.example.com");

  for (const char* bad : {"hooks.example.com", "ftp://x", "https://", "https:///path",
                          "https://x.example/?a=1", "https://x.example/#f", "https://a b"}) {
    auto r = ParseConfig({"--public-url", bad}, Env({}));
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().field, "public-url") << bad;
  }
  // A value that would end the CSP directive (or the header) is refused.
  for (const char* bad : {"", "'self'; script-src *", "'self', https://x", "'self'\r\nX-Evil: 1"}) {
    auto r = ParseConfig({"--portal-frame-ancestors", bad}, Env({}));
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().field, "portal-frame-ancestors") << bad;
  }
}

// --- retention and log format (CONTRACT §13) ---

TEST(ConfigTest, RetentionIsAPositiveDurationDefaulting30Days) {
  auto c = ParseConfig({}, Env({}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->retention_ms, 30LL * 24 * 3600 * 1000);
  EXPECT_EQ(c->log_format, LogFormat::kText);
  c = ParseConfig({"--retention", "2s"}, Env({}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->retention_ms, 2000);
  c = ParseConfig({}, Env({{"OUTBOUND_RETENTION", "7d"}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->retention_ms, 7LL * 24 * 3600 * 1000);
  for (const char* bad : {"30", "forever", "0s", "-1d"}) {
    auto b = ParseConfig({"--retention", bad}, Env({}));
    ASSERT_FALSE(b) << bad;
    EXPECT_NE(b.error().message.find("retention"), std::string::npos) << bad;
  }
}

TEST(ConfigTest, LogFormatIsTextOrJson) {
  auto c = ParseConfig({"--log-format", "json"}, Env({}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->log_format, LogFormat::kJson);
  c = ParseConfig({}, Env({{"OUTBOUND_LOG_FORMAT", "json"}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->log_format, LogFormat::kJson);
  auto m = ParseMigrateConfig({"--log-format", "json"}, Env({}));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->log_format, LogFormat::kJson);
  auto b = ParseConfig({"--log-format", "xml"}, Env({}));
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message.find("log-format"), std::string::npos);
}

TEST(ConfigTest, LogLevelIsOneSpdlogKnowsInAnyCase) {
  for (const char* ok :
       {"trace", "debug", "info", "warn", "warning", "error", "err", "critical", "off"}) {
    auto c = ParseConfig({"--log-level", ok}, Env({}));
    ASSERT_TRUE(c) << ok << ": " << c.error().message;
    EXPECT_EQ(c->log_level, ok);
  }
  auto upper = ParseConfig({}, Env({{"OUTBOUND_LOG_LEVEL", "INFO"}}));
  ASSERT_TRUE(upper) << upper.error().message;
  EXPECT_EQ(upper->log_level, "info");
  // spdlog would read each of these as `off` and log nothing, not even why the process stopped.
  for (const char* bad : {"", "inf", "warning!", "verbose", "0"}) {
    auto b = ParseConfig({"--log-level", bad}, Env({}));
    ASSERT_FALSE(b) << bad;
    EXPECT_EQ(b.error().field, "log-level") << bad;
    auto m = ParseMigrateConfig({}, Env({{"OUTBOUND_LOG_LEVEL", bad}}));
    ASSERT_FALSE(m) << bad;
    EXPECT_EQ(m.error().field, "log-level") << bad;
  }
}

TEST(ConfigTest, TimeoutsAreAbove0) {
  for (const char* name : {"--connect-timeout", "--request-timeout"}) {
    for (const char* bad : {"0s", "0ms"}) {
      auto c = ParseConfig({name, bad}, Env({}));
      ASSERT_FALSE(c) << name << " " << bad;
      EXPECT_EQ(c.error().field, std::string(name).substr(2));
    }
    auto ok = ParseConfig({name, "250ms"}, Env({}));
    ASSERT_TRUE(ok) << ok.error().message;
  }
  EXPECT_EQ(ParseConfig({"--request-timeout", "2s"}, Env({}))->request_timeout_ms, 2000);
  EXPECT_EQ(ParseConfig({"--connect-timeout", "1s"}, Env({}))->connect_timeout_ms, 1000);
}

}  // namespace
}  // namespace outbound::app
