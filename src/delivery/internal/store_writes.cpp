// The dispatcher's store tasks (store_writes.h) and the inbox items they answer with.
#include "delivery/internal/store_writes.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "delivery/internal/operations.h"
#include "store/counters.h"

namespace outbound::delivery::internal {

using core::DeliveryRowId;
using core::SubscriptionId;
using core::UnixMs;

StoreWrites::StoreWrites(store::Store& store, const core::Clock& clock,
                         std::shared_ptr<Inbox> inbox, StoreWriteOptions options)
    : store_(store), clock_(clock), inbox_(std::move(inbox)), options_(std::move(options)) {}

void StoreWrites::Claim(int limit) {
  auto claimed = std::make_shared<std::vector<store::DeliveryJob>>();
  const core::Clock* clock = &clock_;
  const UnixMs lease_ms = options_.lease_ms;
  std::string owner = options_.owner;
  std::shared_ptr<Inbox> inbox = inbox_;
  inbox_->BeginWrite();
  store_.Submit(store::WriteTask{
      [claimed, clock, lease_ms, owner, limit](store::Txn& txn) -> core::Status {
        const UnixMs t = clock->Now();
        auto r = txn.ClaimDueAsStored(owner, t, t + lease_ms, limit);
        if (!r) return core::Fail(r.error());
        *claimed = std::move(*r);
        return {};
      },
      [claimed, inbox, limit](const core::Status& status) {
        Inbox::Item item;
        if (status) {
          item.kind = Inbox::Kind::kClaimed;
          // Unpacked here, after the commit (the store's callback thread), not in the claim on
          // the writer. A rendering that does not unpack (a damaged database) is not sent: its
          // row goes back due later, like a full lane's (item.ids), and is logged each time.
          item.jobs.reserve(claimed->size());
          for (store::DeliveryJob& job : *claimed) {
            core::Status unpacked;
            try {
              unpacked = store::UnpackRendering(job.data_json);
            } catch (const std::exception& e) {  // FinishWrite below must be reached
              unpacked = core::Fail(core::Error::Internal(e.what()));
            }
            if (!unpacked) {
              store::Counters::UnreadableRendering();
              spdlog::error("dispatcher: delivery {} of event {} not sent: {}", job.id.value,
                            job.event_id, unpacked.error().message);
              item.ids.push_back(job.id);
              continue;
            }
            item.jobs.push_back(std::move(job));
          }
          item.requested = limit;
        } else {
          item.kind = Inbox::Kind::kClaimFailed;
          spdlog::warn("dispatcher: claiming due deliveries failed: {}", status.error().message);
        }
        inbox->FinishWrite(std::move(item));
      },
      store::kDeliveryKey});
}

void StoreWrites::RenewLease(std::vector<core::SubscriptionId> idle) {
  auto lost = std::make_shared<bool>(false);
  auto idle_subs = std::make_shared<std::vector<core::SubscriptionId>>(std::move(idle));
  const core::Clock* clock = &clock_;
  const UnixMs lease_ms = options_.lease_ms;
  std::string owner = options_.owner;
  std::shared_ptr<Inbox> inbox = inbox_;
  inbox_->BeginWrite();
  store_.Submit(store::WriteTask{
      [lost, idle_subs, clock, lease_ms, owner](store::Txn& txn) -> core::Status {
        const UnixMs t = clock->Now();
        auto r = txn.RenewLease(owner, t, t + lease_ms);
        if (!r) return core::Fail(r.error());
        *lost = !*r;
        if (*lost || idle_subs->empty()) return {};
        auto shed = txn.ShedSubscriptions(owner, t, *idle_subs);
        if (!shed) return core::Fail(shed.error());
        if (*shed > 0) {
          spdlog::info("dispatcher: gave up {} idle subscriptions beyond this process's share",
                       *shed);
        }
        return {};
      },
      [lost, inbox](const core::Status& status) {
        Inbox::Item item;
        item.kind = status && *lost ? Inbox::Kind::kLeaseLost : Inbox::Kind::kRenewed;
        item.renewed = status && !*lost;
        if (!status) {
          spdlog::warn("dispatcher: renewing the lease failed: {}", status.error().message);
        }
        inbox->FinishWrite(std::move(item));
      },
      store::kDeliveryKey});
}

void StoreWrites::ReleaseUnheld(UnixMs leased_until_at_most,
                                std::vector<core::DeliveryRowId> held) {
  auto ids = std::make_shared<std::vector<core::DeliveryRowId>>(std::move(held));
  std::string owner = options_.owner;
  store_.Submit(store::WriteTask{
      [ids, owner, leased_until_at_most](store::Txn& txn) -> core::Status {
        auto n = txn.ReleaseUnheld(owner, leased_until_at_most, *ids);
        if (!n) return core::Fail(n.error());
        if (*n > 0) {
          spdlog::warn(
              "dispatcher: gave back {} deliveries leased by a commit whose outcome was "
              "unknown",
              *n);
        }
        return {};
      },
      [](const core::Status& status) {
        if (!status) {
          spdlog::warn("dispatcher: giving back unheld deliveries failed: {}",
                       status.error().message);
        }
      },
      store::kDeliveryKey});
}

void StoreWrites::RecordOutcomes(std::vector<store::Outcome> outcomes, bool claim_after) {
  auto batch = std::make_shared<std::vector<store::Outcome>>(std::move(outcomes));
  auto effects = std::make_shared<OutcomeEffects>();
  OutcomeEffectOptions effect_options{options_.disable_after_ms, options_.disable_min_attempts,
                                      options_.owner, options_.lease_ms};
  std::shared_ptr<core::UlidGenerator> ids = event_ids_;
  const core::Clock* clock = &clock_;
  std::shared_ptr<Inbox> inbox = inbox_;
  inbox_->BeginWrite();
  store_.Submit(store::WriteTask{
      [batch, effects, effect_options, ids, clock](store::Txn& txn) -> core::Status {
        *effects = {};
        auto stale = txn.RecordOutcomes(effect_options.owner, *batch);
        if (!stale) return core::Fail(stale.error());
        if (stale->empty()) {
          return ApplyOutcomeEffects(txn, *batch, effect_options, clock->Now(), *ids, *effects);
        }
        // Rows another process took over while this one was late: its work stands, and what
        // these outcomes would have set off (a delivery.dead, a disable) does not happen.
        spdlog::warn(
            "dispatcher: {} outcomes were for deliveries no longer leased to this process and "
            "were ignored",
            stale->size());
        std::vector<store::Outcome> applied;
        applied.reserve(batch->size() - stale->size());
        std::size_t next_stale = 0;
        for (std::size_t i = 0; i < batch->size(); ++i) {
          if (next_stale < stale->size() && (*stale)[next_stale] == i) {
            ++next_stale;
          } else {
            applied.push_back((*batch)[i]);
          }
        }
        return ApplyOutcomeEffects(txn, applied, effect_options, clock->Now(), *ids, *effects);
      },
      [batch, effects, inbox, claim_after](const core::Status& status) {
        Inbox::Item item;
        if (status) {
          item.kind = Inbox::Kind::kSettled;
          item.claim_after = claim_after;
          item.outcome_write = true;
          item.ids.reserve(batch->size());
          for (const auto& o : *batch) item.ids.push_back(o.delivery);
          if (!effects->disabled.empty() || !effects->jobs.empty()) {
            std::lock_guard lock(inbox->mu);
            for (SubscriptionId id : effects->disabled) inbox->invalidated.push_back(id);
            if (!effects->jobs.empty()) {
              Inbox::Item offered;
              offered.kind = Inbox::Kind::kOffered;
              offered.jobs = std::move(effects->jobs);
              inbox->items.push_back(std::move(offered));
            }
          }
        } else {
          spdlog::warn("dispatcher: recording {} outcomes failed (will retry): {}", batch->size(),
                       status.error().message);
          item.kind = Inbox::Kind::kOutcomesFailed;
          item.outcomes = std::move(*batch);
        }
        inbox->FinishWrite(std::move(item));
      },
      store::kDeliveryKey});
}

void StoreWrites::ReleaseLeases(std::vector<DeliveryRowId> released) {
  GiveBack(std::move(released), std::nullopt);
}

void StoreWrites::DeferLeases(std::vector<DeliveryRowId> ids, core::UnixMs delay_ms) {
  GiveBack(std::move(ids), delay_ms);
}

void StoreWrites::GiveBack(std::vector<DeliveryRowId> released,
                           std::optional<core::UnixMs> delay_ms) {
  auto ids = std::make_shared<std::vector<DeliveryRowId>>(std::move(released));
  std::optional<core::UnixMs> not_before;
  if (delay_ms) not_before = clock_.Now() + *delay_ms;
  std::shared_ptr<Inbox> inbox = inbox_;
  inbox_->BeginWrite();
  std::string owner = options_.owner;
  store_.Submit(store::WriteTask{
      [ids, owner, not_before](store::Txn& txn) -> core::Status {
        auto stale =
            not_before ? txn.DeferLeases(owner, *ids, *not_before) : txn.ReleaseLeases(owner, *ids);
        if (!stale) return core::Fail(stale.error());
        return {};
      },
      [ids, inbox, delay_ms](const core::Status& status) {
        Inbox::Item item;
        item.kind = status ? Inbox::Kind::kSettled : Inbox::Kind::kReleaseFailed;
        item.deferral_ms = delay_ms;
        if (!status) {
          spdlog::warn("dispatcher: {} {} leases failed (will retry): {}",
                       delay_ms ? "deferring" : "releasing", ids->size(), status.error().message);
        }
        item.ids = std::move(*ids);
        inbox->FinishWrite(std::move(item));
      },
      store::kDeliveryKey});
}

void StoreWrites::ReleaseUnacknowledged(std::vector<DeliveryRowId> ids) {
  auto batch = std::make_shared<std::vector<DeliveryRowId>>(std::move(ids));
  std::string owner = options_.owner;
  store_.Submit(store::WriteTask{[batch, owner](store::Txn& txn) -> core::Status {
                                   auto stale = txn.ReleaseLeases(owner, *batch);
                                   if (!stale) return core::Fail(stale.error());
                                   return {};
                                 },
                                 [batch](const core::Status& status) {
                                   if (!status) {
                                     spdlog::warn("dispatcher: releasing {} leases failed: {}",
                                                  batch->size(), status.error().message);
                                   }
                                 },
                                 store::kDeliveryKey});
}

core::Status StoreWrites::ReleaseOwner() {
  std::string owner = options_.owner;
  return store_.Write([&owner](store::Txn& txn) { return txn.ReleaseOwner(owner); },
                      store::kDeliveryKey);
}

}  // namespace outbound::delivery::internal
