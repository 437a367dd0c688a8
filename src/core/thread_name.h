// Names the calling thread (at most 15 characters, as Linux keeps them) so that top -H, perf,
// gdb and /proc/PID/task/*/comm tell Outbound's threads apart.
#pragma once

namespace outbound::core {

void NameThisThread(const char* name) noexcept;

}  // namespace outbound::core
