// Internal to store/: sealing of signing secrets and subscription headers at rest, shared by both
// backends (core::SecretBox, AES-256-GCM). Sealed values start "v1:"; anything else in those
// columns is read as it is (nothing sealed: empty header lists, wiped secrets).
//
// Key rotation (--secrets-key NEW,OLD,...): values are sealed with the first key and opened with
// whichever key opens them; NeedsReseal tells which stored values to seal again with the first.
// Thread-safety: immutable after creation.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "core/secretbox.h"

namespace outbound::store::internal {

class Sealer {
 public:
  // At least one key; the first seals.
  explicit Sealer(std::vector<core::SecretBox> keys) : keys_(std::move(keys)) {}
  // base64 keys, first = the one that seals; error code "invalid_secrets_key".
  static core::Result<Sealer> FromBase64Keys(const std::vector<std::string>& keys);

  std::string Seal(std::string_view plaintext) const { return keys_.front().Seal(plaintext); }
  // A value written by Seal with any of the keys (or an unsealed one, returned as it is). Error
  // code "secrets_key_mismatch" when no key opens it.
  core::Result<std::string> Open(std::string_view value) const;
  // A sealed value that the first key does not open.
  bool NeedsReseal(std::string_view value) const;
  std::size_t KeyCount() const { return keys_.size(); }

 private:
  std::vector<core::SecretBox> keys_;
};

}  // namespace outbound::store::internal
