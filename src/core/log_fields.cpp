#include "core/log_fields.h"

namespace outbound::core {
namespace {

std::vector<std::pair<std::string, LogValue>>& Stack() {
  thread_local std::vector<std::pair<std::string, LogValue>> fields;
  return fields;
}

}  // namespace

LogFields::LogFields(std::initializer_list<std::pair<std::string_view, LogValue>> fields)
    : restore_size_(Stack().size()) {
  for (const auto& [name, value] : fields) Stack().emplace_back(std::string(name), value);
}

LogFields::~LogFields() { Stack().resize(restore_size_); }

const std::vector<std::pair<std::string, LogValue>>& LogFields::Current() { return Stack(); }

}  // namespace outbound::core
