// Bearer-token authentication (CONTRACT.md §2, docs/DESIGN.md "Tokens").
//   - the operator token (configuration) is compared in constant time;
//   - tenant keys "obt_..." and client keys "obc_..." are looked up by their SHA-256 hex;
//   - portal sessions "obs_..." (handlers_portal.cpp: what a one-time portal link is exchanged
//     for) likewise, and act as a client key limited to the portal's routes until they expire.
// Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

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

// API keys found by their hash, kept for a second (issue 8: every request read its key in a
// store transaction of its own, about 5 % of a single publish's CPU). A revocation through this
// process clears it (Clear(), after the revoking write committed); one through another process
// is in force here within `ttl_ms`, inside CONTRACT.md §12's 2 seconds. Only keys that were
// found are kept, so a new key works at once everywhere. At most `max_entries`: a full cache is
// emptied and fills again.
class KeyCache {
 public:
  explicit KeyCache(core::UnixMs ttl_ms = 1000, std::size_t max_entries = 10000)
      : ttl_ms_(ttl_ms), max_entries_(max_entries) {}

  // The generation to hand back to Put: a Clear() in between voids that Put, so a key read
  // before a revocation committed is never kept after it.
  std::uint64_t Generation() const;
  std::optional<store::ApiKey> Find(const std::string& token_hash, core::UnixMs now) const;
  void Put(const std::string& token_hash, const store::ApiKey& key, core::UnixMs now,
           std::uint64_t generation);
  void Clear();

 private:
  struct Entry {
    store::ApiKey key;
    core::UnixMs until = 0;
  };
  const core::UnixMs ttl_ms_;
  const std::size_t max_entries_;
  mutable std::mutex mu_;
  std::uint64_t generation_ = 0;
  std::unordered_map<std::string, Entry> entries_;
};

// What Authenticate compares a request's token with to know the operator: the SHA-256 (hex) of
// the configured operator token, made once; nullopt when there is none (or it is empty): the
// operator API is off. Comparing hashes is constant time and hides the token's length.
std::optional<std::string> OperatorTokenHash(const std::optional<std::string>& operator_token);

// `authorization` is the raw header value; `operator_token_hash` is OperatorTokenHash's. Missing,
// malformed, unknown or revoked tokens, and portal sessions expired at `now`, → kUnauthorized
// "unauthorized". Store failures pass through. One SHA-256 per request (issue 8): the request's
// token's, for the operator check and the key and session lookups alike.
core::Result<Caller> Authenticate(std::string_view authorization,
                                  const std::optional<std::string>& operator_token_hash,
                                  store::Store& store, core::UnixMs now, KeyCache* keys = nullptr);
// The same where that needs no store: the operator token, a key found in `keys`, and every
// refusal that needs no lookup. nullopt when the answer needs the store (a portal session, a key
// not cached): what may not wait for a store (the I/O thread) hands such requests on.
std::optional<core::Result<Caller>> AuthenticateWithoutStore(
    std::string_view authorization, const std::optional<std::string>& operator_token_hash,
    core::UnixMs now, KeyCache& keys);
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
