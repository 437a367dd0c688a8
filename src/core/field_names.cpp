#include "core/field_names.h"

namespace outbound::core {

bool SameNameLoosely(std::string_view written, std::string_view name) {
  auto skip = [](char c) { return c == '_' || c == '-'; };
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  std::size_t i = 0;
  std::size_t j = 0;
  for (;;) {
    while (i < written.size() && skip(written[i])) ++i;
    while (j < name.size() && skip(name[j])) ++j;
    if (i == written.size() || j == name.size()) return i == written.size() && j == name.size();
    if (lower(written[i]) != lower(name[j])) return false;
    ++i;
    ++j;
  }
}

}  // namespace outbound::core
