// Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
// "msg_id.timestamp.body" with the base64-decoded part of a "whsec_..." secret, written
// "v1,<base64>". Pure apart from NewSecret's randomness; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace outbound::core {

// "whsec_" + base64 of 32 random bytes.
std::string NewSecret();
// The key bytes of a "whsec_" secret (24..64 bytes); error code "invalid_secret" otherwise.
Result<std::string> DecodeSecret(std::string_view whsec);
// "v1,<base64 HMAC-SHA256(key, msg_id + "." + timestamp + "." + body)>"
std::string Sign(std::string_view key_bytes, std::string_view msg_id, std::int64_t unix_seconds,
                 std::string_view body);

std::string Base64Encode(std::string_view bytes);
Result<std::string> Base64Decode(std::string_view text);
// Lower-case hex SHA-256, used to store API tokens.
std::string Sha256Hex(std::string_view data);

}  // namespace outbound::core
