#include "core/preview.h"

#include <cstdint>
#include <vector>

namespace outbound::core {
namespace {

constexpr char32_t kReplacement = 0xFFFD;

// Decodes UTF-8 leniently: every byte that does not start a well-formed sequence (overlong,
// surrogate, beyond U+10FFFF, truncated) becomes one U+FFFD, so malformed input still yields a
// valid preview instead of a split or invalid sequence.
std::vector<char32_t> Decode(std::string_view s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
      continue;
    }
    int len;
    char32_t cp;
    char32_t min;
    if ((b0 & 0xE0) == 0xC0) {
      len = 2, cp = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      len = 3, cp = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      len = 4, cp = b0 & 0x07, min = 0x10000;
    } else {
      out.push_back(kReplacement);
      ++i;
      continue;
    }
    bool ok = i + static_cast<std::size_t>(len) <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      auto b = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
      if ((b & 0xC0) != 0x80) {
        ok = false;
      } else {
        cp = (cp << 6) | (b & 0x3F);
      }
    }
    if (!ok || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      out.push_back(kReplacement);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += static_cast<std::size_t>(len);
  }
  return out;
}

void Encode(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Unicode White_Space.
bool IsSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

std::string EncodeAll(const std::vector<char32_t>& cps, std::size_t n) {
  std::string out;
  out.reserve(n + 3);
  for (std::size_t i = 0; i < n; ++i) Encode(cps[i], out);
  return out;
}

}  // namespace

std::string SummaryPreview(std::string_view summary_utf8, std::size_t max_code_points) {
  std::vector<char32_t> cps = Decode(summary_utf8);
  if (cps.size() <= max_code_points) return EncodeAll(cps, cps.size());
  if (max_code_points == 0) return {};

  // Room for max-1 code points of text plus the ellipsis. Cut at the last whitespace at or
  // before that limit (whitespace right at the limit means the cut already ends a word), then
  // drop the whitespace run before the cut.
  const std::size_t limit = max_code_points - 1;
  std::size_t keep = limit;
  for (std::size_t j = limit; j > 0; --j) {
    if (IsSpace(cps[j])) {
      std::size_t end = j;
      while (end > 0 && IsSpace(cps[end - 1])) --end;
      if (end > 0) keep = end;  // else only leading whitespace: no word boundary, hard cut
      break;
    }
  }
  std::string out = EncodeAll(cps, keep);
  out += "\xE2\x80\xA6";  // U+2026 HORIZONTAL ELLIPSIS
  return out;
}

}  // namespace outbound::core
