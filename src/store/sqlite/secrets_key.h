// Internal to store/sqlite: the key that seals signing secrets and subscription headers at rest
// (core::SecretBox, AES-256-GCM). Sealed values start "v1:"; anything else in those columns is
// read as it is (nothing sealed: empty header lists, wiped secrets).
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

// Opens a column value written by Seal (or an unsealed one, returned as it is).
core::Result<std::string> OpenSealed(const core::SecretBox& box, std::string_view value);

}  // namespace outbound::store::sqlite
