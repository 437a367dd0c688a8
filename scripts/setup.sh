#!/usr/bin/env bash
# Installs what Outbound needs on Debian 12, then configures and builds it into build/.
# Idempotent: a second run only rebuilds what changed. Warnings are errors when CI is set.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libcurl4-openssl-dev libsqlite3-dev libpq-dev libssl-dev zlib1g-dev libzstd-dev
  libspdlog-dev libcli11-dev libtomlplusplus-dev libexpected-dev
  # tcmalloc_minimal, the program's allocator (src/app/CMakeLists.txt, docs/PERFORMANCE.md).
  libgoogle-perftools-dev
  libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev
  nodejs npm openssl
  # examples/python/receiver.py (run by the e2e suite) needs nothing beyond the standard library.
  python3
  # For the tests (server in /usr/lib/postgresql/15/bin, psql): they start a throwaway cluster of
  # their own (scripts/pg-test-cluster.sh) and neither need nor touch the package's cluster `main`.
  postgresql-15
  # For the portal's browser test (tests/e2e/portal.test.mjs): playwright-core drives this
  # browser and downloads none of its own.
  chromium
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs from another source may ship npm itself.
if command -v npm >/dev/null 2>&1; then
  filtered=()
  for p in "${missing[@]}"; do [[ "$p" == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]}")
fi
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The end-to-end tests' npm packages (the public standardwebhooks verifier, Redocly and ajv for
# the OpenAPI document, playwright-core for the portal's browser test), and the Node.js example
# receiver's: pinned by their package-lock.json, installed again whenever a lock file is newer
# than what was installed.
for dir in tests/e2e examples/node; do
  if [[ ! -f $dir/node_modules/.package-lock.json || $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

werror=OFF
[[ -n "${CI:-}" ]] && werror=ON
cmake --preset default -DOUTBOUND_WERROR="$werror" >/dev/null
cmake --build --preset default
