// The process's logger (spdlog, to stderr): the text format, or with --log-format json one JSON
// object per line: {"ts": "2026-01-02T03:04:05.678Z", "level": "info", "msg": "...", and the
// fields of core::LogFields in effect for the call, e.g. "subscriptionId": 12}.
#pragma once

#include <spdlog/formatter.h>

#include <memory>
#include <string>

#include "app/config.h"

namespace outbound::app {

// Replaces the default logger. `level`: trace|debug|info|warn|error|critical|off.
void SetUpLogging(const std::string& level, LogFormat format);

// The JSON line formatter (exposed for tests).
std::unique_ptr<spdlog::formatter> MakeJsonFormatter();

}  // namespace outbound::app
