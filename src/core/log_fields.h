// Structured fields of log lines (--log-format json, CONTRACT §13): the fields a log call has,
// such as subscriptionId, eventId, deliveryId, set for the calls made on this thread while a
// LogFields lives:
//
//   if (spdlog::should_log(spdlog::level::debug)) {
//     core::LogFields fields{{"subscriptionId", id.value}, {"eventId", event_id}};
//     spdlog::debug("dispatcher: attempt answered {}", status);
//   }
//
// The JSON formatter (app/logging.h) writes them beside `ts`, `level` and `msg`; the text format
// ignores them (its messages say what matters). Never put a secret, a token or a payload in a
// field. Thread-safety: the fields belong to the thread that set them.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace outbound::core {

using LogValue = std::variant<std::int64_t, std::string>;

class LogFields {
 public:
  LogFields(std::initializer_list<std::pair<std::string_view, LogValue>> fields);
  ~LogFields();
  LogFields(const LogFields&) = delete;
  LogFields& operator=(const LogFields&) = delete;
  LogFields(LogFields&&) = delete;
  LogFields& operator=(LogFields&&) = delete;

  // The fields in effect on this thread, outermost first (a name set twice: the later wins).
  static const std::vector<std::pair<std::string, LogValue>>& Current();

 private:
  std::size_t restore_size_;
};

}  // namespace outbound::core
