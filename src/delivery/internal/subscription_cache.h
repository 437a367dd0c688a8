// The subscriptions the dispatcher sends to, as it needs them (URL, decoded secrets, the static
// headers it may send, its limits), loaded once and cached until invalidated: by
// InvalidateSubscription(), by an outcome that disabled one, or by a change another process made
// to the tenant's configuration. Owned by the dispatcher thread; not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "delivery/internal/http_util.h"
#include "store/store.h"

namespace outbound::delivery::internal {

// A subscription as the dispatcher needs it, loaded once and cached until invalidated.
struct SubInfo {
  bool usable = false;  // exists, is enabled and is not paused
  std::string url;
  UrlScheme scheme = UrlScheme::kOther;
  std::optional<std::string> key;  // decoded signing secret; nullopt when it does not decode
  // Decoded secrets rotated out and their ends: each signs beside `key` until it ends.
  struct PreviousKey {
    std::string key;
    core::UnixMs expires_at = 0;
  };
  std::vector<PreviousKey> previous_keys;
  std::vector<std::string> header_lines;  // "Name: value"
  int max_concurrency = 1;
  bool ordered = false;
  std::optional<double> rate_per_second;
};

class SubscriptionCache {
 public:
  // Loads one subscription; nullptr when the store could not be read.
  using Loader =
      std::function<std::shared_ptr<const SubInfo>(core::TenantId, core::SubscriptionId)>;

  explicit SubscriptionCache(Loader load);

  // Reads the subscription, or the tenant's (hidden) operations webhook, from `store`, which
  // must outlive the loader. A subscription without maxConcurrency gets
  // `default_max_concurrency`; every cap is kept within [1, max_in_flight].
  static Loader FromStore(store::Store& store, int default_max_concurrency, int max_in_flight);

  // The cached entry, or a freshly loaded one (also for a deleted or disabled subscription:
  // usable = false). nullptr when it could not be loaded; the next call tries again.
  std::shared_ptr<const SubInfo> Get(core::TenantId tenant, core::SubscriptionId id);
  // The cached entry only: nullptr when there is none.
  const SubInfo* Peek(core::SubscriptionId id) const;

  void Invalidate(core::SubscriptionId id);
  // Asks `store` which tenants had subscriptions, clients or keys changed (by any process) since
  // the previous call, and drops their entries. The first call only learns the current version.
  // A store error changes nothing: the next call asks again.
  void FollowChanges(store::Store& store);

 private:
  struct Entry {
    core::TenantId tenant;
    std::shared_ptr<const SubInfo> info;  // nullptr: invalidated
  };

  Loader load_;
  std::unordered_map<core::SubscriptionId, Entry> entries_;
  std::int64_t config_version_ = 0;  // ChangedTenants: the version seen last
};

}  // namespace outbound::delivery::internal
