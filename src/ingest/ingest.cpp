// IngestService: imports and publishing.
//
// Everything that needs no database (shape, types, times, unknown fields) is checked on the
// caller's thread before anything is queued, so the store's writers only do what must happen
// inside the transaction: resolve references, apply, insert the event, fan out.

#include "ingest/ingest.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <condition_variable>
#include <exception>
#include <functional>
#include <future>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/catalog.h"
#include "core/field_names.h"
#include "core/json_text.h"
#include "core/signing.h"

namespace outbound::ingest {
namespace {

namespace json = boost::json;
using core::FieldError;
using core::UnixMs;

constexpr std::size_t kMaxExternalIdCodePoints = 200;

constexpr std::string_view kCustomerNumberMessage =
    "customerNumber is not a target field: customer numbers are read from the customer record "
    "(PUT /v1/customers/{id})";

// Import field names in the order of CONTRACT.md §9; also the order of `changedFields`.
constexpr std::array<std::string_view, 12> kItemFields = {
    "externalId",      "customerExternalId", "locationExternalId", "contactExternalId",
    "title",           "description",        "earliestStartUtc",   "latestEndUtc",
    "durationMinutes", "internalNotes",      "cancelled",          "cancelReason"};

constexpr std::array<std::string_view, 4> kPublishFields = {"eventType", "targetId",
                                                            "occurredAtUtc", "data"};

std::size_t CodePoints(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

template <std::size_t N>
bool IsOneOf(std::string_view key, const std::array<std::string_view, N>& names) {
  for (std::string_view n : names) {
    if (n == key) return true;
  }
  return false;
}

// Reads the fields of one JSON object, recording a FieldError per problem. Absent and null are
// the same thing ("not given").
class FieldReader {
 public:
  FieldReader(const json::object& obj, std::vector<FieldError>& errors)
      : obj_(obj), errors_(errors) {}

  std::optional<std::string> String(std::string_view name, bool required) {
    const json::value* v = Get(name, required);
    if (v == nullptr) return std::nullopt;
    if (const json::string* s = v->if_string()) return std::string(s->data(), s->size());
    TypeError(name, "a string");
    return std::nullopt;
  }

  std::optional<bool> Bool(std::string_view name) {
    const json::value* v = Get(name, false);
    if (v == nullptr) return std::nullopt;
    if (const bool* b = v->if_bool()) return *b;
    TypeError(name, "true or false");
    return std::nullopt;
  }

  std::optional<std::int64_t> Int(std::string_view name, bool required) {
    const json::value* v = Get(name, required);
    if (v == nullptr) return std::nullopt;
    if (const std::int64_t* i = v->if_int64()) return *i;
    if (v->is_uint64()) {
      errors_.push_back({std::string(name), "invalid_value", std::string(name) + " is too large"});
      return std::nullopt;
    }
    // Written "5.0" (Python's json.dumps of a float, say): an integer, as the API's other
    // integers read it and JSON Schema counts it.
    if (const double* d = v->if_double()) {
      if (auto n = core::IntegralDouble(*d)) return n;
    }
    TypeError(name, "an integer");
    return std::nullopt;
  }

  std::optional<UnixMs> Time(std::string_view name, bool required) {
    std::optional<std::string> text = String(name, required);
    if (!text) return std::nullopt;
    auto t = core::ParseRfc3339(*text);
    if (!t) {
      errors_.push_back({std::string(name),
                         t.error().code.empty() ? "invalid_time" : t.error().code,
                         std::string(name) + ": " + t.error().message});
      return std::nullopt;
    }
    return *t;
  }

 private:
  const json::value* Get(std::string_view name, bool required) {
    const json::value* v = obj_.if_contains(name);
    if (v != nullptr && !v->is_null()) return v;
    if (required) {
      errors_.push_back({std::string(name), "required", std::string(name) + " is required"});
    }
    return nullptr;
  }
  void TypeError(std::string_view name, std::string_view what) {
    errors_.push_back(
        {std::string(name), "invalid_type", std::string(name) + " must be " + std::string(what)});
  }

  const json::object& obj_;
  std::vector<FieldError>& errors_;
};

// One import item after the checks that need no database.
struct ParsedItem {
  std::vector<FieldError> errors;
  std::optional<std::string> sent_external_id;  // when externalId was a string
  std::optional<std::string> customer_ext;
  std::optional<std::string> location_ext;
  std::optional<std::string> contact_ext;
  std::string title;
  std::optional<std::string> description;
  std::optional<UnixMs> earliest_start;
  std::optional<UnixMs> latest_end;
  std::optional<std::int64_t> duration_minutes;
  std::optional<std::string> internal_notes;
  bool cancelled = false;
  std::optional<std::string> cancel_reason;
};

ParsedItem ParseItem(const json::value& v) {
  ParsedItem item;
  const json::object* obj = v.if_object();
  if (obj == nullptr) {
    item.errors.push_back({"", "invalid_type", "an import item must be a JSON object"});
    return item;
  }
  std::vector<FieldError>& errors = item.errors;
  FieldReader r(*obj, errors);

  if (auto ext = r.String("externalId", true)) {
    item.sent_external_id = ext;
    if (ext->empty()) {
      errors.push_back({"externalId", "invalid_value", "externalId must not be empty"});
    } else if (CodePoints(*ext) > kMaxExternalIdCodePoints) {
      errors.push_back({"externalId", "too_long", "externalId has more than 200 characters"});
    }
  }
  item.customer_ext = r.String("customerExternalId", true);
  item.location_ext = r.String("locationExternalId", false);
  item.contact_ext = r.String("contactExternalId", false);
  if (auto title = r.String("title", true)) {
    if (title->empty()) {
      errors.push_back({"title", "invalid_value", "title must not be empty"});
    } else {
      item.title = std::move(*title);
    }
  }
  item.description = r.String("description", false);
  item.earliest_start = r.Time("earliestStartUtc", false);
  item.latest_end = r.Time("latestEndUtc", false);
  if (item.earliest_start && item.latest_end && *item.latest_end < *item.earliest_start) {
    errors.push_back(
        {"latestEndUtc", "invalid_value", "latestEndUtc must not be before earliestStartUtc"});
  }
  item.duration_minutes = r.Int("durationMinutes", false);
  if (item.duration_minutes && *item.duration_minutes < 0) {
    errors.push_back({"durationMinutes", "invalid_value", "durationMinutes must not be negative"});
    item.duration_minutes.reset();
  }
  item.internal_notes = r.String("internalNotes", false);
  item.cancelled = r.Bool("cancelled").value_or(false);
  item.cancel_reason = r.String("cancelReason", false);

  for (const auto& kv : *obj) {
    if (IsOneOf(kv.key(), kItemFields)) continue;
    std::string key(kv.key());
    if (key == "customerNumber") {
      errors.push_back({key, "unknown_field", std::string(kCustomerNumberMessage)});
    } else {
      errors.push_back(
          {key, "unknown_field",
           "unknown field '" + key + "' in an import item" + core::DidYouMean(key, kItemFields)});
    }
  }
  return item;
}

core::CustomerSnapshot ToSnapshot(const store::Customer& c) {
  return {c.id, c.customer_number, c.name, c.external_ids};
}
core::LocationSnapshot ToSnapshot(const store::Location& l) {
  return {l.id, l.name, l.external_ids};
}
core::ContactSnapshot ToSnapshot(const store::Contact& c) {
  return {c.id, c.display_name, c.phone, c.email, c.external_ids};
}

json::array ErrorsJson(const std::vector<FieldError>& errors) {
  json::array out;
  out.reserve(errors.size());
  for (const FieldError& e : errors) {
    out.push_back(json::object{{"field", e.field}, {"code", e.code}, {"message", e.message}});
  }
  return out;
}

// The items of a batch body {"<field>": [...]} (an import, a batch of publishes): request-level
// problems (not an object, no array, another field, more than `max` items) are errors.
Result<const json::array*> BatchItems(const json::value& body, std::string_view field, int max,
                                      std::string_view per_what) {
  const std::string name(field);
  const json::object* obj = body.if_object();
  if (obj == nullptr) {
    return core::Fail(
        core::Error{core::ErrorKind::kInvalid,
                    "invalid_body",
                    "the request body must be a JSON object {\"" + name + "\": [...]}",
                    "",
                    {}});
  }
  std::vector<FieldError> errors;
  for (const auto& kv : *obj) {
    if (kv.key() == field) continue;
    std::string key(kv.key());
    const std::array<std::string_view, 1> known = {field};
    errors.push_back(
        {key, "unknown_field", "unknown field '" + key + "'" + core::DidYouMean(key, known)});
  }
  const json::array* items = nullptr;
  if (const json::value* t = obj->if_contains(field); t == nullptr || t->is_null()) {
    errors.push_back({name, "required", name + " is required"});
  } else if (items = t->if_array(); items == nullptr) {
    errors.push_back({name, "invalid_type", name + " must be an array"});
  }
  if (!errors.empty()) return core::Fail(core::Error::Validation(std::move(errors)));
  if (items->size() > static_cast<std::size_t>(max)) {
    return core::Fail(core::Error{core::ErrorKind::kTooLarge,
                                  "batch_too_large",
                                  "at most " + std::to_string(max) + " " + std::string(per_what) +
                                      ", got " + std::to_string(items->size()),
                                  name,
                                  {}});
  }
  return items;
}

// Waits for a number of WriteTasks' `done` callbacks. Shared with the callbacks, so it outlives
// the waiting caller if need be.
class Completion {
 public:
  explicit Completion(std::size_t n) : remaining_(n), statuses_(n) {}

  void Done(std::size_t i, const core::Status& s) {
    std::lock_guard lock(mu_);
    statuses_[i] = s;
    if (--remaining_ == 0) cv_.notify_all();
  }
  // The statuses in submission order, once every task is done.
  std::vector<core::Status> Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return remaining_ == 0; });
    return std::move(statuses_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t remaining_;               // guarded by mu_
  std::vector<core::Status> statuses_;  // guarded by mu_
};

// Runs `fn`, turning an escaping exception into an internal error: nothing may unwind through
// the store's writer thread.
template <class Fn>
core::Status Guarded(Fn&& fn) noexcept {
  try {
    return fn();
  } catch (const std::exception& e) {
    return core::Fail(core::Error::Internal(std::string("ingest: ") + e.what()));
  } catch (...) {
    return core::Fail(core::Error::Internal("ingest: unknown exception"));
  }
}

// What the write tasks need from the service.
struct TaskEnv {
  core::UlidGenerator& ids;
  std::string_view owner;  // the store's lease owner name
  UnixMs lease_ms = 0;
};

// State of one import batch shared by its tasks. Task i alone writes results[i]; the caller
// reads them after Completion::Wait (whose mutex orders the accesses).
struct ImportBatch {
  core::TenantId tenant;
  core::ClientId client_id;
  UnixMs now = 0;
  std::vector<ParsedItem> parsed;
  std::vector<ImportItemResult> results;
};

// Inserts an event and its deliveries (leased to this process); the jobs go to the sink after
// commit.
Result<std::vector<store::DeliveryJob>> EmitEvent(store::Txn& tx, const TaskEnv& env,
                                                  core::EventRecord record,
                                                  std::optional<core::ClientId> origin_client,
                                                  const core::TargetSnapshot& snapshot,
                                                  std::optional<core::ClientId> only_client,
                                                  UnixMs now) {
  store::StoredEvent stored{std::move(record), origin_client};
  if (auto s = tx.InsertEvent(stored); !s) return core::Fail(std::move(s.error()));
  auto rows = PlanFanout(tx, stored.record, snapshot, only_client, now);
  if (!rows) return core::Fail(std::move(rows.error()));
  if (rows->empty()) return std::vector<store::DeliveryJob>{};
  return tx.InsertDeliveries(*rows, env.owner, now, now + env.lease_ms);
}

// The error of a publish (or a batch item) whose target does not exist.
core::Error TargetNotFound(std::int64_t target_id) {
  return core::Error{core::ErrorKind::kNotFound,
                     "target_not_found",
                     "target " + std::to_string(target_id) + " not found",
                     "targetId",
                     {}};
}

// What StoreEvents did: missing[k] is true for records[k] whose target does not exist (not
// stored); the deliveries of the stored events, for the sink after the commit.
struct StoredEvents {
  std::vector<bool> missing;
  std::vector<store::DeliveryJob> jobs;
};

// Stores published events (their ids drawn, in order) with their deliveries in one pass: each
// target read and marked once (MarkTargets: in id order, so two tasks lock them in one order; one
// round trip on PostgreSQL), the events in multi-row INSERTs, the fan-out list read once and the
// deliveries of all events in one InsertDeliveries call. What a batch (PublishBatch) and a
// group of single publishes (PublishAsync) share: per event a fraction of the statements of one
// publish at a time (issue 8).
Result<StoredEvents> StoreEvents(store::Txn& tx, core::TenantId tenant,
                                 const std::vector<store::StoredEvent>& records, const TaskEnv& env,
                                 UnixMs now) {
  StoredEvents out;
  out.missing.assign(records.size(), false);
  // The targets, each once: its snapshot and the status its last event gives it.
  struct TargetState {
    std::optional<core::TargetSnapshot> snapshot;  // nullopt: no such target
    std::string_view status;
  };
  std::map<std::int64_t, TargetState> targets;
  for (const store::StoredEvent& e : records) {
    targets[*e.record.target_id].status = core::Info(e.record.type).status;
  }
  std::vector<store::TargetMark> marks;
  marks.reserve(targets.size());
  for (const auto& [id, t] : targets) marks.push_back({core::TargetId(id), t.status});
  auto marked = tx.MarkTargets(tenant, marks, now);
  if (!marked) return core::Fail(std::move(marked.error()));
  for (std::size_t m = 0; m < marks.size(); ++m) {
    if ((*marked)[m]) targets[marks[m].id.value].snapshot = std::move((*marked)[m]->snapshot);
  }
  std::vector<const store::StoredEvent*> stored;  // the events of existing targets
  std::vector<const core::TargetSnapshot*> snapshots;
  stored.reserve(records.size());
  for (std::size_t k = 0; k < records.size(); ++k) {
    const TargetState& t = targets.at(*records[k].record.target_id);
    if (!t.snapshot) {
      out.missing[k] = true;
      continue;
    }
    stored.push_back(&records[k]);
    snapshots.push_back(&*t.snapshot);
  }
  if (stored.empty()) return out;
  // The deliveries are planned (rendered) before the events go in, so that the store can work on
  // their stored form meanwhile (PrepareDeliveries: SQLite packs a batch's renderings on a
  // helper thread while the writer inserts the events). Fan-out reads nothing the events change.
  auto fanout = tx.ListFanoutTargets(tenant);
  if (!fanout) return core::Fail(std::move(fanout.error()));
  std::vector<store::NewDelivery> rows;
  for (std::size_t k = 0; k < stored.size(); ++k) {
    std::vector<store::NewDelivery> more =
        PlanFanout(*fanout, stored[k]->record, *snapshots[k], std::nullopt, now);
    std::move(more.begin(), more.end(), std::back_inserter(rows));
  }
  tx.PrepareDeliveries(rows);
  // All of them (the usual case): inserted as they are; else a copy of those whose target exists.
  if (stored.size() == records.size()) {
    if (auto st = tx.InsertEvents(records); !st) return core::Fail(std::move(st.error()));
  } else {
    std::vector<store::StoredEvent> some;
    some.reserve(stored.size());
    for (const store::StoredEvent* e : stored) some.push_back(*e);
    if (auto st = tx.InsertEvents(some); !st) return core::Fail(std::move(st.error()));
  }
  if (!rows.empty()) {
    auto jobs = tx.InsertDeliveries(rows, env.owner, now, now + env.lease_ms);
    if (!jobs) return core::Fail(std::move(jobs.error()));
    out.jobs = std::move(*jobs);
  }
  return out;
}

// Resolves, applies and announces one import item inside its own savepoint.
Result<std::vector<store::DeliveryJob>> ApplyItem(store::Txn& tx, const TaskEnv& env,
                                                  ImportBatch& batch, std::size_t index) {
  const ParsedItem& item = batch.parsed[index];
  ImportItemResult& result = batch.results[index];
  result = ImportItemResult{};
  result.external_id = item.sent_external_id;

  // Read by every task (tasks of one batch may run at once, on several connections).
  auto loaded = tx.GetClient(batch.tenant, batch.client_id);
  if (!loaded) return core::Fail(std::move(loaded.error()));
  if (!*loaded) {
    return core::Fail(core::Error{core::ErrorKind::kNotFound,
                                  "client_not_found",
                                  "the importing client does not exist",
                                  "",
                                  {}});
  }
  const store::Client& client = **loaded;
  const core::TenantId tenant = batch.tenant;
  const UnixMs now = batch.now;

  // References, looked up in the importing client's source system.
  std::vector<FieldError> errors = item.errors;
  auto resolve = [&](store::EntityKind kind, const std::optional<std::string>& ext,
                     std::string_view field,
                     std::string_view what) -> Result<std::optional<std::int64_t>> {
    if (!ext) return std::optional<std::int64_t>{};
    auto id = tx.FindByExternalId(tenant, kind, client.source_system, *ext);
    if (!id) return core::Fail(std::move(id.error()));
    if (!*id) {
      errors.push_back({std::string(field), "unknown_reference",
                        "no " + std::string(what) + " with external id '" + *ext +
                            "' in source system '" + client.source_system + "'"});
    }
    return *id;
  };
  auto customer_id =
      resolve(store::EntityKind::kCustomer, item.customer_ext, "customerExternalId", "customer");
  if (!customer_id) return core::Fail(std::move(customer_id.error()));
  auto location_id =
      resolve(store::EntityKind::kLocation, item.location_ext, "locationExternalId", "location");
  if (!location_id) return core::Fail(std::move(location_id.error()));
  auto contact_id =
      resolve(store::EntityKind::kContact, item.contact_ext, "contactExternalId", "contact");
  if (!contact_id) return core::Fail(std::move(contact_id.error()));

  // A location or contact must belong to the item's customer.
  std::optional<store::Location> location;
  std::optional<store::Contact> contact;
  if (*location_id) {
    auto l = tx.GetLocation(tenant, **location_id);
    if (!l) return core::Fail(std::move(l.error()));
    location = std::move(*l);
    if (location && *customer_id && location->customer_id != **customer_id) {
      errors.push_back({"locationExternalId", "reference_mismatch",
                        "location '" + *item.location_ext + "' belongs to another customer than '" +
                            *item.customer_ext + "'"});
      location.reset();
    }
  }
  if (*contact_id) {
    auto c = tx.GetContact(tenant, **contact_id);
    if (!c) return core::Fail(std::move(c.error()));
    contact = std::move(*c);
    if (contact && *customer_id && contact->customer_id != **customer_id) {
      errors.push_back({"contactExternalId", "reference_mismatch",
                        "contact '" + *item.contact_ext + "' belongs to another customer than '" +
                            *item.customer_ext + "'"});
      contact.reset();
    }
  }

  auto new_record = [&](core::EventType type, std::optional<std::int64_t> target_id,
                        json::object data) {
    core::EventRecord r;
    r.event_id = "evt_" + env.ids.Next(now);
    r.type = type;
    r.tenant = tenant;
    r.occurred_at = now;
    r.accepted_at = now;
    r.target_id = target_id;
    r.data = std::move(data);
    return r;
  };

  if (!errors.empty()) {
    // Rejected: the target never existed for anyone but the importing client.
    core::TargetSnapshot snapshot;
    if (item.sent_external_id)
      snapshot.external_ids.emplace(client.source_system, *item.sent_external_id);
    if (*customer_id) {
      auto c = tx.GetCustomer(tenant, **customer_id);
      if (!c) return core::Fail(std::move(c.error()));
      if (*c) {
        snapshot.customer = ToSnapshot(**c);
        if (location) snapshot.location = ToSnapshot(*location);
        if (contact) snapshot.contact = ToSnapshot(*contact);
      }
    }
    json::object data;
    if (item.sent_external_id) {
      data["externalId"] = *item.sent_external_id;
    } else {
      data["externalId"] = nullptr;
    }
    data["errors"] = ErrorsJson(errors);
    result.result = "rejected";
    result.errors = std::move(errors);
    return EmitEvent(tx, env,
                     new_record(core::EventType::kTargetRejected, std::nullopt, std::move(data)),
                     client.id, snapshot, client.id, now);
  }

  // Valid: the item is the target's whole state.
  auto existing = tx.FindTargetByExternalId(tenant, client.source_system, *item.sent_external_id);
  if (!existing) return core::Fail(std::move(existing.error()));

  store::Target target;
  core::EventType type = core::EventType::kTargetImported;
  json::object data;
  if (!*existing) {
    target.tenant = tenant;
    target.import_client = client.id;
    target.source_system = client.source_system;
    target.external_id = *item.sent_external_id;
    target.external_ids.emplace(client.source_system, *item.sent_external_id);
    target.created_at = now;
  } else {
    target = std::move(**existing);
  }
  store::Target before = target;
  target.customer_id = **customer_id;
  target.location_id = *location_id;
  target.contact_id = *contact_id;
  target.title = item.title;
  target.description = item.description;
  target.earliest_start = item.earliest_start;
  target.latest_end = item.latest_end;
  target.duration_minutes = item.duration_minutes;
  target.internal_notes = item.internal_notes;
  target.cancel_reason = item.cancel_reason;

  if (!*existing) {
    target.status = item.cancelled ? "Cancelled" : "Imported";
    target.updated_at = now;
    auto inserted = tx.InsertTarget(target);
    if (!inserted) return core::Fail(std::move(inserted.error()));
    target = std::move(*inserted);
    if (item.cancelled) {
      type = core::EventType::kTargetCancelled;
      if (item.cancel_reason) data["reason"] = *item.cancel_reason;
      result.result = "cancelled";
    } else {
      type = core::EventType::kTargetImported;
      result.result = "imported";
    }
  } else {
    const bool was_cancelled = before.status == "Cancelled";
    json::array changed;
    auto note = [&](bool differs, std::string_view name) {
      if (differs) changed.emplace_back(name);
    };
    note(before.customer_id != target.customer_id, "customerExternalId");
    note(before.location_id != target.location_id, "locationExternalId");
    note(before.contact_id != target.contact_id, "contactExternalId");
    note(before.title != target.title, "title");
    note(before.description != target.description, "description");
    note(before.earliest_start != target.earliest_start, "earliestStartUtc");
    note(before.latest_end != target.latest_end, "latestEndUtc");
    note(before.duration_minutes != target.duration_minutes, "durationMinutes");
    note(before.internal_notes != target.internal_notes, "internalNotes");  // name only
    note(was_cancelled && !item.cancelled, "cancelled");
    note(before.cancel_reason != target.cancel_reason, "cancelReason");

    if (item.cancelled && !was_cancelled) {
      target.status = "Cancelled";
      type = core::EventType::kTargetCancelled;
      if (item.cancel_reason) data["reason"] = *item.cancel_reason;
      result.result = "cancelled";
    } else if (changed.empty()) {
      result.result = "unchanged";
      result.target_id = target.id.value;
      return std::vector<store::DeliveryJob>{};
    } else {
      if (was_cancelled && !item.cancelled) target.status = "Imported";  // reinstated
      type = core::EventType::kTargetUpdated;
      data["changedFields"] = std::move(changed);
      data["status"] = target.status;
      result.result = "updated";
    }
    target.updated_at = now;
    if (auto s = tx.UpdateTarget(target); !s) return core::Fail(std::move(s.error()));
  }
  result.target_id = target.id.value;

  auto snapshot = tx.LoadSnapshot(tenant, target);
  if (!snapshot) return core::Fail(std::move(snapshot.error()));
  return EmitEvent(tx, env, new_record(type, target.id.value, std::move(data)), client.id,
                   *snapshot, std::nullopt, now);
}

}  // namespace

IngestService::IngestService(store::Store& store, const core::Clock& clock,
                             core::UlidGenerator& ids, JobSink sink, IngestOptions options)
    : store_(store), clock_(clock), ids_(ids), sink_(std::move(sink)), options_(options) {}

Result<std::vector<ImportItemResult>> IngestService::ImportTargets(core::TenantId tenant,
                                                                   core::ClientId client,
                                                                   const json::value& body) {
  auto read = BatchItems(body, "targets", options_.max_import_items, "targets per import");
  if (!read) return core::Fail(std::move(read.error()));
  const json::array* items = *read;
  if (items->empty()) return std::vector<ImportItemResult>{};

  auto batch = std::make_shared<ImportBatch>();
  batch->tenant = tenant;
  batch->client_id = client;
  batch->now = clock_.Now();
  batch->parsed.reserve(items->size());
  for (const json::value& v : *items) batch->parsed.push_back(ParseItem(v));
  batch->results.resize(items->size());

  // One task per item, so a failing item rolls back alone. Tasks may commit in any order (a
  // store may run several transactions at once), so items that name the same external id go in
  // later waves: each wave holds an external id at most once and starts when the one before it
  // has committed. Without duplicates (the usual batch) there is one wave.
  std::vector<std::size_t> wave_of(items->size(), 0);
  std::size_t waves = 1;
  {
    std::unordered_map<std::string_view, std::size_t> seen;  // external id → its next wave
    for (std::size_t i = 0; i < items->size(); ++i) {
      const auto& ext = batch->parsed[i].sent_external_id;
      if (!ext) continue;
      std::size_t& next = seen[*ext];
      wave_of[i] = next++;
      waves = std::max(waves, next);
    }
  }
  auto run_wave = [this, &batch](const std::vector<std::size_t>& members) {
    auto completion = std::make_shared<Completion>(members.size());
    for (std::size_t k = 0; k < members.size(); ++k) {
      const std::size_t i = members[k];
      auto jobs = std::make_shared<std::vector<store::DeliveryJob>>();
      store::WriteTask task;
      task.run = [this, batch, i, jobs](store::Txn& tx) {
        return Guarded([&]() -> core::Status {
          auto out = ApplyItem(tx, TaskEnv{ids_, LeaseOwner(), options_.lease_ms}, *batch, i);
          if (!out) return core::Fail(std::move(out.error()));
          *jobs = std::move(*out);
          return {};
        });
      };
      // One connection per external id at a time: items about one target never lock it from
      // two transactions at once.
      if (const auto& ext = batch->parsed[i].sent_external_id) {
        task.key = 2 + std::hash<std::string>{}(*ext) % (1ULL << 62);
      }
      task.done = [this, completion, k, jobs](const core::Status& s) {
        if (s && !jobs->empty() && sink_) sink_(std::move(*jobs));
        completion->Done(k, s);
      };
      store_.Submit(std::move(task));
    }
    return completion->Wait();
  };
  std::vector<core::Status> statuses(items->size());
  for (std::size_t wave = 0; wave < waves; ++wave) {
    std::vector<std::size_t> members;
    for (std::size_t i = 0; i < items->size(); ++i) {
      if (wave_of[i] == wave) members.push_back(i);
    }
    std::vector<core::Status> done = run_wave(members);
    for (std::size_t k = 0; k < members.size(); ++k) statuses[members[k]] = std::move(done[k]);
  }
  // A store failure fails the request (the API answers 5xx); items that did commit answer
  // `unchanged` when the client retries the batch.
  for (core::Status& s : statuses) {
    if (!s) return core::Fail(std::move(s.error()));
  }
  return std::move(batch->results);
}

namespace {

// The items of a compact JSON array text (what core::ExactJson returns: no whitespace, strings
// escaped), each as its own text. Written here because Boost.JSON has no way to give back an
// element's source text; the array is already valid JSON, so tracking strings (with escapes) and
// nesting depth is all it takes.
std::vector<std::string_view> ArrayItemTexts(std::string_view array) {
  std::vector<std::string_view> items;
  if (array.size() < 2 || array.front() != '[') return items;
  int depth = 0;
  bool in_string = false;
  std::size_t start = 1;
  for (std::size_t i = 1; i + 1 < array.size(); ++i) {
    const char c = array[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 0) {
      items.push_back(array.substr(start, i - start));
      start = i + 1;
    }
  }
  if (array.size() > 2) items.push_back(array.substr(start, array.size() - 1 - start));
  return items;
}

// The checks of one publish body that need no database (Publish, and each item of
// PublishBatch): a record without event id, tenant and acceptance time. `raw` is the body's own
// text (of the item, for a batch): billing values are kept as written there.
Result<core::EventRecord> ParsePublish(const json::object& body, std::string_view raw) {
  const json::object* obj = &body;
  std::vector<FieldError> errors;
  FieldReader r(*obj, errors);
  // A plain value and a flag rather than an optional: GCC 12 warns spuriously on the latter.
  core::EventType type = core::EventType::kTargetImported;
  bool type_ok = false;
  if (auto name = r.String("eventType", true)) {
    if (auto parsed = core::ParseEventType(*name); !parsed) {
      errors.push_back({"eventType", "unknown_event_type", "unknown event type '" + *name + "'"});
    } else if (!core::Info(*parsed).publishable) {
      errors.push_back({"eventType", "event_type_not_publishable",
                        *name + " is emitted by imports and cannot be published"});
    } else {
      type = *parsed;
      type_ok = true;
    }
  }
  std::optional<std::int64_t> target_id = r.Int("targetId", true);
  std::optional<UnixMs> occurred_at = r.Time("occurredAtUtc", true);
  json::object data;
  if (type_ok) {
    static const json::value kEmpty = json::object{};
    const json::value* d = obj->if_contains("data");
    auto kept = core::ValidatePublishData(type, d == nullptr || d->is_null() ? kEmpty : *d);
    if (kept) {
      data = std::move(*kept);
    } else if (!kept.error().details.empty()) {
      for (FieldError& e : kept.error().details) errors.push_back(std::move(e));
    } else {
      errors.push_back({kept.error().field.empty() ? "data" : kept.error().field, kept.error().code,
                        kept.error().message});
    }
  }
  for (const auto& kv : *obj) {
    if (IsOneOf(kv.key(), kPublishFields)) continue;
    std::string key(kv.key());
    errors.push_back({key, "unknown_field",
                      "unknown field '" + key + "'" + core::DidYouMean(key, kPublishFields)});
  }
  if (!errors.empty() || !type_ok || !target_id || !occurred_at) {
    return core::Fail(core::Error::Validation(std::move(errors)));
  }
  // Billing values go out exactly as published (CONTRACT.md §10): what is kept is the request's
  // own text of `data.billing`, not the doubles it was parsed into.
  if (json::value* billing = data.if_contains("billing")) {
    auto exact = core::ExactJson(raw, {"data", "billing"});
    if (!exact) {
      return core::Fail(core::Error::Internal("publish: data.billing not found in the body text"));
    }
    *billing = core::RawJson(*exact);
  }
  core::EventRecord record;
  record.type = type;
  record.occurred_at = *occurred_at;
  record.target_id = *target_id;
  record.data = std::move(data);
  return record;
}

}  // namespace

// A group of single publishes (PublishAsync). Until its task takes it, the service's pending_mu_
// guards `taken` and `publishes`; after, only the task's run and done use it, in that order (the
// store orders them).
struct PublishGroup {
  bool taken = false;
  std::vector<PendingPublish> publishes;
  std::vector<store::StoredEvent> events;  // events[k]: publishes[k]'s, moved out when taken
  std::vector<bool> missing;
  std::vector<store::DeliveryJob> jobs;
};

Result<PublishResult> IngestService::Publish(core::TenantId tenant, const json::value& body,
                                             std::string_view raw_body,
                                             std::optional<std::string_view> idempotency_key) {
  std::promise<Result<PublishResult>> promise;
  std::future<Result<PublishResult>> answer = promise.get_future();
  PublishAsync(tenant, body, raw_body, idempotency_key,
               [&promise](Result<PublishResult> r) { promise.set_value(std::move(r)); });
  return answer.get();
}

void IngestService::PublishAsync(core::TenantId tenant, const json::value& body,
                                 std::string_view raw_body,
                                 std::optional<std::string_view> idempotency_key,
                                 std::function<void(Result<PublishResult>)> answered) {
  const json::object* obj = body.if_object();
  if (obj == nullptr) {
    return answered(core::Fail(core::Error{
        core::ErrorKind::kInvalid,
        "invalid_body",
        "the request body must be a JSON object {\"eventType\", \"targetId\", \"occurredAtUtc\", "
        "\"data\"}",
        "",
        {}}));
  }
  auto parsed = ParsePublish(*obj, raw_body);
  if (!parsed) return answered(core::Fail(std::move(parsed.error())));

  const UnixMs now = clock_.Now();
  core::EventRecord record = std::move(*parsed);
  record.tenant = tenant;
  record.accepted_at = now;
  if (!idempotency_key) {
    // Grouped with the tenant's other publishes that wait for the store (PublishGroup). The data's
    // text is made here, on the request's thread, not on the store's writer.
    std::string data_text = core::EventDataText(record.data);
    std::shared_ptr<PublishGroup> fresh;
    std::function<void(Result<PublishResult>)> refused;  // set when too many wait already
    {
      std::lock_guard lock(pending_mu_);
      if (waiting_publishes_ >= options_.max_waiting_publishes) {
        refused = std::move(answered);
      } else {
        // Drawn under the lock: a group's events are in the order of their ids.
        record.event_id = "evt_" + ids_.Next(now);
        std::string answer = "{\"eventId\":\"" + record.event_id + "\"}";
        std::shared_ptr<PublishGroup>& open = pending_[tenant.value];
        if (!open ||
            open->publishes.size() >= static_cast<std::size_t>(options_.max_batch_events)) {
          open = std::make_shared<PublishGroup>();
          fresh = open;
        }
        open->publishes.push_back(PendingPublish{
            store::StoredEvent{std::move(record), std::nullopt, std::nullopt, std::move(data_text)},
            std::move(answer), std::move(answered)});
        ++waiting_publishes_;
      }
    }
    if (refused) {
      // Answered outside the lock: an answer may log, count and write.
      core::Error e = core::Error::Unavailable("too many publishes are waiting for the store");
      e.code = "store_busy";
      return refused(core::Fail(std::move(e)));
    }
    if (fresh) SubmitPublishGroup(tenant, std::move(fresh));
    return;
  }
  record.event_id = "evt_" + ids_.Next(now);
  std::string answer = "{\"eventId\":\"" + record.event_id + "\"}";
  std::optional<std::string> key;
  if (idempotency_key) key.emplace(*idempotency_key);
  std::string request_hash = key ? core::Sha256Hex(raw_body) : std::string();

  // Shared with the task: the store runs `done` after a failed Submit on this thread, or after
  // the commit on its callback thread.
  struct State {
    core::EventRecord record;
    std::optional<PublishResult> replay;
    std::vector<store::DeliveryJob> jobs;
  };
  auto state = std::make_shared<State>();
  state->record = std::move(record);

  store::WriteTask task;
  task.run = [this, state, tenant, now, key, request_hash, answer](store::Txn& tx) {
    return Guarded([&]() -> core::Status {
      // The store may run this again after a lost race: start from nothing each time.
      state->replay.reset();
      state->jobs.clear();
      if (key) {
        // Taken first, atomically: of two processes publishing with one key, the second waits
        // for the first's commit and answers its answer (rolled back with the task on error).
        auto rec = tx.PutIdempotencyIfAbsent(
            tenant, *key, store::IdempotencyRecord{request_hash, 202, answer, now});
        if (!rec) return core::Fail(std::move(rec.error()));
        if (*rec) {
          if ((*rec)->request_hash != request_hash) {
            return core::Fail(core::Error::Conflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used before with a different request body"));
          }
          state->replay = PublishResult{(*rec)->status, (*rec)->body};
          return {};
        }
      }
      const std::int64_t id = *state->record.target_id;
      // Only the status and updated_at change: the full UpdateTarget would also check, delete
      // and re-insert the target's external ids and rewrite its three reference indexes, for
      // nothing (issue 8: fewer b-trees per event). Read and written in one call (one statement
      // on PostgreSQL).
      auto target =
          tx.MarkTarget(tenant, core::TargetId(id), core::Info(state->record.type).status, now);
      if (!target) return core::Fail(std::move(target.error()));
      if (!*target) {
        return core::Fail(core::Error{core::ErrorKind::kNotFound,
                                      "target_not_found",
                                      "target " + std::to_string(id) + " not found",
                                      "targetId",
                                      {}});
      }
      const store::Target& t = **target;
      auto snapshot = tx.LoadSnapshot(tenant, t);
      if (!snapshot) return core::Fail(std::move(snapshot.error()));
      auto jobs = EmitEvent(tx, TaskEnv{ids_, LeaseOwner(), options_.lease_ms}, state->record,
                            std::nullopt, *snapshot, std::nullopt, now);
      if (!jobs) return core::Fail(std::move(jobs.error()));
      state->jobs = std::move(*jobs);
      return {};
    });
  };
  // A tenant's single publishes take turns, with and without a key (groups lock several targets
  // each, in id order, and a transaction of several tasks on one connection holds all their
  // locks: keyed by target, a keyed publish could lock targets in another order than a group).
  task.key = kPublishGroupKey | static_cast<std::uint64_t>(tenant.value);
  task.done = [this, state, answer, answered = std::move(answered)](const core::Status& s) {
    if (!s) return answered(core::Fail(s.error()));
    if (state->replay) return answered(std::move(*state->replay));
    if (!state->jobs.empty() && sink_) {
      // Committed: the 202 is due whatever the hand-over does (a job not handed over is
      // claimed from the store once its lease has passed).
      try {
        sink_(std::move(state->jobs));
      } catch (const std::exception& e) {
        spdlog::error("ingest: handing a publish's deliveries to the dispatcher failed: {}",
                      e.what());
      }
    }
    answered(PublishResult{202, answer});
  };
  store_.Submit(std::move(task));
}

std::size_t IngestService::WaitingPublishes() const {
  std::lock_guard lock(pending_mu_);
  return waiting_publishes_;
}

void IngestService::SubmitPublishGroup(core::TenantId tenant, std::shared_ptr<PublishGroup> group) {
  // Takes the group, once: publishes that arrive later start the tenant's next group.
  auto take = [this, tenant, group] {
    std::lock_guard lock(pending_mu_);
    if (group->taken) return;
    group->taken = true;
    if (auto it = pending_.find(tenant.value); it != pending_.end() && it->second == group) {
      pending_.erase(it);
    }
    waiting_publishes_ -= group->publishes.size();
    group->events.reserve(group->publishes.size());
    for (PendingPublish& p : group->publishes) group->events.push_back(std::move(p.event));
  };
  store::WriteTask task;
  task.run = [this, tenant, group, take](store::Txn& tx) {
    return Guarded([&]() -> core::Status {
      take();
      // The store may run this again after a lost race: the same events, from nothing.
      group->jobs.clear();
      group->missing.clear();
      auto stored = StoreEvents(tx, tenant, group->events,
                                TaskEnv{ids_, LeaseOwner(), options_.lease_ms}, clock_.Now());
      if (!stored) return core::Fail(std::move(stored.error()));
      group->missing = std::move(stored->missing);
      group->jobs = std::move(stored->jobs);
      return {};
    });
  };
  // One group of a tenant at a time, in order (a later group's events may be about the same
  // targets); other tenants' groups run beside it on a store with several connections.
  task.key = kPublishGroupKey | static_cast<std::uint64_t>(tenant.value);
  task.done = [this, group, take](const core::Status& s) {
    take();  // a task that Submit refused never ran
    if (s && !group->jobs.empty() && sink_) {
      // Committed: the 202s are due whatever the hand-over does (a job not handed over is
      // claimed from the store once its lease has passed).
      try {
        sink_(std::move(group->jobs));
      } catch (const std::exception& e) {
        spdlog::error("ingest: handing a publish's deliveries to the dispatcher failed: {}",
                      e.what());
      }
    }
    for (std::size_t k = 0; k < group->publishes.size(); ++k) {
      PendingPublish& p = group->publishes[k];
      if (!s) {
        p.answered(core::Fail(s.error()));
      } else if (k < group->missing.size() && group->missing[k]) {
        p.answered(core::Fail(TargetNotFound(*group->events[k].record.target_id)));
      } else {
        p.answered(PublishResult{202, std::move(p.answer)});
      }
    }
  };
  try {
    store_.Submit(std::move(task));
  } catch (const std::exception& e) {
    // Not queued (no memory: both stores throw only before the task is in their queue). The
    // group must not stay open with nobody to take it: every later publish of the tenant would
    // join it and never be answered.
    take();
    const core::Error error = core::Error::Internal(std::string("ingest: ") + e.what());
    for (PendingPublish& p : group->publishes) p.answered(core::Fail(error));
  }
}

Result<PublishResult> IngestService::PublishBatch(core::TenantId tenant, const json::value& body,
                                                  std::string_view raw_body,
                                                  std::optional<std::string_view> idempotency_key,
                                                  const BatchAnswer& render) {
  auto read = BatchItems(body, "events", options_.max_batch_events, "events per batch");
  if (!read) return core::Fail(std::move(read.error()));
  const json::array* items = *read;

  // Everything that needs no database, on this thread: each item checked as Publish checks it.
  const UnixMs now = clock_.Now();
  struct State {
    std::vector<BatchItemResult> checked;  // validation refusals; the rest empty
    // The valid items' events, in item order, in the form InsertEvents takes: built here, so
    // that the writer copies none of them when every target exists (the usual batch).
    std::vector<store::StoredEvent> records;
    std::vector<std::size_t> record_item;  // records[k] is item record_item[k]
    std::vector<BatchItemResult> results;  // what the task found (assigned per run)
    std::optional<PublishResult> replay;
    std::string answer;
    std::vector<store::DeliveryJob> jobs;
  };
  auto state = std::make_shared<State>();
  state->checked.resize(items->size());
  // Each item's own text, for its billing values (kept exactly as written, CONTRACT.md §10). Read
  // only when some item has them: reading the whole body again was 5 % of Outbound's CPU in a
  // batch run (issue 8, docs/PERFORMANCE.md), for batches that mostly hold no billing event.
  const bool any_billing = std::any_of(items->begin(), items->end(), [](const json::value& v) {
    const json::object* item = v.if_object();
    const json::value* data = item != nullptr ? item->if_contains("data") : nullptr;
    return data != nullptr && data->is_object() && data->get_object().contains("billing");
  });
  std::optional<std::string> exact_items;
  std::vector<std::string_view> item_texts;
  if (any_billing) {
    exact_items = core::ExactJson(raw_body, {"events"});
    if (exact_items) item_texts = ArrayItemTexts(*exact_items);
    if (item_texts.size() != items->size()) {
      return core::Fail(core::Error::Internal("publish batch: the items' text does not match"));
    }
  }
  for (std::size_t i = 0; i < items->size(); ++i) {
    const json::object* item = (*items)[i].if_object();
    if (item == nullptr) {
      state->checked[i].error = core::Error{core::ErrorKind::kInvalid,
                                            "invalid_type",
                                            "an item of events must be a JSON object (a body of "
                                            "POST /v1/events)",
                                            "",
                                            {}};
      continue;
    }
    // Without billing in any item, ParsePublish never reads the text.
    auto parsed = ParsePublish(*item, any_billing ? item_texts[i] : std::string_view());
    if (!parsed) {
      state->checked[i].error = std::move(parsed.error());
      continue;
    }
    core::EventRecord record = std::move(*parsed);
    record.tenant = tenant;  // event_id: drawn by the task
    record.accepted_at = now;
    // The data's text is made here, on the handler's thread, not on the store's writer, which
    // every batch and publish shares (issue 8).
    std::string data_text = core::EventDataText(record.data);
    state->records.push_back(
        store::StoredEvent{std::move(record), std::nullopt, std::nullopt, std::move(data_text)});
    state->record_item.push_back(i);
  }
  std::optional<std::string> key;
  if (idempotency_key) key.emplace(*idempotency_key);
  const std::string request_hash = key ? core::Sha256Hex(raw_body) : std::string();

  // ONE task: the valid items commit together or not at all, stored in one pass (StoreEvents).
  store::WriteTask task;
  task.run = [this, state, tenant, now, key, request_hash, render](store::Txn& tx) {
    return Guarded([&]() -> core::Status {
      state->replay.reset();
      state->jobs.clear();
      state->results = state->checked;
      // The event ids are drawn here, as the writer takes the batch, rather than as its handler
      // read it: batches read at once would otherwise be stored in another order than their ids,
      // and each event stored after a newer one of its target costs SQLite's writer a splice
      // of the target's chain (issue 8: about 5 % of the writer in `e2e_bench --batch`).
      for (store::StoredEvent& e : state->records) e.record.event_id = "evt_" + ids_.Next(now);
      auto replayed = [&](const store::IdempotencyRecord& rec) -> core::Status {
        if (rec.request_hash != request_hash) {
          return core::Fail(core::Error::Conflict(
              "idempotency_key_reused",
              "this Idempotency-Key was used before with a different request body"));
        }
        state->replay = PublishResult{rec.status, rec.body};
        return {};
      };
      if (key) {
        auto rec = tx.GetIdempotency(tenant, *key);
        if (!rec) return core::Fail(std::move(rec.error()));
        if (*rec) return replayed(**rec);
      }
      auto stored = StoreEvents(tx, tenant, state->records,
                                TaskEnv{ids_, LeaseOwner(), options_.lease_ms}, now);
      if (!stored) return core::Fail(std::move(stored.error()));
      for (std::size_t k = 0; k < state->records.size(); ++k) {
        BatchItemResult& result = state->results[state->record_item[k]];
        if (stored->missing[k]) {
          result.error = TargetNotFound(*state->records[k].record.target_id);
        } else {
          result.event_id = state->records[k].record.event_id;
        }
      }
      state->jobs = std::move(stored->jobs);
      state->answer = render(state->results);
      if (key) {
        // Stored last (the answer depends on what was found). Another process that took the
        // key meanwhile is waited for; then its answer is ours and this work is rolled back.
        auto rec = tx.PutIdempotencyIfAbsent(
            tenant, *key, store::IdempotencyRecord{request_hash, 202, state->answer, now});
        if (!rec) return core::Fail(std::move(rec.error()));
        if (*rec) {
          if (auto st = replayed(**rec); !st) return st;
          return core::Fail(core::Error::Conflict("idempotency_replay", "answered before"));
        }
      }
      return {};
    });
  };
  auto completion = std::make_shared<Completion>(1);
  task.done = [this, state, completion](const core::Status& s) {
    if (s && !state->replay && !state->jobs.empty() && sink_) sink_(std::move(state->jobs));
    completion->Done(0, s);
  };
  store_.Submit(std::move(task));
  std::vector<core::Status> statuses = completion->Wait();
  if (state->replay) return std::move(*state->replay);
  if (!statuses[0]) {
    core::Error& e = statuses[0].error();
    if (e.kind == core::ErrorKind::kInternal) {
      // CONTRACT §13: a store error stores none of the batch and is a 503 (the batch may be
      // sent again as it is); the store's own message goes to the log only.
      spdlog::error("ingest: a batch of {} events was not stored: {}", state->records.size(),
                    e.message);
      return core::Fail(core::Error{core::ErrorKind::kUnavailable,
                                    "store_unavailable",
                                    "the batch could not be stored and nothing of it was: try "
                                    "again",
                                    "",
                                    {}});
    }
    return core::Fail(std::move(e));
  }
  return PublishResult{202, std::move(state->answer)};
}

}  // namespace outbound::ingest
