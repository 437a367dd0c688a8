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

Result<int> Txn::RecoverDeliveries(TenantId, SubscriptionId, UnixMs, UnixMs) {
  return core::Fail(core::Error::Internal("RecoverDeliveries is not implemented by this store"));
}

Result<bool> Txn::DisableSubscription(TenantId, SubscriptionId, std::string_view, UnixMs) {
  return core::Fail(core::Error::Internal("DisableSubscription is not implemented by this store"));
}
Result<FailureStreak> Txn::GetFailureStreak(TenantId, SubscriptionId) {
  return core::Fail(core::Error::Internal("GetFailureStreak is not implemented by this store"));
}
Result<std::optional<Subscription>> Txn::GetOperationsWebhook(TenantId) {
  return std::optional<Subscription>();
}
Result<std::pair<Subscription, bool>> Txn::PutOperationsWebhook(TenantId, std::string_view,
                                                                std::string_view, UnixMs) {
  return core::Fail(core::Error::Internal("PutOperationsWebhook is not implemented by this store"));
}
Result<bool> Txn::DeleteOperationsWebhook(TenantId) { return false; }
Result<std::optional<DeliveryJob>> Txn::InsertOperationalEvent(TenantId, std::string_view,
                                                               std::string_view, std::string_view,
                                                               UnixMs, std::string_view, UnixMs) {
  return std::optional<DeliveryJob>();
}

Status Store::Write(std::function<Status(Txn&)> fn) {
  // `done` runs exactly once (after the commit, or at once when the queue is full or closed),
  // so the promise outlives every use of it.
  std::promise<Status> promise;
  std::future<Status> result = promise.get_future();
  Submit(WriteTask{std::move(fn), [&promise](const Status& s) { promise.set_value(s); }});
  return result.get();
}

}  // namespace outbound::store
