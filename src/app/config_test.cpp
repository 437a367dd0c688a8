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

}  // namespace
}  // namespace outbound::app
