#include "core/matching.h"

#include "core/catalog.h"

namespace outbound::core {
namespace {

// "route.*" → "route."; empty when the pattern is not a prefix pattern.
std::string_view PrefixOf(std::string_view pattern) {
  if (pattern.size() < 3 || pattern.substr(pattern.size() - 2) != ".*") return {};
  return pattern.substr(0, pattern.size() - 1);
}

}  // namespace

bool IsValidPattern(std::string_view pattern) {
  if (pattern == "*") return true;
  if (ParseEventType(pattern)) return true;
  std::string_view prefix = PrefixOf(pattern);
  if (prefix.empty() || prefix.find('*') != std::string_view::npos) return false;
  for (const EventTypeInfo& info : Catalog()) {
    if (info.name.starts_with(prefix)) return true;
  }
  return false;
}

bool Matches(std::string_view pattern, std::string_view event_type) {
  if (pattern == "*") return true;
  if (pattern == event_type) return true;
  std::string_view prefix = PrefixOf(pattern);
  return !prefix.empty() && event_type.size() > prefix.size() && event_type.starts_with(prefix);
}

bool MatchesAny(const std::vector<std::string>& patterns, std::string_view event_type) {
  for (const std::string& p : patterns) {
    if (Matches(p, event_type)) return true;
  }
  return false;
}

}  // namespace outbound::core
