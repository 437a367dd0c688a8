#include "core/signing.h"

#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/sha.h>

#include <charconv>
#include <cstdlib>
#include <system_error>

#include "core/ids.h"

namespace outbound::core {
namespace {

constexpr std::string_view kSecretPrefix = "whsec_";

// Fetched once: EVP_MAC objects are immutable and safe to share between threads, and fetching
// per signature would take the provider lock every time.
EVP_MAC* HmacAlgorithm() {
  static EVP_MAC* const alg = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return alg;
}

// An HMAC-SHA256 context per thread, its digest set once: EVP_MAC_init with nothing but a new
// key keeps it, where passing the "digest" parameter again fetched SHA-256 for every signature.
EVP_MAC_CTX* HmacSha256Context() {
  struct Holder {
    EVP_MAC_CTX* ctx = nullptr;
    Holder() {
      EVP_MAC* alg = HmacAlgorithm();
      ctx = alg ? EVP_MAC_CTX_new(alg) : nullptr;
      char digest[] = "SHA256";
      OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                             OSSL_PARAM_construct_end()};
      if (ctx != nullptr && EVP_MAC_CTX_set_params(ctx, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        ctx = nullptr;
      }
    }
    ~Holder() { EVP_MAC_CTX_free(ctx); }
    Holder(const Holder&) = delete;
    Holder& operator=(const Holder&) = delete;
  };
  thread_local Holder holder;
  return holder.ctx;
}

// The same for SHA-256 (EVP_sha256() is fetched again inside every EVP_Digest: at K=1 that
// fetch was a third of the API key's hash, on every request).
const EVP_MD* Sha256Algorithm() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

}  // namespace

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  auto bad = [] { return Fail(Error::Invalid("", "invalid_base64", "not valid base64")); };
  // EVP_DecodeBlock wants whole 4-character groups and does not report padding: check the shape
  // here and strip the bytes the padding stands for afterwards.
  if (text.size() % 4 != 0) return bad();
  std::size_t pad = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '+' || c == '/';
    if (c == '=') {
      ++pad;
      if (i < text.size() - 2) return bad();
    } else if (!alnum || pad > 0) {
      return bad();
    }
  }
  if (pad > 2) return bad();
  if (text.empty()) return std::string();
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0 || static_cast<std::size_t>(n) < pad) return bad();
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

std::string NewSecret() {
  unsigned char key[32];
  RandomBytes(key, sizeof key);
  return std::string(kSecretPrefix) +
         Base64Encode(std::string_view(reinterpret_cast<const char*>(key), sizeof key));
}

Result<std::string> DecodeSecret(std::string_view whsec) {
  if (whsec.substr(0, kSecretPrefix.size()) != kSecretPrefix) {
    return Fail(Error::Invalid("secret", "invalid_secret", "a signing secret starts with whsec_"));
  }
  auto key = Base64Decode(whsec.substr(kSecretPrefix.size()));
  if (!key) {
    return Fail(Error::Invalid("secret", "invalid_secret",
                               "a signing secret is whsec_ followed by base64"));
  }
  if (key->size() < 24 || key->size() > 64) {
    return Fail(
        Error::Invalid("secret", "invalid_secret", "a signing secret holds 24 to 64 bytes"));
  }
  return std::move(*key);
}

std::string Sign(std::string_view key_bytes, std::string_view msg_id, std::int64_t unix_seconds,
                 std::string_view body) {
  std::string ts = std::to_string(unix_seconds);
  unsigned char mac[EVP_MAX_MD_SIZE];
  std::size_t mac_len = 0;
  EVP_MAC_CTX* ctx = HmacSha256Context();
  bool ok =
      ctx &&
      EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key_bytes.data()), key_bytes.size(),
                   nullptr) == 1 &&
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(msg_id.data()), msg_id.size()) ==
          1 &&
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>("."), 1) == 1 &&
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(ts.data()), ts.size()) == 1 &&
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>("."), 1) == 1 &&
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(body.data()), body.size()) == 1 &&
      EVP_MAC_final(ctx, mac, &mac_len, sizeof mac) == 1;
  if (!ok) {
    // HMAC-SHA256 is always available in OpenSSL 3's default provider; failing here means a
    // broken installation, and an unsigned webhook must never go out.
    std::abort();
  }
  return "v1," + Base64Encode(std::string_view(reinterpret_cast<const char*>(mac), mac_len));
}

std::vector<RetiredSecret> ReadRetiredSecrets(std::string_view text, UnixMs legacy_expires_at) {
  std::vector<RetiredSecret> out;
  while (!text.empty()) {
    const std::size_t space = text.find(' ');
    std::string_view item = text.substr(0, space);
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
    if (item.empty()) continue;
    const std::size_t at = item.find('@');
    RetiredSecret r;
    r.secret = std::string(item.substr(0, at));
    r.expires_at = legacy_expires_at;
    if (at != std::string_view::npos) {
      const std::string_view ms = item.substr(at + 1);
      UnixMs value = 0;
      const auto [end, ec] = std::from_chars(ms.data(), ms.data() + ms.size(), value);
      if (ec != std::errc() || end != ms.data() + ms.size()) continue;  // not ours: skipped
      r.expires_at = value;
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::string WriteRetiredSecrets(const std::vector<RetiredSecret>& secrets) {
  // One secret alone keeps the form builds before the list wrote and read (its end is the
  // column's): a process of such a build, beside this one in a rolling upgrade, or after a
  // rollback, still signs with it.
  if (secrets.size() == 1) return secrets.front().secret;
  std::string out;
  for (const RetiredSecret& r : secrets) {
    if (!out.empty()) out += ' ';
    out += r.secret;
    out += '@';
    out += std::to_string(r.expires_at);
  }
  return out;
}

std::vector<RetiredSecret> RetireSecret(std::string current, UnixMs now, UnixMs grace,
                                        std::vector<RetiredSecret> retired) {
  std::vector<RetiredSecret> out;
  out.push_back(RetiredSecret{std::move(current), now + grace});
  for (RetiredSecret& r : retired) {
    if (out.size() >= kMaxRetiredSecrets) break;
    if (r.expires_at > now) out.push_back(std::move(r));
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  unsigned int len = 0;
  const EVP_MD* alg = Sha256Algorithm();
  if (alg == nullptr || EVP_Digest(data.data(), data.size(), md, &len, alg, nullptr) != 1) {
    std::abort();  // as in Sign: SHA-256 is always there in a working OpenSSL 3
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::size_t{len} * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

}  // namespace outbound::core
