// Internal to store/sqlite: where the SQLite store finds the key that seals signing secrets and
// subscription headers at rest (the sealing itself: store/internal/sealing.h).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "core/secretbox.h"

namespace outbound::store::sqlite {

// The configured key (base64 of 32 bytes), or else the key file `key_path`, created with a fresh
// key (mode 0600) when missing.
core::Result<core::SecretBox> LoadSecretsKey(const std::optional<std::string>& configured,
                                             const std::string& key_path);

}  // namespace outbound::store::sqlite
