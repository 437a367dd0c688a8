#include "store/store.h"

#include <algorithm>
#include <future>
#include <utility>

namespace outbound::store {

std::string_view ToString(DeliveryStatus s) {
  switch (s) {
    case DeliveryStatus::kPending:
      return "pending";
    case DeliveryStatus::kSucceeded:
      return "succeeded";
    case DeliveryStatus::kFailed:
      return "failed";
    case DeliveryStatus::kDead:
      return "dead";
    case DeliveryStatus::kCancelled:
      return "cancelled";
  }
  return "pending";
}

std::optional<DeliveryStatus> ParseDeliveryStatus(std::string_view s) {
  if (s == "pending") return DeliveryStatus::kPending;
  if (s == "succeeded") return DeliveryStatus::kSucceeded;
  if (s == "failed") return DeliveryStatus::kFailed;
  if (s == "dead") return DeliveryStatus::kDead;
  if (s == "cancelled") return DeliveryStatus::kCancelled;
  return std::nullopt;
}

Status Store::Write(std::function<Status(Txn&)> fn, std::uint64_t key) {
  // `done` runs exactly once (after the commit, or at once when the queue is full or closed),
  // so the promise outlives every use of it.
  std::promise<Status> promise;
  std::future<Status> result = promise.get_future();
  Submit(WriteTask{std::move(fn), [&promise](const Status& s) { promise.set_value(s); }, key});
  return result.get();
}

Result<int> RecoverInChunks(Store& store, TenantId tenant, SubscriptionId sub, UnixMs since,
                            UnixMs now, int chunk_rows,
                            const std::function<void(int)>& after_chunk) {
  int total = 0;
  RecoverCursor cursor;
  while (!cursor.done) {
    // `run` may run more than once: it assigns the step, the cursor moves after the commit.
    RecoverStep step;
    Status st = store.Write([&](Txn& tx) -> Status {
      auto r = tx.RecoverDeliveriesStep(tenant, sub, since, now, cursor, std::max(chunk_rows, 1));
      if (!r) return core::Fail(std::move(r.error()));
      step = *r;
      return {};
    });
    if (!st) return core::Fail(std::move(st.error()));
    total += step.recovered;
    cursor = step.next;
    if (step.recovered > 0 && after_chunk) after_chunk(step.recovered);
  }
  return total;
}

}  // namespace outbound::store
