// Opening a store whose constructor starts threads (SqliteStore, PgStore).
#pragma once

#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "core/result.h"
#include "store/store.h"

namespace outbound::store::internal {

// Runs `make`, which returns the new store as a std::unique_ptr<Store>. A thread that could not be
// created (std::system_error; the constructor has stopped the ones it had started) becomes an error
// of opening the store instead of an exception that ends the process.
template <typename Make>
core::Result<std::unique_ptr<Store>> StartStore(Make&& make) {
  try {
    return std::forward<Make>(make)();
  } catch (const std::system_error& e) {
    return core::Fail(
        core::Error::Internal(std::string("cannot start the store's threads: ") + e.what()));
  }
}

}  // namespace outbound::store::internal
