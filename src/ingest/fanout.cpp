// PlanFanout: one delivery row per matching subscription, rendered once per distinct
// (source system, effective options) pair.

#include <string>
#include <utility>
#include <vector>

#include "core/matching.h"
#include "core/render.h"
#include "ingest/ingest.h"

namespace outbound::ingest {
namespace {

// Renderings differ only by the recipient's source system and effective options; a tenant has
// few of those, so a linear list beats hashing here.
struct Rendering {
  std::string source_system;
  core::PayloadOptions options;
  std::string data_json;
};

}  // namespace

Result<std::vector<store::NewDelivery>> PlanFanout(store::Txn& tx, const core::EventRecord& event,
                                                   const core::TargetSnapshot& snapshot,
                                                   std::optional<core::ClientId> only_client,
                                                   core::UnixMs now) {
  auto targets = tx.ListFanoutTargets(event.tenant);
  if (!targets) return core::Fail(std::move(targets.error()));
  return PlanFanout(*targets, event, snapshot, only_client, now);
}

std::vector<store::NewDelivery> PlanFanout(
    const std::vector<std::pair<store::Subscription, store::Client>>& targets,
    const core::EventRecord& event, const core::TargetSnapshot& snapshot,
    std::optional<core::ClientId> only_client, core::UnixMs now) {
  const std::string_view type_name = core::Info(event.type).name;
  std::vector<store::NewDelivery> rows;
  std::vector<Rendering> cache;
  for (const auto& [sub, client] : targets) {
    if (sub.tenant != event.tenant) continue;
    if (only_client && sub.client != *only_client) continue;
    if (!core::MatchesAny(sub.event_types, type_name)) continue;

    core::Recipient recipient{client.source_system, sub.options, client.billing_details_allowed};
    const core::PayloadOptions effective = core::EffectiveOptions(recipient);
    const std::string* data = nullptr;
    for (const Rendering& r : cache) {
      if (r.options == effective && r.source_system == client.source_system) {
        data = &r.data_json;
        break;
      }
    }
    if (data == nullptr) {
      cache.push_back(
          {client.source_system, effective, core::RenderData(event, snapshot, recipient)});
      data = &cache.back().data_json;
    }
    // A paused subscription's rows are inserted held: kept, not sent until it is unpaused. A
    // disabled one's are inserted cancelled: not sent, but there for `recover` to send once the
    // endpoint works again, as a delivery the disable cancelled is (CONTRACT §6, §9).
    store::NewDelivery row{
        event.tenant, event.event_id, sub.id, *data, now, sub.paused && sub.enabled, sub.ordered};
    row.cancelled = !sub.enabled;
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace outbound::ingest
