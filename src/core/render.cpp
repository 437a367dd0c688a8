#include "core/render.h"

#include <charconv>
#include <cmath>

#include "core/internal/catalog_fields.h"
#include "core/json_text.h"
#include "core/preview.h"

namespace outbound::core {
namespace {

namespace json = boost::json;

json::value ExternalIdFor(const ExternalIds& ids, std::string_view source_system) {
  auto it = ids.find(source_system);
  if (it == ids.end()) return nullptr;
  return json::value(it->second);
}

json::value CustomerJson(const std::optional<CustomerSnapshot>& c, std::string_view system) {
  if (!c) return nullptr;
  return json::object{{"ordinavoCustomerId", c->id},
                      {"externalId", ExternalIdFor(c->external_ids, system)},
                      {"customerNumber", c->customer_number},
                      {"name", c->name}};
}

json::value LocationJson(const std::optional<LocationSnapshot>& l, std::string_view system) {
  if (!l) return nullptr;
  return json::object{{"ordinavoLocationId", l->id},
                      {"externalId", ExternalIdFor(l->external_ids, system)},
                      {"name", l->name}};
}

json::value ContactJson(const std::optional<ContactSnapshot>& c, std::string_view system) {
  if (!c) return nullptr;
  json::object o{{"ordinavoContactId", c->id},
                 {"externalId", ExternalIdFor(c->external_ids, system)},
                 {"displayName", c->display_name}};
  o["phone"] = c->phone ? json::value(*c->phone) : json::value(nullptr);
  o["email"] = c->email ? json::value(*c->email) : json::value(nullptr);
  return o;
}

void AppendValue(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      out += "null";
      break;
    case json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      break;
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_: {
      char buf[32];
      std::to_chars_result r;
      if (v.is_int64()) {
        r = std::to_chars(buf, buf + sizeof buf, v.get_int64());
      } else if (v.is_uint64()) {
        r = std::to_chars(buf, buf + sizeof buf, v.get_uint64());
      } else if (std::isfinite(v.get_double())) {
        r = std::to_chars(buf, buf + sizeof buf, v.get_double());
      } else {
        out += "null";
        break;
      }
      out.append(buf, r.ptr);
      break;
    }
    case json::kind::string:
      AppendJsonString(out, v.get_string());
      break;
    case json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const json::value& e : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        AppendValue(out, e);
      }
      out.push_back(']');
      break;
    }
    case json::kind::object: {
      if (const json::string* raw = IfRawJson(v)) {
        out += *raw;  // billing values, byte for byte (json_text.h)
        break;
      }
      out.push_back('{');
      bool first = true;
      for (const auto& kv : v.get_object()) {
        if (!first) out.push_back(',');
        first = false;
        AppendJsonString(out, kv.key());
        out.push_back(':');
        AppendValue(out, kv.value());
      }
      out.push_back('}');
      break;
    }
  }
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;  // start of the pending run of bytes that need no escaping
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
    }
  }
  out.append(text.data() + run, text.size() - run);
  out.push_back('"');
}

std::string ToJson(const boost::json::value& value) {
  std::string out;
  AppendValue(out, value);
  return out;
}

PayloadOptions EffectiveOptions(const Recipient& recipient) {
  PayloadOptions o = recipient.options;
  o.include_billing_details = o.include_billing_details && recipient.billing_details_allowed;
  return o;
}

std::string RenderData(const EventRecord& event, const TargetSnapshot& target,
                       const Recipient& recipient) {
  const PayloadOptions opts = EffectiveOptions(recipient);
  const std::string_view system = recipient.source_system;
  const internal::TypeFields& tf = internal::FieldsOf(event.type);

  // Only what is listed here leaves Outbound: the event's `summary`, `internalNotes` or anything
  // else in event.data is never copied wholesale.
  json::object data;
  std::optional<std::int64_t> target_id = target.target_id ? target.target_id : event.target_id;
  if (event.type == EventType::kTargetRejected) target_id.reset();
  data["targetId"] = target_id ? json::value(*target_id) : json::value(nullptr);
  data["externalId"] = ExternalIdFor(target.external_ids, system);
  data["sourceSystem"] = system;
  for (const internal::FieldSpec& f : tf.fields) {
    if (const json::value* v = event.data.if_contains(f.name); v && !v->is_null()) {
      data[f.name] = *v;
    } else if (f.required) {
      data[f.name] = nullptr;
    }
  }
  const EventTypeInfo& info = Info(event.type);
  if (!info.status.empty()) {
    data["status"] = info.status;
  } else {
    const json::value* s = event.data.if_contains("status");
    data["status"] = s && s->is_string() ? *s : json::value(nullptr);
  }
  if (tf.has_summary && opts.include_summary_preview) {
    const json::value* s = event.data.if_contains("summary");
    data["summaryPreview"] =
        s && s->is_string() ? json::value(SummaryPreview(s->get_string())) : json::value(nullptr);
  }
  if (tf.has_billing && opts.include_billing_details) {
    const json::value* b = event.data.if_contains("billing");
    data["billing"] = b && b->is_object() ? *b : json::value(nullptr);
  }
  if (opts.include_customer_context || opts.include_contact_details) {
    json::object ctx;
    if (opts.include_customer_context) {
      ctx["customer"] = CustomerJson(target.customer, system);
      ctx["location"] = LocationJson(target.location, system);
    }
    if (opts.include_contact_details) ctx["contact"] = ContactJson(target.contact, system);
    data["customerContext"] = std::move(ctx);
  }
  return ToJson(data);
}

std::string RenderBody(const Envelope& envelope, std::string_view data_json) {
  std::string out;
  out.reserve(data_json.size() + envelope.event_id.size() + envelope.event_type.size() +
              envelope.delivery_id.size() + 200);
  out += "{\"eventId\":";
  AppendJsonString(out, envelope.event_id);
  out += ",\"eventType\":";
  AppendJsonString(out, envelope.event_type);
  out += ",\"eventVersion\":\"v1\",\"tenantId\":";
  out += std::to_string(envelope.tenant_id);
  out += ",\"occurredAtUtc\":\"";
  out += FormatUtc(envelope.occurred_at);
  out += "\",\"deliveryId\":";
  if (envelope.delivery_id.empty()) {
    out += "null";
  } else {
    AppendJsonString(out, envelope.delivery_id);
  }
  out += ",\"source\":\"ordinavo\",\"data\":";
  out += data_json;
  out.push_back('}');
  return out;
}

}  // namespace outbound::core
