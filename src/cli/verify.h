// Verifying a Standard Webhooks request, as a receiver does: what `outbound listen` runs on
// every webhook it gets. The same rules as the public `standardwebhooks` libraries: the three
// headers present, the timestamp within a tolerance of now (replays of old requests refused),
// and one of the space-separated `v1,` signatures equal (in constant time) to the HMAC-SHA256
// of "id.timestamp.body".
#pragma once

#include <cstdint>
#include <string_view>

#include "core/result.h"

namespace outbound::cli {

inline constexpr std::int64_t kDefaultToleranceSeconds = 300;

// key_bytes: the decoded secret (core::DecodeSecret). Error codes: "missing_header",
// "invalid_timestamp", "timestamp_out_of_tolerance", "invalid_signature".
core::Status VerifyWebhook(std::string_view key_bytes, std::string_view id,
                           std::string_view timestamp, std::string_view signatures,
                           std::string_view body, std::int64_t now_unix,
                           std::int64_t tolerance_seconds = kDefaultToleranceSeconds);

}  // namespace outbound::cli
