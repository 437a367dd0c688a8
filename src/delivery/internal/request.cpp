// The request builder (request.h): envelope, signatures and headers of one attempt.
#include "delivery/internal/request.h"

#include <cstdint>

#include "core/render.h"
#include "core/signing.h"

namespace outbound::delivery::internal {

std::optional<std::string> RefusalOf(const SubInfo& info, bool allow_private_networks) {
  if (info.scheme == UrlScheme::kHttp && !allow_private_networks) return "insecure_url";
  if (info.scheme == UrlScheme::kOther) return "invalid_url";
  if (!info.key) return "invalid_secret";
  return std::nullopt;
}

Request BuildRequest(const SubInfo& info, const store::DeliveryJob& j,
                     const std::string& delivery_id, core::UnixMs now) {
  Request r;
  r.url = info.url;
  r.body = core::RenderBody({j.event_id, j.event_type, j.tenant.value, j.occurred_at, delivery_id},
                            j.data_json);
  const std::int64_t ts = now / 1000;
  std::string signature = core::Sign(*info.key, j.event_id, ts, r.body);
  for (const SubInfo::PreviousKey& previous : info.previous_keys) {
    if (previous.expires_at <= now) continue;
    signature += ' ';
    signature += core::Sign(previous.key, j.event_id, ts, r.body);
  }
  auto& h = r.header_lines;
  h.reserve(8 + info.header_lines.size());
  h.push_back("Content-Type: application/json");
  h.push_back("Expect:");
  h.push_back("webhook-id: " + j.event_id);
  h.push_back("webhook-timestamp: " + std::to_string(ts));
  h.push_back("webhook-signature: " + signature);
  h.push_back("ordinavo-event-type: " + j.event_type);
  h.push_back("ordinavo-delivery-id: " + delivery_id);
  h.push_back("ordinavo-attempt: " + std::to_string(j.attempts + 1));
  for (const auto& line : info.header_lines) h.push_back(line);
  return r;
}

}  // namespace outbound::delivery::internal
