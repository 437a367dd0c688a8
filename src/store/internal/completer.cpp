#include "store/internal/completer.h"

#include "core/thread_name.h"
#include "store/internal/guarded.h"

namespace outbound::store::internal {

Completer::Completer(std::string thread_name)
    : thread_([this, name = std::move(thread_name)] {
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
  CallDone(dones, results);
}

std::size_t Completer::Pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_;
}

void Completer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Completer::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    busy_ = false;
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything handed over has run
    busy_ = true;
    Work work = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    CallDone(work.dones, work.results);
    const std::size_t n = work.dones.size();
    work = {};  // the callbacks and what they hold go now, not under the lock
    lock.lock();
    pending_ -= n;
  }
}

}  // namespace outbound::store::internal
