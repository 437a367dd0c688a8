// How a stored rendering (payloads.data_json) is kept on SQLite: zlib-compressed when that makes
// it smaller (issue 8, bytes per waiting delivery: the bench's ~930 B renderings take ~450 B).
// Lossless: what is read back is the rendered text byte for byte (CONTRACT.md §10).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace outbound::store::sql {

// The zlib stream of `text` (it starts with the byte 0x78, with which no JSON text starts), or
// nullopt when it would not be shorter than `text` (small renderings stay text).
std::optional<std::string> PackPayload(std::string_view text);

// The rendered text of a stored value: `stored` itself unless it is a zlib stream made by
// PackPayload. A stream that does not inflate (a damaged database) is an error.
bool IsPackedPayload(std::string_view stored);
std::optional<std::string> UnpackPayload(std::string_view stored);

}  // namespace outbound::store::sql
