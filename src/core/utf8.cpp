#include "core/utf8.h"

#include <boost/locale/utf.hpp>

namespace outbound::core {

namespace {
using Traits = boost::locale::utf::utf_traits<char>;

bool Bad(boost::locale::utf::code_point c) {
  return c == boost::locale::utf::illegal || c == boost::locale::utf::incomplete;
}
}  // namespace

bool IsValidUtf8(std::string_view s) {
  const char* p = s.data();
  const char* end = p + s.size();
  while (p != end) {
    if (Bad(Traits::decode(p, end))) return false;
  }
  return true;
}

std::string ScrubUtf8(std::string_view s) {
  if (IsValidUtf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 16);
  const char* p = s.data();
  const char* end = p + s.size();
  while (p != end) {
    const char* start = p;
    if (Bad(Traits::decode(p, end))) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      p = start + 1;          // resynchronise on the next byte
    } else {
      out.append(start, p);
    }
  }
  return out;
}

}  // namespace outbound::core
