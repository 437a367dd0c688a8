// For tests: keeps a store's writer busy, so that the writes submitted meanwhile queue behind.
#pragma once

#include <cstdint>
#include <future>

#include "store/store.h"

namespace outbound::store::testing {

// Submits a task that holds the writer (on PostgreSQL: the connection of `key`) until the
// returned promise is set. Set it before the store closes.
inline std::promise<void> HoldTheWriter(Store& store, std::uint64_t key = 0) {
  std::promise<void> go_on;
  std::shared_future<void> released = go_on.get_future().share();
  store.Submit(WriteTask{[released](Txn&) -> core::Status {
                           released.wait();
                           return {};
                         },
                         nullptr, key});
  return go_on;
}

}  // namespace outbound::store::testing
