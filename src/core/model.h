// Plain data shared by the layers: what an event, a target and the directory look like when a
// payload is rendered. No behaviour here.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "core/catalog.h"
#include "core/clock.h"
#include "core/ids.h"

namespace outbound::core {

// sourceSystem → that system's id for one record.
using ExternalIds = std::map<std::string, std::string, std::less<>>;

struct CustomerSnapshot {
  std::int64_t id = 0;
  std::string customer_number;
  std::string name;
  ExternalIds external_ids;
};

struct LocationSnapshot {
  std::int64_t id = 0;
  std::string name;
  ExternalIds external_ids;
};

struct ContactSnapshot {
  std::int64_t id = 0;
  std::string display_name;
  std::optional<std::string> phone;
  std::optional<std::string> email;
  ExternalIds external_ids;
};

// The target of an event and its directory records, as of the event's acceptance. Internal notes
// and access secrets are deliberately not here: what is not loaded cannot leak.
struct TargetSnapshot {
  std::optional<std::int64_t> target_id;  // null for target.rejected
  ExternalIds external_ids;               // the target's ids per source system
  std::optional<CustomerSnapshot> customer;
  std::optional<LocationSnapshot> location;
  std::optional<ContactSnapshot> contact;
};

// An accepted event. `data` holds the type's own fields as validated (ValidatePublishData, or
// built by the importer: `status` and `changedFields` for target.updated, `reason` for
// target.cancelled, `errors` for target.rejected), plus `summary` / `billing` where published.
struct EventRecord {
  std::string event_id;  // "evt_" + ULID
  EventType type = EventType::kTargetImported;
  TenantId tenant;
  UnixMs occurred_at = 0;
  UnixMs accepted_at = 0;
  std::optional<std::int64_t> target_id;
  boost::json::object data;
};

// Per-subscription payload options (CONTRACT.md §4), with the seed's defaults.
struct PayloadOptions {
  bool include_customer_context = true;
  bool include_contact_details = true;
  bool include_summary_preview = false;
  bool include_billing_details = false;
  friend bool operator==(const PayloadOptions&, const PayloadOptions&) = default;
};

// Who receives a rendering: the subscribing client's source system, the subscription's options
// and whether the tenant allows that client billing details.
struct Recipient {
  std::string source_system;
  PayloadOptions options;
  bool billing_details_allowed = false;
};

}  // namespace outbound::core
