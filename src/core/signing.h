// Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
// "msg_id.timestamp.body" with the base64-decoded part of a "whsec_..." secret, written
// "v1,<base64>". Pure apart from NewSecret's randomness; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace outbound::core {

// "whsec_" + base64 of 32 random bytes.
std::string NewSecret();
// The key bytes of a "whsec_" secret (24..64 bytes); error code "invalid_secret" otherwise.
Result<std::string> DecodeSecret(std::string_view whsec);
// "v1,<base64 HMAC-SHA256(key, msg_id + "." + timestamp + "." + body)>"
std::string Sign(std::string_view key_bytes, std::string_view msg_id, std::int64_t unix_seconds,
                 std::string_view body);

// A secret rotated out, which keeps signing beside the current one until `expires_at`.
struct RetiredSecret {
  std::string secret;  // "whsec_..."
  UnixMs expires_at = 0;
};
// A subscription keeps every secret rotated out within the grace (CONTRACT §9: the old one keeps
// signing alongside), newest first, at most kMaxRetiredSecrets, as one text (sealed at rest like
// the current secret): "whsec_...@<expires_at ms>" joined by spaces, or, for one secret alone,
// the secret itself, as builds before the list wrote it; such a text expires at
// `legacy_expires_at` (the subscription's previous_secret_expires_at).
inline constexpr std::size_t kMaxRetiredSecrets = 4;
std::vector<RetiredSecret> ReadRetiredSecrets(std::string_view text, UnixMs legacy_expires_at);
std::string WriteRetiredSecrets(const std::vector<RetiredSecret>& secrets);
// The secrets still signing after `current` is rotated out at `now` with `grace`: it first, then
// those of `retired` not expired at `now`, newest first, at most kMaxRetiredSecrets.
std::vector<RetiredSecret> RetireSecret(std::string current, UnixMs now, UnixMs grace,
                                        std::vector<RetiredSecret> retired);

std::string Base64Encode(std::string_view bytes);
Result<std::string> Base64Decode(std::string_view text);
// Lower-case hex SHA-256, used to store API tokens.
std::string Sha256Hex(std::string_view data);

}  // namespace outbound::core
