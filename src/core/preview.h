// The summary preview of CONTRACT.md §10: at most `max_code_points` Unicode code points
// including the trailing "…", cut at the last whitespace before the limit (a hard cut only where
// there is none), never inside a UTF-8 sequence; a summary that fits is returned whole.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace outbound::core {

std::string SummaryPreview(std::string_view summary_utf8, std::size_t max_code_points = 200);

}  // namespace outbound::core
