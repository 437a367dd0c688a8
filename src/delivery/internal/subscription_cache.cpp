// The subscription cache (subscription_cache.h): loading, invalidating, following changes.
#include "delivery/internal/subscription_cache.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_set>
#include <utility>

#include "core/signing.h"

namespace outbound::delivery::internal {

SubscriptionCache::SubscriptionCache(Loader load) : load_(std::move(load)) {}

SubscriptionCache::Loader SubscriptionCache::FromStore(store::Store& store,
                                                       int default_max_concurrency,
                                                       int max_in_flight) {
  return [&store, default_max_concurrency, max_in_flight](
             core::TenantId tenant, core::SubscriptionId id) -> std::shared_ptr<const SubInfo> {
    std::optional<store::Subscription> sub;
    auto status = store.Read([&](store::Txn& txn) -> core::Status {
      auto r = txn.GetSubscription(tenant, id);
      if (!r) return core::Fail(r.error());
      sub = std::move(*r);
      if (!sub) {
        // Perhaps the tenant's (hidden) operations webhook.
        auto ops = txn.GetOperationsWebhook(tenant);
        if (!ops) return core::Fail(ops.error());
        if (*ops && (*ops)->id == id) sub = std::move(*ops);
      }
      return {};
    });
    if (!status) {
      spdlog::warn("dispatcher: cannot load subscription {}: {}", id.value, status.error().message);
      return nullptr;
    }
    auto info = std::make_shared<SubInfo>();
    // A paused subscription (CONTRACT §13) is not usable either: its queued jobs are given back
    // (they stay pending) and ClaimDue skips its rows until it is unpaused.
    if (sub && sub->enabled && !sub->paused) {
      info->usable = true;
      info->url = sub->url;
      info->scheme = SchemeOf(sub->url);
      if (auto key = core::DecodeSecret(sub->secret)) {
        info->key = std::move(*key);
      } else {
        spdlog::error("dispatcher: subscription {} has a signing secret that does not decode",
                      id.value);
      }
      if (sub->previous_secret && sub->previous_secret_expires_at) {
        for (const core::RetiredSecret& r :
             core::ReadRetiredSecrets(*sub->previous_secret, *sub->previous_secret_expires_at)) {
          if (auto key = core::DecodeSecret(r.secret)) {
            info->previous_keys.push_back(SubInfo::PreviousKey{std::move(*key), r.expires_at});
          }
        }
      }
      for (const auto& [name, value] : sub->headers) {
        if (IsAllowedStaticHeader(name, value)) {
          std::string line = name;
          line += ": ";
          line += value;
          info->header_lines.push_back(std::move(line));
        } else {
          spdlog::warn("dispatcher: subscription {}: static header \"{}\" is not sent", id.value,
                       IsAllowedStaticHeader(name, "") ? "(invalid value)" : name);
        }
      }
      info->max_concurrency = std::clamp(sub->max_concurrency.value_or(default_max_concurrency), 1,
                                         std::max(1, max_in_flight));
      info->ordered = sub->ordered;
      if (sub->rate_limit_per_second && *sub->rate_limit_per_second > 0) {
        info->rate_per_second = sub->rate_limit_per_second;
      }
    }
    return info;
  };
}

std::shared_ptr<const SubInfo> SubscriptionCache::Get(core::TenantId tenant,
                                                      core::SubscriptionId id) {
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.info) return it->second.info;
  std::shared_ptr<const SubInfo> info = load_(tenant, id);
  if (info) entries_[id] = Entry{tenant, info};
  return info;
}

const SubInfo* SubscriptionCache::Peek(core::SubscriptionId id) const {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : it->second.info.get();
}

void SubscriptionCache::Invalidate(core::SubscriptionId id) {
  auto it = entries_.find(id);
  if (it != entries_.end()) it->second.info = nullptr;
}

void SubscriptionCache::FollowChanges(store::Store& store) {
  store::ConfigChanges changes;
  auto status = store.Read([&](store::Txn& txn) -> core::Status {
    auto r = txn.ChangedTenants(config_version_);
    if (!r) return core::Fail(r.error());
    changes = std::move(*r);
    return {};
  });
  if (!status) return;  // the store is away: tried again at the next poll
  if (config_version_ != 0 && !changes.tenants.empty()) {
    std::unordered_set<std::int64_t> tenants;
    for (core::TenantId t : changes.tenants) tenants.insert(t.value);
    for (auto& [id, entry] : entries_) {
      if (tenants.count(entry.tenant.value) != 0) entry.info = nullptr;
    }
  }
  config_version_ = std::max(config_version_, changes.version);
}

}  // namespace outbound::delivery::internal
