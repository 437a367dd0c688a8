// The per-type field tables behind catalog.cpp and render.cpp. Internal to core: other layers use
// catalog.h and render.h.
#pragma once

#include <span>
#include <string_view>

#include "core/catalog.h"

namespace outbound::core::internal {

enum class FieldKind {
  kId,           // JSON integer > 0
  kCount,        // JSON integer >= 0 (a route's sequence)
  kString,       // non-empty string
  kDateTime,     // RFC 3339 with offset in; FormatUtc out
  kProblem,      // {"code": string, "description": string}
  kStringArray,  // ["title", ...]
  kErrors,       // [{"field", "code", "message"}]
};

struct FieldSpec {
  std::string_view name;
  FieldKind kind;
  // Publishable types: must be present in POST /v1/events. Import types: always delivered.
  bool required;
  std::string_view description;
};

struct TypeFields {
  std::span<const FieldSpec> fields;  // the type's own fields in CONTRACT.md §3 order
  bool has_summary;                   // visit_report.*: `summary` in, `summaryPreview` out
  bool has_billing;                   // billing.event_created: `billing` in and out
};

const TypeFields& FieldsOf(EventType type);

}  // namespace outbound::core::internal
