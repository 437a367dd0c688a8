#include "store/internal/sealing.h"

namespace outbound::store::internal {

core::Result<Sealer> Sealer::FromBase64Keys(const std::vector<std::string>& keys) {
  if (keys.empty()) {
    core::Error e = core::Error::Invalid("secrets_key", "invalid_secrets_key",
                                         "secrets_key: at least one key is needed");
    return core::Fail(std::move(e));
  }
  std::vector<core::SecretBox> boxes;
  boxes.reserve(keys.size());
  for (const std::string& k : keys) {
    auto box = core::SecretBox::FromBase64Key(k);
    if (!box) return core::Fail(box.error());
    boxes.push_back(std::move(*box));
  }
  return Sealer(std::move(boxes));
}

core::Result<std::string> Sealer::Open(std::string_view value) const {
  if (value.substr(0, 3) != "v1:") return std::string(value);
  core::Result<std::string> first = keys_.front().Open(value);
  if (first) return first;
  for (std::size_t i = 1; i < keys_.size(); ++i) {
    if (auto opened = keys_[i].Open(value)) return opened;
  }
  return first;
}

bool Sealer::NeedsReseal(std::string_view value) const {
  return value.substr(0, 3) == "v1:" && !keys_.front().Open(value);
}

}  // namespace outbound::store::internal
