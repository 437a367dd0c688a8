// The inbox (inbox.h): how other threads hand the dispatcher thread work, and it takes it.
#include "delivery/internal/inbox.h"

#include <utility>

namespace outbound::delivery::internal {

void Inbox::NotifyLocked() {
  if (sender != nullptr) sender->Wakeup();
  cv.notify_all();
}

bool Inbox::Offer(std::vector<store::DeliveryJob>& jobs) {
  std::lock_guard lock(mu);
  if (closed) return false;
  PushLocked({Kind::kOffered, std::move(jobs), {}, {}, 0});
  return true;
}

void Inbox::PushLocked(Item item) {
  // Items waiting means a wake-up was sent since the dispatcher last took them (it takes them
  // all at once, and only then is the list empty again): that wake-up covers this item too. So
  // the store, handing over a group commit's callbacks one by one, wakes the dispatcher
  // once per commit rather than once per task (issue 8: a syscall and a futex each).
  const bool first = items.empty();
  items.push_back(std::move(item));
  if (first) NotifyLocked();
}

void Inbox::Wake() {
  std::lock_guard lock(mu);
  wake = true;
  NotifyLocked();
}

void Inbox::ConfigChanged() {
  std::lock_guard lock(mu);
  config_changed = true;
  NotifyLocked();
}

void Inbox::DueAnnounced() {
  std::lock_guard lock(mu);
  due_announced = true;
  NotifyLocked();
}

void Inbox::Invalidate(core::SubscriptionId id) {
  std::lock_guard lock(mu);
  invalidated.push_back(id);
  NotifyLocked();
}

void Inbox::RequestStop() {
  std::lock_guard lock(mu);
  stop = true;
  NotifyLocked();
}

std::vector<core::DeliveryRowId> Inbox::Close() {
  std::vector<core::DeliveryRowId> orphans;
  std::lock_guard lock(mu);
  closed = true;
  for (auto& item : items) {
    for (auto& job : item.jobs) orphans.push_back(job.id);
  }
  items.clear();
  return orphans;
}

Inbox::Drained Inbox::Drain() {
  Drained out;
  std::lock_guard lock(mu);
  out.items.swap(items);
  out.invalidated.swap(invalidated);
  out.wake = std::exchange(wake, false);
  out.config_changed = std::exchange(config_changed, false);
  out.due_announced = std::exchange(due_announced, false);
  out.stop = stop;
  return out;
}

void Inbox::BeginWrite() {
  std::lock_guard lock(mu);
  ++pending_writes;
}

void Inbox::FinishWrite(Item item) {
  std::lock_guard lock(mu);
  --pending_writes;
  PushLocked(std::move(item));
}

}  // namespace outbound::delivery::internal
