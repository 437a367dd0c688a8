#include "core/render.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/internal/catalog_fields.h"
#include "core/json_text.h"
#include "core/preview.h"

namespace outbound::core {
namespace {

namespace json = boost::json;

void AppendObject(std::string& out, const json::object& o);

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
    case json::kind::object:
      AppendObject(out, v.get_object());
      break;
  }
}

void AppendObject(std::string& out, const json::object& o) {
  if (const json::string* raw = IfRawJson(o)) {
    out += *raw;  // billing values, byte for byte (json_text.h)
    return;
  }
  out.push_back('{');
  bool first = true;
  for (const auto& kv : o) {
    if (!first) out.push_back(',');
    first = false;
    AppendJsonString(out, kv.key());
    out.push_back(':');
    AppendValue(out, kv.value());
  }
  out.push_back('}');
}

// RenderData writes its text directly: building a boost::json object first (copies of every value
// into it, then its serialisation) was about a tenth of the SQLite writer's time in a batch
// publish (issue 8, docs/PERFORMANCE.md). The output is the same, byte for byte: keys in the
// same order, values written by AppendValue / AppendJsonString as ToJson did.
void AppendInt(std::string& out, std::int64_t v) {
  char buf[24];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void AppendExternalId(std::string& out, const ExternalIds& ids, std::string_view system) {
  auto it = ids.find(system);
  if (it == ids.end()) {
    out += "null";
  } else {
    AppendJsonString(out, it->second);
  }
}

void AppendOptionalString(std::string& out, const std::optional<std::string>& s) {
  if (s) {
    AppendJsonString(out, *s);
  } else {
    out += "null";
  }
}

// `{"<id_key>":<id>,"externalId":<the recipient's id or null>`: how each directory record of the
// customer context starts; the caller writes the rest and the closing brace.
void AppendRecordStart(std::string& out, std::string_view id_key, std::int64_t id,
                       const ExternalIds& ids, std::string_view system) {
  out += "{\"";
  out += id_key;
  out += "\":";
  AppendInt(out, id);
  out += ",\"externalId\":";
  AppendExternalId(out, ids, system);
}

void AppendCustomer(std::string& out, const std::optional<CustomerSnapshot>& c,
                    std::string_view system) {
  if (!c) {
    out += "null";
    return;
  }
  AppendRecordStart(out, "ordinavoCustomerId", c->id, c->external_ids, system);
  out += ",\"customerNumber\":";
  AppendJsonString(out, c->customer_number);
  out += ",\"name\":";
  AppendJsonString(out, c->name);
  out.push_back('}');
}

void AppendLocation(std::string& out, const std::optional<LocationSnapshot>& l,
                    std::string_view system) {
  if (!l) {
    out += "null";
    return;
  }
  AppendRecordStart(out, "ordinavoLocationId", l->id, l->external_ids, system);
  out += ",\"name\":";
  AppendJsonString(out, l->name);
  out.push_back('}');
}

void AppendContact(std::string& out, const std::optional<ContactSnapshot>& c,
                   std::string_view system) {
  if (!c) {
    out += "null";
    return;
  }
  AppendRecordStart(out, "ordinavoContactId", c->id, c->external_ids, system);
  out += ",\"displayName\":";
  AppendJsonString(out, c->display_name);
  out += ",\"phone\":";
  AppendOptionalString(out, c->phone);
  out += ",\"email\":";
  AppendOptionalString(out, c->email);
  out.push_back('}');
}

// `,"key":` (every key RenderData writes is a plain name, which needs no escaping).
void AppendKey(std::string& out, std::string_view key) {
  out.push_back(',');
  out.push_back('"');
  out += key;
  out += "\":";
}

constexpr std::uint64_t kEveryByte = 0x0101010101010101ULL;
constexpr std::uint64_t kEveryHighBit = 0x8080808080808080ULL;

// Whether any of the eight bytes of `w` must be escaped in a JSON string: a control character
// (below 0x20), '"' or '\\'. The bit tricks are the classic "has a byte less than n" and "has a
// zero byte" (Bit Twiddling Hacks, hasless and haszero), whose answer to "any?" is exact; a byte
// of 0x80 and above (UTF-8) never counts. Written by hand because the scan was the top symbol of
// batch publishing (issue 8: 7.6 % of Outbound's CPU, a byte at a time, docs/PERFORMANCE.md);
// Boost.JSON's serialize(string_view) also goes a byte at a time, into a string of its own.
bool AnyToEscape(std::uint64_t w) {
  const std::uint64_t control = (w - kEveryByte * 0x20) & ~w & kEveryHighBit;
  const std::uint64_t q = w ^ (kEveryByte * '"');
  const std::uint64_t quote = (q - kEveryByte) & ~q & kEveryHighBit;
  const std::uint64_t b = w ^ (kEveryByte * '\\');
  const std::uint64_t backslash = (b - kEveryByte) & ~b & kEveryHighBit;
  return (control | quote | backslash) != 0;
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  const char* p = text.data();
  const std::size_t n = text.size();
  std::size_t run = 0;  // start of the pending run of bytes that need no escaping
  std::size_t i = 0;
  while (i < n) {
    // Eight bytes at a time while none needs escaping; a word that has one (or the last bytes)
    // byte by byte.
    if (n - i >= sizeof(std::uint64_t)) {
      std::uint64_t w = 0;
      std::memcpy(&w, p + i, sizeof w);
      if (!AnyToEscape(w)) {
        i += sizeof w;
        continue;
      }
    }
    for (const std::size_t end = std::min(n, i + sizeof(std::uint64_t)); i < end; ++i) {
      const auto c = static_cast<unsigned char>(p[i]);
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      out.append(p + run, i - run);
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
  }
  out.append(p + run, n - run);
  out.push_back('"');
}

std::string ToJson(const boost::json::value& value) {
  std::string out;
  AppendValue(out, value);
  return out;
}

std::string ToJson(const boost::json::object& object) {
  std::string out;
  out.reserve(512);  // an event's data (issue 8: a batch writes one per event)
  AppendObject(out, object);
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

  // Only what is written here leaves Outbound: the event's `summary`, `internalNotes` or anything
  // else in event.data is never copied wholesale.
  std::string out;
  out.reserve(512);
  const std::optional<std::int64_t>& target_id =
      target.target_id ? target.target_id : event.target_id;
  out += "{\"targetId\":";
  if (target_id && event.type != EventType::kTargetRejected) {
    AppendInt(out, *target_id);
  } else {
    out += "null";
  }
  AppendKey(out, "externalId");
  AppendExternalId(out, target.external_ids, system);
  AppendKey(out, "sourceSystem");
  AppendJsonString(out, system);
  for (const internal::FieldSpec& f : tf.fields) {
    if (const json::value* v = event.data.if_contains(f.name); v && !v->is_null()) {
      AppendKey(out, f.name);
      AppendValue(out, *v);
    } else if (f.required) {
      AppendKey(out, f.name);
      out += "null";
    }
  }
  AppendKey(out, "status");
  if (const EventTypeInfo& info = Info(event.type); !info.status.empty()) {
    AppendJsonString(out, info.status);
  } else if (const json::value* s = event.data.if_contains("status"); s && s->is_string()) {
    AppendJsonString(out, s->get_string());
  } else {
    out += "null";
  }
  if (tf.has_summary && opts.include_summary_preview) {
    AppendKey(out, "summaryPreview");
    if (const json::value* s = event.data.if_contains("summary"); s && s->is_string()) {
      AppendJsonString(out, SummaryPreview(s->get_string()));
    } else {
      out += "null";
    }
  }
  if (tf.has_billing && opts.include_billing_details) {
    AppendKey(out, "billing");
    if (const json::value* b = event.data.if_contains("billing"); b && b->is_object()) {
      AppendValue(out, *b);
    } else {
      out += "null";
    }
  }
  if (opts.include_customer_context || opts.include_contact_details) {
    out += ",\"customerContext\":{";
    if (opts.include_customer_context) {
      out += "\"customer\":";
      AppendCustomer(out, target.customer, system);
      out += ",\"location\":";
      AppendLocation(out, target.location, system);
    }
    if (opts.include_contact_details) {
      if (opts.include_customer_context) out.push_back(',');
      out += "\"contact\":";
      AppendContact(out, target.contact, system);
    }
    out.push_back('}');
  }
  out.push_back('}');
  return out;
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
