// Clocks and randomness that tests set by hand. Header-only, for test executables. Thread-safe: a
// test steps them while the code under test reads them on its own threads.
#pragma once

#include <atomic>
#include <chrono>

#include "core/clock.h"
#include "core/random.h"

namespace outbound::core::testing {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(UnixMs now) : now_(now) {}

  UnixMs Now() const override { return now_.load(); }
  void Set(UnixMs now) { now_.store(now); }
  void Advance(UnixMs ms) { now_.fetch_add(ms); }

 private:
  std::atomic<UnixMs> now_;
};

// Stands still until Advance(). Starts an hour after the epoch, so that a default-constructed
// TimePoint is always in the past.
class FakeMonotonicClock final : public MonotonicClock {
 public:
  TimePoint Now() const override { return TimePoint(TimePoint::duration(ticks_.load())); }
  void Advance(std::chrono::nanoseconds by) {
    ticks_.fetch_add(std::chrono::duration_cast<TimePoint::duration>(by).count());
  }

 private:
  std::atomic<TimePoint::rep> ticks_{
      std::chrono::duration_cast<TimePoint::duration>(std::chrono::hours(1)).count()};
};

// Answers `value` (in [0, 1)) until Set() says otherwise.
class FakeRandom final : public Random {
 public:
  explicit FakeRandom(double value = 0.5) : value_(value) {}

  double Unit() override { return value_.load(); }
  void Set(double value) { value_.store(value); }

 private:
  std::atomic<double> value_;
};

}  // namespace outbound::core::testing
