// Encryption at rest for signing secrets and subscription headers: AES-256-GCM with a 32-byte
// key (`--secrets-key`, base64), a random 96-bit nonce per value, written
// "v1:" + base64(nonce || ciphertext || tag). Thread-safe (immutable after creation).
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

namespace outbound::core {

class SecretBox {
 public:
  // key_base64: base64 of exactly 32 bytes; error code "invalid_secrets_key" otherwise.
  static Result<SecretBox> FromBase64Key(std::string_view key_base64);
  // A fresh random key, base64 (what `openssl rand -base64 32` prints).
  static std::string NewBase64Key();

  std::string Seal(std::string_view plaintext) const;
  // Error code "secrets_key_mismatch" when the value was sealed with another key or altered.
  Result<std::string> Open(std::string_view sealed) const;

 private:
  explicit SecretBox(std::string key) : key_(std::move(key)) {}
  std::string key_;  // 32 bytes
};

}  // namespace outbound::core
