#include "cli/verify.h"

#include <openssl/crypto.h>

#include <charconv>
#include <string>

#include "core/signing.h"

namespace outbound::cli {
namespace {

core::Error Refused(std::string code, std::string message) {
  return {core::ErrorKind::kUnauthorized, std::move(code), std::move(message), {}, {}};
}

bool SameBytes(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

core::Status VerifyWebhook(std::string_view key_bytes, std::string_view id,
                           std::string_view timestamp, std::string_view signatures,
                           std::string_view body, std::int64_t now_unix,
                           std::int64_t tolerance_seconds) {
  if (id.empty() || timestamp.empty() || signatures.empty()) {
    return core::Fail(Refused("missing_header",
                              "webhook-id, webhook-timestamp and webhook-signature are required"));
  }
  std::int64_t ts = 0;
  auto [end, ec] = std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), ts);
  if (ec != std::errc() || end != timestamp.data() + timestamp.size()) {
    return core::Fail(Refused("invalid_timestamp", "webhook-timestamp is not Unix seconds"));
  }
  if (ts < now_unix - tolerance_seconds || ts > now_unix + tolerance_seconds) {
    return core::Fail(Refused(
        "timestamp_out_of_tolerance",
        "webhook-timestamp is more than " + std::to_string(tolerance_seconds) + " s from now"));
  }
  const std::string expected = core::Sign(key_bytes, id, ts, body);
  std::string_view rest = signatures;
  while (!rest.empty()) {
    auto space = rest.find(' ');
    std::string_view one = rest.substr(0, space);
    rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
    // Only v1 (HMAC-SHA256) is defined; other versions are skipped, as the spec says.
    if (one.rfind("v1,", 0) == 0 && SameBytes(one, expected)) return {};
  }
  return core::Fail(Refused("invalid_signature", "no v1 signature matches the secret"));
}

}  // namespace outbound::cli
