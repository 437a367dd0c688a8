// Internal to store/: runs a store callback, turning an escaping exception into an error, so
// that no exception crosses a writer thread or a reader. Shared by both backends.
#pragma once

#include <exception>
#include <functional>
#include <string>

#include "store/store.h"

namespace outbound::store::internal {

inline core::Status Guarded(const std::function<core::Status(Txn&)>& fn, Txn& txn) {
  try {
    return fn(txn);
  } catch (const std::exception& e) {
    return core::Fail(core::Error::Internal(std::string("store callback threw: ") + e.what()));
  } catch (...) {
    return core::Fail(core::Error::Internal("store callback threw"));
  }
}

}  // namespace outbound::store::internal
