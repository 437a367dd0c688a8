// The whole program: `outbound serve [flags]`, `outbound migrate [flags]`, `outbound ctl …`,
// `outbound listen …`, `outbound version`.
// Returns the exit code: 0, 1 when the service or the migration fails, 2 for bad arguments.
#pragma once

namespace outbound::app {

int Main(int argc, char** argv);

}  // namespace outbound::app
