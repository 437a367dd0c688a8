// The completer thread (completer.h) with a sync: a commit's callbacks run only after a sync
// that began after the commit was handed over, one sync covers everything handed over while the
// one before ran, and a failed sync fails the callbacks' successful results. The sync here is
// the test's own function (the SQLite store's fdatasync of its WAL: sqlite_store_test.cpp).
#include "store/internal/completer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace outbound::store::internal {
namespace {

using namespace std::chrono_literals;

// A sync that counts its calls and can be held: it blocks while `held` until Release.
class HeldSync {
 public:
  Status operator()() {
    std::unique_lock<std::mutex> lock(mu_);
    ++began_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return !held_; });
    ++done_;
    if (fail_) return core::Fail(core::Error::Unavailable("the disk refused"));
    return {};
  }
  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = true;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_ = false;
    }
    cv_.notify_all();
  }
  void Fail() {
    std::lock_guard<std::mutex> lock(mu_);
    fail_ = true;
  }
  // Waits (at most 5 s) until `n` syncs have begun.
  bool WaitBegun(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, 5s, [&] { return began_ >= n; });
  }
  int Done() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  bool fail_ = false;
  int began_ = 0;
  int done_ = 0;
};

// Waits (at most 5 s) until `count` reaches `n`.
bool WaitFor(const std::atomic<int>& count, int n) {
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (count.load() < n && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(1ms);
  }
  return count.load() >= n;
}

TEST(Completer, CallbacksRunAfterASyncThatBeganAfterTheirHandOver) {
  HeldSync sync;
  Completer completer("test-done", [&sync] { return sync(); });
  std::atomic<int> ran{0};
  std::vector<int> syncs_seen(6, -1);  // by callback: the syncs finished when it ran

  // The first commit's callbacks wait for the first sync, held here.
  sync.Hold();
  completer.Hand({[&](const Status& s) {
                   EXPECT_TRUE(s);
                   syncs_seen[0] = sync.Done();
                   ++ran;
                 }},
                 {Status()});
  ASSERT_TRUE(sync.WaitBegun(1));
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(ran.load(), 0) << "a callback ran before the sync that followed its commit ended";

  // Five more commits handed over while that sync runs: they began after it, so it does not
  // cover them; one more sync covers all five.
  for (int i = 1; i < 6; ++i) {
    completer.Hand({[&, i](const Status& s) {
                     EXPECT_TRUE(s);
                     syncs_seen[static_cast<std::size_t>(i)] = sync.Done();
                     ++ran;
                   }},
                   {Status()});
  }
  EXPECT_EQ(completer.Pending(), 6u);
  sync.Release();
  ASSERT_TRUE(WaitFor(ran, 6));
  EXPECT_EQ(syncs_seen[0], 1);
  for (int i = 1; i < 6; ++i) {
    EXPECT_EQ(syncs_seen[static_cast<std::size_t>(i)], 2) << "callback " << i;
  }
  EXPECT_EQ(sync.Done(), 2) << "one sync for the commits handed over meanwhile";
  completer.Stop();
  EXPECT_EQ(completer.Pending(), 0u);
}

TEST(Completer, AFailedSyncFailsTheSuccessfulResultsOnly) {
  HeldSync sync;
  sync.Fail();
  Completer completer("test-done", [&sync] { return sync(); });
  std::atomic<int> ran{0};
  Status first;
  Status second;
  completer.Hand({[&](const Status& s) {
                    first = s;
                    ++ran;
                  },
                  [&](const Status& s) {
                    second = s;
                    ++ran;
                  }},
                 {Status(), core::Fail(core::Error::Invalid("x", "bad", "its own error"))});
  ASSERT_TRUE(WaitFor(ran, 2));
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().message, "the disk refused");
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().message, "its own error");
}

TEST(Completer, AfterStopCallbacksRunOnTheCallerAfterASync) {
  HeldSync sync;
  Completer completer("test-done", [&sync] { return sync(); });
  completer.Stop();
  bool ran = false;
  completer.Hand({[&](const Status& s) {
                   EXPECT_TRUE(s);
                   EXPECT_EQ(sync.Done(), 1);
                   ran = true;
                 }},
                 {Status()});
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace outbound::store::internal
