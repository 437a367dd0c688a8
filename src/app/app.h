// The whole program: `outbound serve [flags]`, `outbound version`. Returns the exit code.
#pragma once

namespace outbound::app {

int Main(int argc, char** argv);

}  // namespace outbound::app
