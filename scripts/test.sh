#!/usr/bin/env bash
# The whole test suite: install, build, unit and integration tests (ctest), the documented demo,
# and the fuzz targets for a bounded time (LFP_FUZZ_SECONDS, default 30 each).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== ctest"
ctest --test-dir build --output-on-failure -j"$(nproc)"

echo "== demo"
scripts/demo.sh >/dev/null

echo "== fuzz (${LFP_FUZZ_SECONDS:-30}s per target)"
scripts/fuzz.sh "${LFP_FUZZ_SECONDS:-30}"
echo "all tests passed"
