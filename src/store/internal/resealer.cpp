#include "store/internal/resealer.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>

#include "core/thread_name.h"

namespace outbound::store::internal {
namespace {

constexpr int kBatch = 100;
// Between batches: key rotation is never urgent, delivery is.
constexpr auto kPause = std::chrono::milliseconds(20);

}  // namespace

Resealer::Resealer(Store& store) : store_(store) {
  thread_ = std::thread([this] {
    core::NameThisThread("ob-reseal");
    Run();
  });
}

void Resealer::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void Resealer::Run() {
  std::int64_t after = 0;
  std::int64_t batches = 0;
  while (!stop_) {
    std::optional<std::int64_t> next;
    auto status = store_.Write([&](Txn& txn) -> core::Status {
      auto r = txn.ResealSecrets(after, kBatch);
      if (!r) return core::Fail(r.error());
      next = *r;
      return {};
    });
    if (!status) {
      spdlog::warn("store: re-sealing secrets with the new key paused: {}", status.error().message);
      for (int i = 0; i < 100 && !stop_; ++i) std::this_thread::sleep_for(kPause);
      continue;
    }
    if (!next) {
      spdlog::info(
          "store: every stored secret is sealed with the first --secrets-key ({} "
          "batches); older keys may be dropped",
          batches);
      return;
    }
    after = *next;
    ++batches;
    std::this_thread::sleep_for(kPause);
  }
}

}  // namespace outbound::store::internal
