// Internal to store/: runs store callbacks so that no exception crosses a writer thread or a
// reader (an escaping exception becomes an error, or a log line). Shared by both backends.
#pragma once

#include <spdlog/spdlog.h>

#include <cstddef>
#include <exception>
#include <functional>
#include <string>
#include <vector>

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

// Calls each task's `done` with its result, once; a callback that throws is logged, never passed
// on to the writer thread.
inline void CallDone(std::vector<WriteTask>& batch, const std::vector<core::Status>& results) {
  for (std::size_t j = 0; j < batch.size(); ++j) {
    if (!batch[j].done) continue;
    try {
      batch[j].done(results[j]);
    } catch (const std::exception& e) {
      spdlog::error("store: a write task's done callback threw: {}", e.what());
    } catch (...) {
      spdlog::error("store: a write task's done callback threw");
    }
  }
}

}  // namespace outbound::store::internal
