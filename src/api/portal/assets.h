// The portal's files (src/api/portal/www/), compiled into the binary: portal_assets.cpp is
// generated at build time by cmake/EmbedText.cmake from the files as they are, so the page ships
// inside `outbound` with no build step on the user's side and nothing to install beside it.
#pragma once

#include <optional>
#include <string_view>

namespace outbound::embedded {
// The bytes of the portal file called `file_name` (e.g. "portal.js"); nullopt when there is none.
std::optional<std::string_view> portal_file(std::string_view file_name);
}  // namespace outbound::embedded
