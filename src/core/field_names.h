// Naming help for unknown fields: a name written another way than the API's (the seed writes the
// payload options as IncludeCustomerContext; others write include_customer_context) is still an
// `unknown_field` error, and its message says which name is meant. Pure and thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace outbound::core {

// Whether `written` is `name` spelt another way: ASCII case, '_' and '-' aside
// ("IncludeCustomerContext", "include_customer_context" and "includeCustomerContext" are one
// name). Identical names match too.
bool SameNameLoosely(std::string_view written, std::string_view name);

// "; did you mean <name>?" for the first of `names` (a range of things that convert to
// std::string_view) that `written` matches loosely but not exactly; "" when there is none.
template <class Names>
std::string DidYouMean(std::string_view written, const Names& names) {
  for (const auto& n : names) {
    const std::string_view name(n);
    if (name != written && SameNameLoosely(written, name)) {
      return "; did you mean " + std::string(name) + "?";
    }
  }
  return {};
}

}  // namespace outbound::core
