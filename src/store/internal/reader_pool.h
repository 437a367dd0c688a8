// Internal to store/: the reader slots of a store (connections opened once, used by one caller
// at a time), shared by both backends. With() waits for a free slot; Close() refuses new callers
// and waits for those in progress.
//
// Thread-safety: thread-safe.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <vector>

#include "core/result.h"

namespace outbound::store::internal {

class ReaderPool {
 public:
  explicit ReaderPool(std::size_t slots) : slots_(slots) {
    for (std::size_t i = 0; i < slots; ++i) free_.push_back(i);
  }

  // Runs fn(slot) on a free slot; kUnavailable "store_closed" once Close() was called.
  core::Status With(const std::function<core::Status(std::size_t)>& fn) {
    std::size_t slot = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return closed_ || !free_.empty(); });
      if (closed_) {
        core::Error e = core::Error::Unavailable("the store is closed");
        e.code = "store_closed";
        return core::Fail(std::move(e));
      }
      slot = free_.back();
      free_.pop_back();
    }
    core::Status result = fn(slot);
    {
      // Notified under the lock: once the slot is back, Close() may return and the pool go, so
      // nothing of it may be touched after the lock is released.
      std::lock_guard<std::mutex> lock(mu_);
      free_.push_back(slot);
      cv_.notify_all();
    }
    return result;
  }

  // Later With() calls fail; returns once no slot is in use.
  void Close() {
    std::unique_lock<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return free_.size() == slots_; });
  }

 private:
  const std::size_t slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::size_t> free_;  // guarded by mu_
  bool closed_ = false;            // guarded by mu_
};

}  // namespace outbound::store::internal
