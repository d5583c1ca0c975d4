#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite: install, build, unit and integration tests (ctest), the live tests again in the
# stock Debian 12 layout (as root), the documented demo in both layouts, and the fuzz targets for a
# bounded time (LFP_FUZZ_SECONDS, default 30 each).
#   LFP_REQUIRE_LIVE=1  (CI) a live test that cannot run fails, and any test ctest reports skipped fails
#                       the suite
#   LFP_BUILD=DIR       test that build directory, built by you (default: build/, installed and built first)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${LFP_BUILD:-}" ] || scripts/setup.sh
export LFP_BUILD=${LFP_BUILD:-build}

# Runs a ctest command (its output also kept in $LFP_BUILD/ctest.log); under LFP_REQUIRE_LIVE=1 a test
# it reports skipped fails the suite.
ctest_checked() {
  "$@" 2>&1 | tee "$LFP_BUILD/ctest.log"
  if [ "${LFP_REQUIRE_LIVE:-}" = 1 ] && grep -q '\*\*\*Skipped' "$LFP_BUILD/ctest.log"; then
    echo "test: skipped with LFP_REQUIRE_LIVE=1:" >&2
    grep '\*\*\*Skipped' "$LFP_BUILD/ctest.log" >&2
    exit 1
  fi
}
# Runs a command in the stock Debian 12 layout: cgroup2 alone at /sys/fs/cgroup, mounted in a private
# mount namespace (this host's own mounts are untouched).
in_stock_layout() {
  unshare -m sh -c 'mount --make-rprivate / && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"' sh "$@"
}

echo "== ctest"
ctest_checked ctest --test-dir "$LFP_BUILD" --output-on-failure -j"$(nproc)"

if [ "$(id -u)" -eq 0 ]; then
  echo "== ctest -L live, in the stock layout (cgroup2 alone at /sys/fs/cgroup)"
  ctest_checked in_stock_layout ctest --test-dir "$LFP_BUILD" --output-on-failure -j"$(nproc)" -L live
fi

echo "== demo"
scripts/demo.sh >/dev/null
if [ "$(id -u)" -eq 0 ]; then
  echo "== demo, in the stock layout"
  in_stock_layout scripts/demo.sh >/dev/null
fi

echo "== fuzz (${LFP_FUZZ_SECONDS:-30}s per target)"
scripts/fuzz.sh "${LFP_FUZZ_SECONDS:-30}"
echo "all tests passed"
