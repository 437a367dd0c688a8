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

// Calls `done` with `result`; a callback that throws is logged, never passed on to the writer
// thread.
inline void CallDone(const std::function<void(const core::Status&)>& done,
                     const core::Status& result) noexcept {
  if (!done) return;
  try {
    done(result);
  } catch (const std::exception& e) {
    spdlog::error("store: a write task's done callback threw: {}", e.what());
  } catch (...) {
    spdlog::error("store: a write task's done callback threw");
  }
}

// Calls each task's `done` with its result, once.
inline void CallDone(std::vector<WriteTask>& batch, const std::vector<core::Status>& results) {
  for (std::size_t j = 0; j < batch.size(); ++j) CallDone(batch[j].done, results[j]);
}

// The same for callbacks taken out of their tasks (Completer).
inline void CallDone(const std::vector<std::function<void(const core::Status&)>>& dones,
                     const std::vector<core::Status>& results) {
  for (std::size_t j = 0; j < dones.size(); ++j) CallDone(dones[j], results[j]);
}

}  // namespace outbound::store::internal
