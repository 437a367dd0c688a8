// Internal to store/: key rotation in the background. With several --secrets-key values, the
// store seals with the first and opens with any; a Resealer walks the subscriptions in small
// write transactions and seals again with the first key whatever another key sealed, so that the
// old key can be dropped once it has finished (the log says when).
//
// Thread-safety: one background thread; Stop() (idempotent) ends it between two batches.
#pragma once

#include <atomic>
#include <thread>

#include "store/store.h"

namespace outbound::store::internal {

class Resealer {
 public:
  // Starts at once; `store` must outlive it (call Stop() before the store closes).
  explicit Resealer(Store& store);
  ~Resealer() { Stop(); }
  Resealer(const Resealer&) = delete;
  Resealer& operator=(const Resealer&) = delete;

  void Stop();

 private:
  void Run();

  Store& store_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace outbound::store::internal
