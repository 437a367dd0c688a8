#!/usr/bin/env bash
# Builds the libFuzzer target (the `fuzz` preset: clang, ASan, UBSan, build-fuzz/) and runs it
# for SECONDS (default 60) on a working corpus seeded from fuzz/corpus. Any crash, sanitizer
# report or broken invariant stops the run with a non-zero status and leaves the input in
# build-fuzz/artifacts/. At exit the target prints how many routes of the server's route table
# answered a 2xx and how many raw inputs went through the real server. CTest runs a short pass
# (fuzz.api); docs/RELIABILITY.md has longer ones.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
mkdir -p build-fuzz/corpus build-fuzz/artifacts
exec ./build-fuzz/fuzz/api_fuzz -max_total_time="$seconds" -print_final_stats=1 \
  -dict=fuzz/api.dict -timeout=10 -rss_limit_mb=4096 -artifact_prefix=build-fuzz/artifacts/ \
  build-fuzz/corpus fuzz/corpus
