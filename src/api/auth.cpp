#include "api/auth.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>

#include "api/errors.h"
#include "core/signing.h"

namespace outbound::api {

namespace {

core::Error Unauthorized() {
  return MakeError(core::ErrorKind::kUnauthorized, "unauthorized",
                   "a valid bearer token is required (Authorization: Bearer <token>)");
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Whether the request's token (by its hash) is the operator token (by its hash): constant time
// in the contents.
bool IsOperatorToken(const std::string& token_hash, const std::string& operator_token_hash) {
  return token_hash.size() == operator_token_hash.size() &&
         CRYPTO_memcmp(token_hash.data(), operator_token_hash.data(), token_hash.size()) == 0;
}

}  // namespace

std::string_view BearerToken(std::string_view authorization) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  std::string_view header = trim(authorization);
  auto space = header.find(' ');
  if (space == std::string_view::npos || !EqualsIgnoreCase(header.substr(0, space), "bearer")) {
    return {};
  }
  return trim(header.substr(space + 1));
}

std::uint64_t KeyCache::Generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return generation_;
}

std::optional<store::ApiKey> KeyCache::Find(const std::string& token_hash, core::UnixMs now) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(token_hash);
  if (it == entries_.end() || now >= it->second.until) return std::nullopt;
  return it->second.key;
}

void KeyCache::Put(const std::string& token_hash, const store::ApiKey& key, core::UnixMs now,
                   std::uint64_t generation) {
  std::lock_guard<std::mutex> lock(mu_);
  if (generation != generation_) return;
  if (entries_.size() >= max_entries_) entries_.clear();
  entries_[token_hash] = Entry{key, now + ttl_ms_};
}

void KeyCache::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  entries_.clear();
}

namespace {

// Authenticate, and AuthenticateWithoutStore when `store` is null: then nullopt where the
// answer needs the store.
std::optional<core::Result<Caller>> AuthenticateWith(
    std::string_view authorization, const std::optional<std::string>& operator_token_hash,
    store::Store* store, core::UnixMs now, KeyCache* keys) {
  std::string_view token = BearerToken(authorization);
  if (token.empty() || token.size() > 512) return core::Fail(Unauthorized());

  // The lookups are by hash, so timing reveals nothing about stored tokens.
  const std::string hash = core::Sha256Hex(token);
  if (operator_token_hash && IsOperatorToken(hash, *operator_token_hash)) {
    Caller op;
    op.kind = CallerKind::kOperator;
    return op;
  }
  if (token.rfind(kPortalSessionPrefix, 0) == 0) {
    if (store == nullptr) return std::nullopt;
    std::optional<store::PortalSession> session;
    auto st = store->Read([&](store::Txn& tx) -> core::Status {
      auto found = tx.FindPortalSession(hash, now);
      if (!found) return core::Fail(std::move(found.error()));
      session = *found;
      return {};
    });
    if (!st) return core::Fail(std::move(st.error()));
    if (!session) return core::Fail(Unauthorized());
    Caller caller;
    caller.kind = CallerKind::kClient;
    caller.tenant = session->tenant;
    caller.client = session->client;
    caller.portal_session = true;
    return caller;
  }
  if (token.rfind("obt_", 0) != 0 && token.rfind("obc_", 0) != 0) {
    return core::Fail(Unauthorized());
  }
  std::optional<store::ApiKey> key = keys != nullptr ? keys->Find(hash, now) : std::nullopt;
  if (!key) {
    if (store == nullptr) return std::nullopt;
    const std::uint64_t generation = keys != nullptr ? keys->Generation() : 0;
    auto st = store->Read([&](store::Txn& tx) -> core::Status {
      auto found = tx.FindApiKeyByHash(hash);
      if (!found) return core::Fail(std::move(found.error()));
      key = std::move(*found);
      return {};
    });
    if (!st) return core::Fail(std::move(st.error()));
    if (!key || key->revoked_at) return core::Fail(Unauthorized());
    if (keys != nullptr) keys->Put(hash, *key, now, generation);
  }

  Caller caller;
  caller.tenant = key->tenant;
  caller.key = key->id;
  if (key->kind == store::KeyKind::kClient) {
    if (!key->client) return core::Fail(Unauthorized());
    caller.kind = CallerKind::kClient;
    caller.client = key->client;
  } else {
    caller.kind = CallerKind::kTenant;
  }
  return caller;
}

}  // namespace

std::optional<std::string> OperatorTokenHash(const std::optional<std::string>& operator_token) {
  if (!operator_token || operator_token->empty()) return std::nullopt;
  return core::Sha256Hex(*operator_token);
}

core::Result<Caller> Authenticate(std::string_view authorization,
                                  const std::optional<std::string>& operator_token_hash,
                                  store::Store& store, core::UnixMs now, KeyCache* keys) {
  return *AuthenticateWith(authorization, operator_token_hash, &store, now, keys);
}

std::optional<core::Result<Caller>> AuthenticateWithoutStore(
    std::string_view authorization, const std::optional<std::string>& operator_token_hash,
    core::UnixMs now, KeyCache& keys) {
  return AuthenticateWith(authorization, operator_token_hash, nullptr, now, &keys);
}

std::string NewApiToken(store::KeyKind kind) {
  return NewToken(kind == store::KeyKind::kTenant ? "obt_" : "obc_");
}

std::string NewToken(std::string_view prefix) {
  unsigned char bytes[32];
  core::RandomBytes(bytes, sizeof bytes);
  std::string b64 =
      core::Base64Encode(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
  std::string token(prefix);
  token.reserve(prefix.size() + b64.size());
  for (char c : b64) {
    if (c == '=') break;
    token.push_back(c == '+' ? '-' : c == '/' ? '_' : c);
  }
  return token;
}

std::string TokenPrefix(std::string_view token) { return std::string(token.substr(0, 12)); }

}  // namespace outbound::api
