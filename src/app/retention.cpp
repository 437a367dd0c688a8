#include "app/retention.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "core/log_fields.h"
#include "core/thread_name.h"

namespace outbound::app {

RetentionService::RetentionService(store::Store& store, const core::Clock& clock,
                                   RetentionOptions options)
    : store_(store), clock_(clock), options_(options) {
  if (options_.interval_ms <= 0) {
    options_.interval_ms = std::clamp<core::UnixMs>(options_.retention_ms / 10, 1000, 60000);
  }
  options_.batch = std::max(options_.batch, 1);
}

RetentionService::~RetentionService() { Stop(); }

void RetentionService::Start() {
  thread_ = std::thread([this] {
    core::NameThisThread("ob-retention");
    Loop();
  });
}

void RetentionService::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool RetentionService::Pause(core::UnixMs ms) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stop_; });
}

void RetentionService::Loop() {
  while (Pause(options_.interval_ms)) {
    auto pass = RunPass();
    if (!pass) {
      spdlog::warn("retention: a pass stopped early: {}", pass.error().message);
      continue;
    }
    if (pass->events > 0 || pass->idempotency_keys > 0) {
      core::LogFields fields{{"events", pass->events},
                             {"deliveries", pass->deliveries},
                             {"attempts", pass->attempts},
                             {"idempotencyKeys", pass->idempotency_keys},
                             {"longestBatchMs", pass->longest_batch_ms}};
      spdlog::info(
          "retention: deleted {} events ({} deliveries, {} attempts) and {} idempotency "
          "keys in {} transactions (longest {} ms)",
          pass->events, pass->deliveries, pass->attempts, pass->idempotency_keys, pass->batches,
          pass->longest_batch_ms);
    } else {
      spdlog::debug("retention: nothing to delete ({} old events still have open deliveries)",
                    pass->kept);
    }
  }
}

core::Result<RetentionPass> RetentionService::RunPass() {
  RetentionPass pass;
  const core::UnixMs now = clock_.Now();
  const core::UnixMs accepted_before = now - options_.retention_ms;
  std::string after;
  for (;;) {
    store::PurgeResult result;
    const auto started = std::chrono::steady_clock::now();
    if (auto s = store_.Write([&](store::Txn& txn) -> core::Status {
          auto r = txn.PurgeEvents(after, accepted_before, options_.batch);
          if (!r) return core::Fail(std::move(r.error()));
          result = std::move(*r);
          return {};
        });
        !s) {
      return core::Fail(std::move(s.error()));
    }
    ++pass.batches;
    pass.longest_batch_ms = std::max<std::int64_t>(
        pass.longest_batch_ms, std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now() - started)
                                   .count());
    pass.events += result.events;
    pass.deliveries += result.deliveries;
    pass.attempts += result.attempts;
    pass.kept += result.kept;
    if (!result.next) break;
    after = *result.next;
    // Yield: the writer serves everyone else's tasks before the next batch.
    if (!Pause(options_.pause_ms)) return pass;
  }
  const core::UnixMs keys_before = now - options_.idempotency_ms;
  for (;;) {
    int deleted = 0;
    if (auto s = store_.Write([&](store::Txn& txn) -> core::Status {
          auto r = txn.PurgeIdempotencyKeys(keys_before, options_.batch);
          if (!r) return core::Fail(std::move(r.error()));
          deleted = *r;
          return {};
        });
        !s) {
      return core::Fail(std::move(s.error()));
    }
    ++pass.batches;
    pass.idempotency_keys += deleted;
    if (deleted < options_.batch) break;
    if (!Pause(options_.pause_ms)) return pass;
  }
  return pass;
}

}  // namespace outbound::app
