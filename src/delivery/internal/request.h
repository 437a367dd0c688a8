// The request builder: what one attempt sends, the Standard Webhooks envelope with a fresh
// deliveryId, its signature(s) and headers. Pure; thread-safe.
#pragma once

#include <optional>
#include <string>

#include "core/clock.h"
#include "delivery/internal/sender.h"
#include "delivery/internal/subscription_cache.h"
#include "store/store.h"

namespace outbound::delivery::internal {

// Why nothing can be sent to the subscription at all, as the attempt's error: "insecure_url"
// (plain http while private networks are not allowed), "invalid_url", "invalid_secret" (the
// signing secret does not decode). nullopt when a request can be made.
std::optional<std::string> RefusalOf(const SubInfo& info, bool allow_private_networks);

// The POST of one attempt at `job`: the envelope rendered with `delivery_id`, signed at `now`
// with the subscription's key (and its previous key while that is in its grace period), the
// dispatcher's own headers, then the subscription's static headers. Requires RefusalOf(info) to
// be nullopt.
Request BuildRequest(const SubInfo& info, const store::DeliveryJob& job,
                     const std::string& delivery_id, core::UnixMs now);

}  // namespace outbound::delivery::internal
