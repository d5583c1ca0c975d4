#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds LFP's Debian package (docs/packaging.md): a Release build in build-pkg (or the directory
# given), then CPack; prints the .deb's path. Installs the Debian tools it needs when missing (root).
# Usage: scripts/package.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build-pkg}

tools=(help2man dpkg-dev fakeroot lintian)
missing=()
for p in "${tools[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "package: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# Debian's build flags: fortify, stack protector, relro and bindnow (Release gives -O3, strip the symbols).
eval "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all DEB_CXXFLAGS_MAINT_STRIP='-g -O2' dpkg-buildflags --export=sh)"
# Only the package's contents are built (cpack would build `all`, tests and benchmarks included).
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON \
      -DCMAKE_CXX_FLAGS="$CPPFLAGS $CXXFLAGS" -DCMAKE_EXE_LINKER_FLAGS="$LDFLAGS" \
      -DCMAKE_SHARED_LINKER_FLAGS="$LDFLAGS" -DCMAKE_MODULE_LINKER_FLAGS="$LDFLAGS" "${launcher[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target lfp-package-contents >&2
rm -f "$build_dir"/lfp_*.deb
(cd "$build_dir" && cpack -G DEB >&2)
realpath "$build_dir"/lfp_*.deb
