// `outbound ctl …` and `outbound listen …`: the command-line tools of the operator and the
// integrator (docs/CLI.md). Each returns the process's exit code: 0, 1 when the work failed,
// 2 for bad arguments.
#pragma once

#include <string>
#include <vector>

namespace outbound::cli {

// args: what follows `ctl` on the command line.
int Ctl(const std::vector<std::string>& args);
// args: what follows `listen` on the command line.
int Listen(const std::vector<std::string>& args);

}  // namespace outbound::cli
