// Randomness that need not be secret (retry jitter), injected wherever it decides something so
// that tests are deterministic. Secrets, tokens and ids use RandomBytes (core/ids.h) instead.
#pragma once

#include <cstdint>
#include <random>

namespace outbound::core {

// Implementations need not be thread-safe: each user owns one, or says who may call it.
class Random {
 public:
  virtual ~Random() = default;
  // Uniformly distributed in [0, 1).
  virtual double Unit() = 0;
};

// A 64-bit Mersenne Twister. Not thread-safe.
class DefaultRandom final : public Random {
 public:
  // Seeded from std::random_device.
  DefaultRandom();
  // The same sequence for the same seed.
  explicit DefaultRandom(std::uint64_t seed);

  double Unit() override;

 private:
  std::mt19937_64 engine_;
  std::uniform_real_distribution<double> unit_{0.0, 1.0};
};

}  // namespace outbound::core
