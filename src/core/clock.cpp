#include "core/clock.h"

#include <chrono>
#include <cstdio>
#include <limits>

namespace outbound::core {
namespace {

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian, no time zone
// database needed).
std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void CivilFromDays(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

bool IsLeap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(std::int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Reads exactly `n` digits at `pos`.
bool Digits(std::string_view s, std::size_t& pos, int n, int& out) {
  if (pos + static_cast<std::size_t>(n) > s.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    char c = s[pos + static_cast<std::size_t>(i)];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  pos += static_cast<std::size_t>(n);
  out = v;
  return true;
}

bool Expect(std::string_view s, std::size_t& pos, char c) {
  if (pos >= s.size() || s[pos] != c) return false;
  ++pos;
  return true;
}

Error TimeError(std::string message) {
  return Error::Invalid("", "invalid_time", std::move(message));
}

}  // namespace

UnixMs SystemClock::Now() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

MonotonicClock::TimePoint SteadyClock::Now() const { return std::chrono::steady_clock::now(); }

Result<UnixMs> ParseRfc3339(std::string_view s) {
  std::size_t pos = 0;
  int year, month, day, hour, minute, second;
  if (!Digits(s, pos, 4, year) || !Expect(s, pos, '-') || !Digits(s, pos, 2, month) ||
      !Expect(s, pos, '-') || !Digits(s, pos, 2, day)) {
    return Fail(TimeError("expected an RFC 3339 time such as 2026-06-25T14:31:00Z"));
  }
  if (pos >= s.size() || (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ')) {
    return Fail(
        TimeError("expected an RFC 3339 date-time with a time of day, e.g. "
                  "2026-06-25T14:31:00Z"));
  }
  ++pos;
  if (!Digits(s, pos, 2, hour) || !Expect(s, pos, ':') || !Digits(s, pos, 2, minute) ||
      !Expect(s, pos, ':') || !Digits(s, pos, 2, second)) {
    return Fail(TimeError("expected an RFC 3339 time such as 2026-06-25T14:31:00Z"));
  }
  int millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    std::size_t start = pos;
    int scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      // Digits beyond the millisecond are truncated, not rounded.
      millis += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return Fail(TimeError("a fraction of a second needs digits"));
  }
  int offset_minutes = 0;
  if (pos >= s.size()) {
    return Fail(TimeError("the time needs an offset (\"Z\" or \"+hh:mm\")"));
  }
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int sign = s[pos] == '-' ? -1 : 1;
    ++pos;
    int oh, om;
    if (!Digits(s, pos, 2, oh) || !Expect(s, pos, ':') || !Digits(s, pos, 2, om) || oh > 23 ||
        om > 59) {
      return Fail(TimeError("the offset must be \"Z\" or \"+hh:mm\""));
    }
    offset_minutes = sign * (oh * 60 + om);
  } else {
    return Fail(TimeError("the time needs an offset (\"Z\" or \"+hh:mm\")"));
  }
  if (pos != s.size()) return Fail(TimeError("unexpected characters after the time"));
  if (month < 1 || month > 12 || day < 1 ||
      static_cast<unsigned>(day) > DaysInMonth(year, static_cast<unsigned>(month)) || hour > 23 ||
      minute > 59 || second > 60) {
    return Fail(TimeError("the date or time is out of range"));
  }
  std::int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  std::int64_t secs = days * 86400 + std::int64_t{hour} * 3600 + std::int64_t{minute} * 60 +
                      second - std::int64_t{offset_minutes} * 60;
  // In UTC the time must still have a four-digit year (0000-9999), as FormatUtc writes it:
  // "9999-12-31T23:59:59-00:01" is in year 10000 there, "0000-01-01T00:00:00+00:01" in year -1.
  static const std::int64_t kFirst = DaysFromCivil(0, 1, 1) * 86400;
  static const std::int64_t kLast = DaysFromCivil(9999, 12, 31) * 86400 + 86399;
  if (secs < kFirst || secs > kLast) {
    return Fail(TimeError("the time in UTC is outside the years 0000 to 9999"));
  }
  return secs * 1000 + millis;
}

std::string FormatUtc(UnixMs ms) {
  std::int64_t secs = ms / 1000;
  std::int64_t rem = ms % 1000;
  if (rem < 0) {
    rem += 1000;
    --secs;
  }
  std::int64_t days = secs / 86400;
  std::int64_t sod = secs % 86400;
  if (sod < 0) {
    sod += 86400;
    --days;
  }
  std::int64_t y;
  unsigned m, d;
  CivilFromDays(days, y, m, d);
  const int h = static_cast<int>(sod / 3600), mi = static_cast<int>(sod / 60 % 60),
            s = static_cast<int>(sod % 60);
  if (y < 0 || y > 9999) {
    // Outside four digits: as printf writes them (no such time is stored; kept for tests).
    char buf[48];
    if (rem != 0) {
      std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ",
                    static_cast<long long>(y), m, d, h, mi, s, static_cast<int>(rem));
    } else {
      std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02dZ", static_cast<long long>(y),
                    m, d, h, mi, s);
    }
    return buf;
  }
  // The digits written in place: this runs for every time in every payload, and snprintf's
  // format parsing was a visible share of the dispatcher's CPU per delivery (issue 8).
  char buf[24] = "0000-00-00T00:00:00.000";
  auto put = [&buf](std::size_t at, int value, int digits) {
    for (int i = digits - 1; i >= 0; --i) {
      buf[at + static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
  };
  put(0, static_cast<int>(y), 4);
  put(5, static_cast<int>(m), 2);
  put(8, static_cast<int>(d), 2);
  put(11, h, 2);
  put(14, mi, 2);
  put(17, s, 2);
  if (rem == 0) return std::string(buf, 19) + 'Z';
  put(20, static_cast<int>(rem), 3);
  std::string out(buf, 23);
  out += 'Z';
  return out;
}

std::optional<UnixMs> ParseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  if (text == "0") return 0;
  // One or more <digits><unit> groups ("90s", "1h30m").
  UnixMs total = 0;
  std::size_t pos = 0;
  constexpr UnixMs kMax = std::numeric_limits<UnixMs>::max() / 2;
  while (pos < text.size()) {
    UnixMs n = 0;
    std::size_t start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      n = n * 10 + (text[pos] - '0');
      if (n > kMax / 86'400'000) return std::nullopt;
      ++pos;
    }
    if (pos == start) return std::nullopt;
    UnixMs unit;
    if (text.substr(pos, 2) == "ms") {
      unit = 1;
      pos += 2;
    } else if (pos < text.size()) {
      switch (text[pos]) {
        case 's':
          unit = 1000;
          break;
        case 'm':
          unit = 60'000;
          break;
        case 'h':
          unit = 3'600'000;
          break;
        case 'd':
          unit = 86'400'000;
          break;
        default:
          return std::nullopt;
      }
      ++pos;
    } else {
      return std::nullopt;
    }
    total += n * unit;
    if (total > kMax) return std::nullopt;
  }
  return total;
}

}  // namespace outbound::core
