#include "core/ids.h"

#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>

namespace outbound::core {
namespace {

constexpr char kCrockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int CrockfordValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  for (int i = 10; i < 32; ++i) {
    if (kCrockford[i] == c) return i;
  }
  return -1;
}

}  // namespace

void RandomBytes(unsigned char* out, std::size_t n) {
  if (n == 0) return;
  if (RAND_bytes(out, static_cast<int>(n)) != 1) {
    // Without a working CSPRNG no id or secret can be trusted: stop rather than degrade.
    std::fputs("outbound: RAND_bytes failed\n", stderr);
    std::abort();
  }
}

UlidGenerator::UlidGenerator() : random_(&RandomBytes) {}

UlidGenerator::UlidGenerator(std::function<void(unsigned char*, std::size_t)> random)
    : random_(std::move(random)) {}

std::string UlidGenerator::Next(std::int64_t unix_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (unix_ms < 0) unix_ms = 0;
  if (unix_ms <= last_ms_) {
    // Same (or an earlier, clock stepped back) millisecond: keep the last time and increment
    // the random part so ids stay strictly increasing.
    unix_ms = last_ms_;
    int i = 9;
    while (i >= 0 && ++last_rand_[i] == 0) --i;
    if (i < 0) {
      // 80-bit overflow within one millisecond: move on to the next millisecond.
      ++unix_ms;
      random_(last_rand_, sizeof last_rand_);
    }
  } else {
    random_(last_rand_, sizeof last_rand_);
  }
  last_ms_ = unix_ms;

  // 128 bits: 48 bits time, 80 bits random, big-endian, encoded as 26 base32 chars (130 bits,
  // the top two bits zero).
  unsigned char bytes[16];
  auto t = static_cast<std::uint64_t>(unix_ms);
  for (int i = 5; i >= 0; --i) {
    bytes[i] = static_cast<unsigned char>(t & 0xff);
    t >>= 8;
  }
  for (int i = 0; i < 10; ++i) bytes[6 + i] = last_rand_[i];

  std::string out(26, '0');
  // Walk the 130-bit number 5 bits at a time from the least significant end.
  unsigned int acc = 0;
  int bits = 0;
  int pos = 25;
  for (int i = 15; i >= 0; --i) {
    acc |= static_cast<unsigned int>(bytes[i]) << bits;
    bits += 8;
    while (bits >= 5) {
      out[pos--] = kCrockford[acc & 31];
      acc >>= 5;
      bits -= 5;
    }
  }
  if (pos >= 0) out[pos] = kCrockford[acc & 31];
  return out;
}

bool IsUlid(std::string_view s) {
  if (s.size() != 26) return false;
  // The first character carries only 3 bits (128 = 26*5 - 2).
  int first = CrockfordValue(s[0]);
  if (first < 0 || first > 7) return false;
  for (char c : s) {
    if (CrockfordValue(c) < 0) return false;
  }
  return true;
}

bool IsEventId(std::string_view id) {
  if (id.size() != 30 || id.substr(0, 4) != "evt_" || !IsUlid(id.substr(4))) return false;
  for (char c : id.substr(4)) {
    if (c >= 'a' && c <= 'z') return false;
  }
  return true;
}

std::int64_t UlidTime(std::string_view ulid) {
  // The first 10 characters are 50 bits, the top 2 of which are zero: the 48-bit time.
  std::uint64_t t = 0;
  for (std::size_t i = 0; i < 10 && i < ulid.size(); ++i) {
    int v = CrockfordValue(ulid[i]);
    if (v < 0) return 0;
    t = (t << 5) | static_cast<std::uint64_t>(v);
  }
  return static_cast<std::int64_t>(t);
}

}  // namespace outbound::core
