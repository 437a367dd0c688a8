#include "app/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <ctime>

#include "core/log_fields.h"

namespace outbound::app {
namespace {

// spdlog has no JSON output: a formatter of its own writes each record as one JSON object, with
// Boost.JSON doing the escaping (messages may hold any bytes a receiver or a request sent).
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    boost::json::object line;
    line["ts"] = Timestamp(msg.time);
    const auto level = spdlog::level::to_string_view(msg.level);
    line["level"] = std::string_view(level.data(), level.size());
    line["msg"] = std::string_view(msg.payload.data(), msg.payload.size());
    for (const auto& [name, value] : core::LogFields::Current()) {
      if (name == "ts" || name == "level" || name == "msg") continue;
      if (const auto* i = std::get_if<std::int64_t>(&value)) {
        line[name] = *i;
      } else {
        line[name] = std::get<std::string>(value);
      }
    }
    // serialize() writes invalid UTF-8 as it is; the scrubbing belongs to whoever logs bytes
    // from outside (they do: snippets are scrubbed before anything sees them).
    const std::string text = boost::json::serialize(line);
    dest.append(text.data(), text.data() + text.size());
    dest.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }

 private:
  // RFC 3339 UTC with milliseconds, as the text format writes it.
  static std::string Timestamp(spdlog::log_clock::time_point tp) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[40];
    const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    return std::string(buf, n) + fmt::format(".{:03}Z", ms % 1000);
  }
};

}  // namespace

std::unique_ptr<spdlog::formatter> MakeJsonFormatter() { return std::make_unique<JsonFormatter>(); }

void SetUpLogging(const std::string& level, LogFormat format) {
  // JSON lines are for machines: no colour codes.
  auto logger = format == LogFormat::kJson ? spdlog::stderr_logger_mt("outbound")
                                           : spdlog::stderr_color_mt("outbound");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  if (format == LogFormat::kJson) {
    spdlog::set_formatter(MakeJsonFormatter());
  } else {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  }
}

}  // namespace outbound::app
