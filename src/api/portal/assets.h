// The portal's files (src/api/portal/www/), compiled into the binary: portal_assets.cpp is
// generated at build time by src/api/portal/embed.cmake from the files as they are, so the page
// ships inside `outbound` with no build step on the user's side and nothing to install beside it.
#pragma once

#include <cstddef>
#include <string_view>

namespace outbound::api::portal {

struct Asset {
  std::string_view name;  // file name, e.g. "portal.js"
  std::string_view body;  // its bytes
};

// The asset called `name`; nullptr when there is none.
const Asset* FindAsset(std::string_view name);

}  // namespace outbound::api::portal
