#include "core/secretbox.h"

#include <openssl/evp.h>

#include <memory>

#include "core/ids.h"
#include "core/signing.h"

namespace outbound::core {
namespace {

constexpr std::size_t kKeyBytes = 32;
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;
constexpr std::string_view kPrefix = "v1:";

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

Error Mismatch() {
  return Error{ErrorKind::kInternal,
               "secrets_key_mismatch",
               "a stored secret cannot be decrypted with this secrets key (wrong --secrets-key?)",
               {},
               {}};
}

}  // namespace

Result<SecretBox> SecretBox::FromBase64Key(std::string_view key_base64) {
  auto key = Base64Decode(key_base64);
  if (!key || key->size() != kKeyBytes) {
    return Fail(Error::Invalid("secrets-key", "invalid_secrets_key",
                               "secrets-key must be the base64 of exactly 32 bytes "
                               "(openssl rand -base64 32)"));
  }
  return SecretBox(std::move(*key));
}

std::string SecretBox::NewBase64Key() {
  std::string key(kKeyBytes, '\0');
  RandomBytes(reinterpret_cast<unsigned char*>(key.data()), key.size());
  return Base64Encode(key);
}

std::string SecretBox::Seal(std::string_view plaintext) const {
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  RandomBytes(nonce, kNonceBytes);
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  // AES-GCM with a valid key and nonce cannot fail short of memory exhaustion.
  EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                     reinterpret_cast<const unsigned char*>(key_.data()), nonce);
  EVP_EncryptUpdate(ctx.get(), nonce + kNonceBytes, &len,
                    reinterpret_cast<const unsigned char*>(plaintext.data()),
                    static_cast<int>(plaintext.size()));
  EVP_EncryptFinal_ex(ctx.get(), nonce + kNonceBytes + len, &len);
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                      nonce + kNonceBytes + plaintext.size());
  return std::string(kPrefix) + Base64Encode(out);
}

Result<std::string> SecretBox::Open(std::string_view sealed) const {
  if (sealed.substr(0, kPrefix.size()) != kPrefix) return Fail(Mismatch());
  auto raw = Base64Decode(sealed.substr(kPrefix.size()));
  if (!raw || raw->size() < kNonceBytes + kTagBytes) return Fail(Mismatch());
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw->data());
  const std::size_t text_len = raw->size() - kNonceBytes - kTagBytes;
  std::string plain(text_len, '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                     reinterpret_cast<const unsigned char*>(key_.data()), bytes);
  EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &len,
                    bytes + kNonceBytes, static_cast<int>(text_len));
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes,
                      const_cast<unsigned char*>(bytes + kNonceBytes + text_len));
  if (EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + len, &len) !=
      1) {
    return Fail(Mismatch());
  }
  return plain;
}

}  // namespace outbound::core
