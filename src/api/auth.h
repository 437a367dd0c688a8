// Bearer-token authentication (CONTRACT.md §2, docs/DESIGN.md "Tokens").
//   - the operator token (configuration) is compared in constant time;
//   - tenant keys "obt_..." and client keys "obc_..." are looked up by their SHA-256 hex;
//   - portal sessions "obs_..." (handlers_portal.cpp: what a one-time portal link is exchanged
//     for) likewise, and act as a client key limited to the portal's routes until they expire.
// Thread-safe (stateless apart from the store).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/ids.h"
#include "core/result.h"
#include "store/model.h"
#include "store/store.h"

namespace outbound::api {

enum class CallerKind { kOperator, kTenant, kClient };

struct Caller {
  CallerKind kind = CallerKind::kTenant;
  core::TenantId tenant;                 // unset for the operator
  std::optional<core::ClientId> client;  // set for client keys
  std::optional<core::KeyId> key;        // the key used (not for the operator)
  bool portal_session = false;           // a portal session (kClient, no key)
};

// `authorization` is the raw header value. Missing, malformed, unknown or revoked tokens, and
// portal sessions expired at `now`, → kUnauthorized "unauthorized". Store failures pass through.
core::Result<Caller> Authenticate(std::string_view authorization,
                                  const std::optional<std::string>& operator_token,
                                  store::Store& store, core::UnixMs now);
// The bearer token of an Authorization header, trimmed; empty when there is none.
std::string_view BearerToken(std::string_view authorization);

// A new token: "obt_" (tenant) or "obc_" (client) + base64url (no padding) of 32 random bytes.
std::string NewApiToken(store::KeyKind kind);
// The same with another prefix ("obl_" portal link, "obs_" portal session).
std::string NewToken(std::string_view prefix);
inline constexpr std::string_view kPortalLinkPrefix = "obl_";
inline constexpr std::string_view kPortalSessionPrefix = "obs_";
// What lists show of a token: its first 12 characters.
std::string TokenPrefix(std::string_view token);

}  // namespace outbound::api
