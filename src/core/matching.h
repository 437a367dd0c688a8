// Subscription event-type patterns: an exact type name, "*", or "prefix.*" ("route.*" matches
// "route.suggestion.created"). Pure.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace outbound::core {

// True for "*", a catalog name, or "prefix.*" whose prefix matches at least one catalog type.
bool IsValidPattern(std::string_view pattern);
bool Matches(std::string_view pattern, std::string_view event_type);
bool MatchesAny(const std::vector<std::string>& patterns, std::string_view event_type);

}  // namespace outbound::core
