// The completer thread (completer.h) with a sync: a commit's callbacks run only after a sync
// that began after the commit was handed over, one sync covers everything handed over while the
// one before ran, and the writer can wait for the callbacks' backlog to shrink. The sync here is
// the test's own function (the SQLite store's fdatasync of its WAL: sqlite_store_test.cpp).
#include "store/internal/completer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace outbound::store::internal {
namespace {

using namespace std::chrono_literals;

// A sync that counts its calls and can be held: it blocks while held, until Release.
class HeldSync {
 public:
  void operator()() {
    std::unique_lock<std::mutex> lock(mu_);
    ++began_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return !held_; });
    ++done_;
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
  int began_ = 0;
  int done_ = 0;
};

// Releases the sync however the test ends, so that the completer's thread can finish.
struct ReleaseAtEnd {
  HeldSync& sync;
  ~ReleaseAtEnd() { sync.Release(); }
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
  // Declared before the completer: its thread may still run callbacks until it is destroyed.
  HeldSync sync;
  std::atomic<int> ran{0};
  std::vector<int> syncs_seen(6, -1);  // by callback: the syncs finished when it ran
  Completer completer("test-done", [&sync] { sync(); });
  ReleaseAtEnd release{sync};

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

// The writer's backpressure: it waits while more callbacks than its bound are pending (a slow
// sync), and goes on once they ran.
TEST(Completer, AWaitForPendingCallbacksEndsWhenTheyRan) {
  HeldSync sync;
  std::atomic<int> ran{0};
  std::atomic<bool> waited{false};
  Completer completer("test-done", [&sync] { sync(); });
  ReleaseAtEnd release{sync};
  sync.Hold();
  for (int i = 0; i < 4; ++i) {
    completer.Hand({[&](const Status&) { ++ran; }}, {Status()});
  }
  std::future<void> writer = std::async(std::launch::async, [&] {
    completer.WaitUntilPendingAtMost(1);
    waited = true;
  });
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(waited.load()) << "four callbacks pending behind a held sync";
  sync.Release();
  const bool ended = writer.wait_for(5s) == std::future_status::ready;
  if (!ended) completer.Stop();  // ends the wait, so that the test reports instead of hanging
  ASSERT_TRUE(ended) << "the wait outlived the callbacks";
  EXPECT_TRUE(waited.load());
  completer.WaitUntilPendingAtMost(0);
  EXPECT_EQ(ran.load(), 4);
}

TEST(Completer, AfterStopCallbacksRunOnTheCallerAfterASync) {
  HeldSync sync;
  bool ran = false;
  Completer completer("test-done", [&sync] { sync(); });
  completer.Stop();
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
