// DefaultRandom and the FakeRandom of core/testing/fakes.h.
#include "core/random.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "core/testing/fakes.h"

namespace outbound::core {
namespace {

TEST(DefaultRandomTest, UnitIsInTheUnitInterval) {
  DefaultRandom random;
  double lowest = 1.0, highest = 0.0;
  for (int i = 0; i < 10000; ++i) {
    const double u = random.Unit();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    lowest = std::min(lowest, u);
    highest = std::max(highest, u);
  }
  // Spread over the interval, not stuck in a corner of it.
  EXPECT_LT(lowest, 0.01);
  EXPECT_GT(highest, 0.99);
}

TEST(DefaultRandomTest, SameSeedSameSequence) {
  DefaultRandom a(42), b(42), c(43);
  std::vector<double> from_a, from_b, from_c;
  for (int i = 0; i < 8; ++i) {
    from_a.push_back(a.Unit());
    from_b.push_back(b.Unit());
    from_c.push_back(c.Unit());
  }
  EXPECT_EQ(from_a, from_b);
  EXPECT_NE(from_a, from_c);
}

TEST(FakeRandomTest, AnswersWhatItIsTold) {
  testing::FakeRandom random(0.25);
  EXPECT_EQ(random.Unit(), 0.25);
  EXPECT_EQ(random.Unit(), 0.25);
  random.Set(0.75);
  EXPECT_EQ(random.Unit(), 0.75);
}

}  // namespace
}  // namespace outbound::core
