#include "store/store.h"

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

}  // namespace outbound::store
