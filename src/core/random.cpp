// Randomness that need not be secret (random.h).
#include "core/random.h"

namespace outbound::core {

DefaultRandom::DefaultRandom() : engine_(std::random_device{}()) {}

DefaultRandom::DefaultRandom(std::uint64_t seed) : engine_(seed) {}

double DefaultRandom::Unit() { return unit_(engine_); }

}  // namespace outbound::core
