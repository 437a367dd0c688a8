#include "store/internal/completer.h"

#include "core/thread_name.h"
#include "store/internal/guarded.h"

namespace outbound::store::internal {

Completer::Completer(std::string thread_name, Sync sync)
    : sync_(std::move(sync)), thread_([this, name = std::move(thread_name)] {
        core::NameThisThread(name.c_str());
        Loop();
      }) {}

Completer::~Completer() { Stop(); }

void Completer::Hand(std::vector<Done> dones, std::vector<Status> results) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      pending_ += dones.size();
      queue_.push_back(Work{std::move(dones), std::move(results)});
      // A busy thread looks at the queue again before it waits: no wake-up needed.
      if (!busy_) cv_.notify_one();
      return;
    }
  }
  std::deque<Work> work;
  work.push_back(Work{std::move(dones), std::move(results)});
  SyncThenRun(work);
}

void Completer::SyncThenRun(std::deque<Work>& work) {
  if (sync_) {
    bool any = false;
    for (const Work& w : work) any = any || !w.dones.empty();
    if (any) sync_();
  }
  for (Work& w : work) {
    CallDone(w.dones, w.results);
    w = {};  // the callbacks and what they hold go now, in their order
  }
}

std::size_t Completer::Pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_;
}

void Completer::WaitUntilPendingAtMost(std::size_t n) {
  std::unique_lock<std::mutex> lock(mu_);
  drained_.wait(lock, [&] { return pending_ <= n || stopping_; });
}

void Completer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  drained_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Completer::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    busy_ = false;
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything handed over has run
    busy_ = true;
    // Everything handed over so far: one sync covers all of it.
    std::deque<Work> work;
    work.swap(queue_);
    lock.unlock();
    std::size_t n = 0;
    for (const Work& w : work) n += w.dones.size();
    SyncThenRun(work);
    work.clear();  // not under the lock
    lock.lock();
    pending_ -= n;
    drained_.notify_all();
  }
}

}  // namespace outbound::store::internal
