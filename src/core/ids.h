// Strong integer ids and ULIDs.
//
// UlidGenerator is thread-safe. ULIDs carry the time of acceptance (never occurredAtUtc) and are
// strictly increasing within one generator, also within one millisecond (the random part is
// incremented, as the ULID spec's "monotonicity" section says).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

namespace outbound::core {

template <class Tag>
struct StrongId {
  std::int64_t value = 0;
  constexpr StrongId() = default;
  constexpr explicit StrongId(std::int64_t v) : value(v) {}
  friend constexpr bool operator==(StrongId, StrongId) = default;
  // clang-tidy 14 takes the literal 0 inside the defaulted <=> for a null pointer.
  // NOLINTNEXTLINE(modernize-use-nullptr)
  friend constexpr auto operator<=>(StrongId, StrongId) = default;
};

using TenantId = StrongId<struct TenantTag>;
using ClientId = StrongId<struct ClientTag>;
using KeyId = StrongId<struct KeyTag>;
using SubscriptionId = StrongId<struct SubscriptionTag>;
using TargetId = StrongId<struct TargetTag>;
using DeliveryRowId = StrongId<struct DeliveryTag>;

// 26 characters of Crockford base32: 48-bit millisecond time, 80 random bits.
class UlidGenerator {
 public:
  // `random` fills the buffer with random bytes; default: OpenSSL's CSPRNG.
  UlidGenerator();
  explicit UlidGenerator(std::function<void(unsigned char*, std::size_t)> random);

  std::string Next(std::int64_t unix_ms);

 private:
  std::function<void(unsigned char*, std::size_t)> random_;
  std::mutex mu_;
  std::int64_t last_ms_ = -1;         // guarded by mu_
  unsigned char last_rand_[10] = {};  // guarded by mu_
};

bool IsUlid(std::string_view s);
// An event id as Outbound makes them: "evt_" and a ULID in upper case (ids compare as text, so a
// lower-case one would sort after every real one).
bool IsEventId(std::string_view id);
// The millisecond time of a valid ULID.
std::int64_t UlidTime(std::string_view ulid);

// Cryptographically random bytes (OpenSSL RAND_bytes); aborts if the CSPRNG fails.
void RandomBytes(unsigned char* out, std::size_t n);

}  // namespace outbound::core

template <class Tag>
struct std::hash<outbound::core::StrongId<Tag>> {
  std::size_t operator()(outbound::core::StrongId<Tag> id) const noexcept {
    return std::hash<std::int64_t>()(id.value);
  }
};
